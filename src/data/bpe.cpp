#include "msmedcap/data/bpe.h"

#include <algorithm>
#include <array>
#include <fstream>
#include <limits>

#include <nlohmann/json.hpp>

#include "msmedcap/config/json_depth.h"
#include "msmedcap/core/atomic_file.h"
#include "msmedcap/core/check.h"
#include "msmedcap/data/unicode.h"

namespace msmedcap::data {
namespace {

/// GPT-2's map of the 256 byte values to printable code points (printable Latin-1 bytes keep
/// their value; the others take 256, 257, ... in byte order).
const std::array<char32_t, 256>& byte_to_char() {
  static const std::array<char32_t, 256> table = [] {
    std::array<char32_t, 256> t{};
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      t[static_cast<size_t>(b)] = printable ? static_cast<char32_t>(b) : next++;
    }
    return t;
  }();
  return table;
}

int char_to_byte(char32_t c) {
  static const std::vector<int> inverse = [] {
    std::vector<int> v(512, -1);
    const auto& t = byte_to_char();
    for (int b = 0; b < 256; ++b) v[t[static_cast<size_t>(b)]] = b;
    return v;
  }();
  return c < inverse.size() ? inverse[c] : -1;
}

bool is_other(char32_t c) { return !unicode::is_space(c) && !unicode::is_letter(c) && !unicode::is_number(c); }

}  // namespace

std::vector<std::u32string> BpeTokenizer::pretokenize(const std::u32string& s) {
  // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ , first alternative wins.
  std::vector<std::u32string> out;
  const size_t n = s.size();
  size_t i = 0;
  auto run = [&](size_t from, auto pred) {
    size_t j = from;
    while (j < n && pred(s[j])) ++j;
    return j;
  };
  while (i < n) {
    size_t end = i;
    if (s[i] == U'\'' && i + 1 < n) {
      const char32_t a = s[i + 1], b = i + 2 < n ? s[i + 2] : 0;
      if (a == U's' || a == U't' || a == U'm' || a == U'd')
        end = i + 2;
      else if ((a == U'r' && b == U'e') || (a == U'v' && b == U'e') || (a == U'l' && b == U'l'))
        end = i + 3;
    }
    const size_t body = (s[i] == U' ' && i + 1 < n) ? i + 1 : i;  // the optional leading space
    if (end == i) {
      if (unicode::is_letter(s[body]))
        end = run(body, unicode::is_letter);
      else if (unicode::is_number(s[body]))
        end = run(body, unicode::is_number);
      else if (is_other(s[body]))
        end = run(body, is_other);
    }
    if (end == i) {
      const size_t ws = run(i, unicode::is_space);  // s[i] is whitespace here
      if (ws == n)
        end = ws;  // \s+ up to the end
      else if (ws - i >= 2)
        end = ws - 1;  // \s+(?!\S): leave one space for the next word
      else
        end = ws;  // \s+
    }
    out.push_back(s.substr(i, end - i));
    i = end;
  }
  return out;
}

BpeTokenizer::BpeTokenizer(const std::string& vocab_path, const std::string& merges_path,
                           const TokenizerOptions& options)
    : add_bos_(options.add_bos) {
  nlohmann::json vocab;
  const std::string text = core::read_file(vocab_path);
  config::check_json_depth(text, vocab_path);
  try {
    vocab = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    MSMEDCAP_FAIL(vocab_path, ": invalid JSON: ", e.what());
  }
  MSMEDCAP_CHECK(vocab.is_object() && !vocab.empty(), vocab_path, ": expected an object {token: id}");
  std::vector<std::pair<std::string, int64_t>> entries;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    MSMEDCAP_CHECK(it.value().is_number_integer() && it.value().get<int64_t>() >= 0, vocab_path, ": token '", it.key(),
                   "' has no non-negative integer id");
    entries.emplace_back(it.key(), it.value().get<int64_t>());
  }
  std::ifstream in(merges_path);
  MSMEDCAP_CHECK(in, merges_path, ": cannot open the BPE merges");
  std::vector<std::pair<std::string, std::string>> merges;
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (line_no == 1 && line.rfind("#version", 0) == 0)) continue;
    const auto sp = line.find(' ');
    MSMEDCAP_CHECK(
        sp != std::string::npos && sp > 0 && sp + 1 < line.size() && line.find(' ', sp + 1) == std::string::npos,
        merges_path, ":", line_no, ": expected two tokens separated by one space");
    merges.emplace_back(line.substr(0, sp), line.substr(sp + 1));
  }
  init(entries, merges, vocab_path);
}

BpeTokenizer::BpeTokenizer(const std::vector<std::pair<std::string, int64_t>>& vocab,
                           const std::vector<std::pair<std::string, std::string>>& merges,
                           const TokenizerOptions& options, const std::string& origin)
    : add_bos_(options.add_bos) {
  init(vocab, merges, origin);
}

void BpeTokenizer::init(const std::vector<std::pair<std::string, int64_t>>& vocab,
                        const std::vector<std::pair<std::string, std::string>>& merges, const std::string& origin) {
  MSMEDCAP_CHECK(!vocab.empty(), origin, ": empty BPE vocabulary");
  int64_t max_id = -1;
  for (const auto& [token, id] : vocab) max_id = std::max(max_id, id);
  MSMEDCAP_CHECK(max_id < 10'000'000, origin, ": id ", max_id, " is implausibly large");
  tokens_.assign(static_cast<size_t>(max_id + 1), std::string());
  for (const auto& [token, id] : vocab) {
    tokens_[static_cast<size_t>(id)] = token;
    ids_[token] = id;
  }
  int rank = 0;
  for (const auto& merge : merges) ranks_.emplace(merge, rank++);
  is_special_.assign(tokens_.size(), false);
  for (const char* t : {"<s>", "</s>", "<pad>", "<unk>", "<|endoftext|>"}) {
    const int64_t id = token_to_id(t);
    if (id < 0) continue;
    special_.emplace_back(t);
    is_special_[static_cast<size_t>(id)] = true;
  }
  // OPT: bos = eos = </s>, pad <pad>; GPT-2: <|endoftext|> for all three.
  const int64_t eot = token_to_id("<|endoftext|>");
  bos_id_ = token_to_id("</s>") >= 0 ? token_to_id("</s>") : eot;
  eos_id_ = bos_id_;
  pad_id_ = token_to_id("<pad>") >= 0 ? token_to_id("<pad>") : eot;
  unk_id_ = token_to_id("<unk>") >= 0 ? token_to_id("<unk>") : eot;
}

int64_t BpeTokenizer::token_to_id(const std::string& token) const {
  const auto it = ids_.find(token);
  return it == ids_.end() ? -1 : it->second;
}

void BpeTokenizer::bpe(const std::string& word, std::vector<std::string>& out) const {
  // word: the byte-mapped characters of one pre-token, as UTF-8.
  std::vector<std::string> parts;
  for (char32_t c : unicode::decode_utf8(word)) parts.push_back(unicode::encode_utf8(c));
  while (parts.size() > 1) {
    int best = std::numeric_limits<int>::max();
    size_t at = 0;
    for (size_t k = 0; k + 1 < parts.size(); ++k) {
      const auto it = ranks_.find({parts[k], parts[k + 1]});
      if (it != ranks_.end() && it->second < best) {
        best = it->second;
        at = k;
      }
    }
    if (best == std::numeric_limits<int>::max()) break;
    // Merge every occurrence of the best pair, left to right.
    const std::string a = parts[at], b = parts[at + 1];
    std::vector<std::string> merged;
    for (size_t k = 0; k < parts.size();) {
      if (k + 1 < parts.size() && parts[k] == a && parts[k + 1] == b) {
        merged.push_back(a + b);
        k += 2;
      } else {
        merged.push_back(parts[k++]);
      }
    }
    parts.swap(merged);
  }
  out.insert(out.end(), parts.begin(), parts.end());
}

std::vector<std::string> BpeTokenizer::tokenize(const std::string& text) const {
  std::vector<std::string> out;
  const auto& table = byte_to_char();
  for (const auto& [part, special] : split_special_tokens(text, special_)) {
    if (special) {
      out.push_back(part);
      continue;
    }
    for (const auto& pre : pretokenize(unicode::decode_utf8(part))) {
      std::u32string mapped;
      for (unsigned char byte : unicode::encode_utf8(pre)) mapped.push_back(table[byte]);
      bpe(unicode::encode_utf8(mapped), out);
    }
  }
  return out;
}

std::vector<int64_t> BpeTokenizer::encode(const std::string& text, bool add_special_tokens) const {
  std::vector<int64_t> ids;
  if (add_special_tokens && add_bos_ && bos_id_ >= 0) ids.push_back(bos_id_);
  for (const auto& t : tokenize(text)) {
    const int64_t id = token_to_id(t);
    ids.push_back(id >= 0 ? id : unk_id_);
  }
  return ids;
}

std::string BpeTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  std::string bytes;
  for (int64_t id : ids) {
    MSMEDCAP_CHECK(id >= 0 && id < vocab_size(), "BPE decode: id ", id, " is outside the vocabulary of ", vocab_size());
    if (is_special_[static_cast<size_t>(id)]) {
      if (!skip_special_tokens) bytes += tokens_[static_cast<size_t>(id)];
      continue;
    }
    for (char32_t c : unicode::decode_utf8(tokens_[static_cast<size_t>(id)])) {
      const int b = char_to_byte(c);
      if (b >= 0) bytes.push_back(static_cast<char>(b));
    }
  }
  // Invalid UTF-8 (a split multi-byte character) becomes U+FFFD, as HF's errors="replace".
  return unicode::encode_utf8(unicode::decode_utf8(bytes));
}

}  // namespace msmedcap::data
