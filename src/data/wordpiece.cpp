#include "msmedcap/data/wordpiece.h"

#include <algorithm>
#include <fstream>

#include "msmedcap/core/check.h"
#include "msmedcap/data/unicode.h"

namespace msmedcap::data {
namespace {

constexpr size_t kMaxWordChars = 100;

bool is_bert_whitespace(char32_t c) {
  return c == U' ' || c == U'\t' || c == U'\n' || c == U'\r' || std::string_view(unicode::category(c)) == "Zs";
}
bool is_bert_control(char32_t c) {
  if (c == U'\t' || c == U'\n' || c == U'\r') return false;
  return unicode::category(c)[0] == 'C';
}
bool is_bert_punctuation(char32_t c) {
  if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126)) return true;
  return unicode::category(c)[0] == 'P';
}
bool is_cjk(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

}  // namespace

namespace {

std::vector<std::string> read_vocab(const std::string& vocab_path) {
  std::ifstream in(vocab_path);
  MSMEDCAP_CHECK(in, vocab_path, ": cannot open the WordPiece vocabulary");
  std::vector<std::string> tokens;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    tokens.push_back(line);
  }
  return tokens;
}

}  // namespace

WordPieceTokenizer::WordPieceTokenizer(const std::string& vocab_path, const TokenizerOptions& options)
    : WordPieceTokenizer(read_vocab(vocab_path), options, vocab_path) {}

WordPieceTokenizer::WordPieceTokenizer(std::vector<std::string> tokens, const TokenizerOptions& options,
                                       const std::string& vocab_path)
    : lower_case_(options.lower_case) {
  for (auto& t : tokens) {
    // HF keeps the first id of a duplicated token's line number; later duplicates overwrite.
    ids_[t] = static_cast<int64_t>(tokens_.size());
    tokens_.push_back(std::move(t));
  }
  MSMEDCAP_CHECK(!tokens_.empty(), vocab_path, ": empty WordPiece vocabulary");
  auto need = [&](const char* t) {
    const int64_t id = token_to_id(t);
    MSMEDCAP_CHECK(id >= 0, vocab_path, ": the vocabulary has no ", t, " token");
    special_.emplace_back(t);
    return id;
  };
  unk_id_ = need("[UNK]");
  cls_id_ = need("[CLS]");
  sep_id_ = need("[SEP]");
  pad_id_ = need("[PAD]");
  if (token_to_id("[MASK]") >= 0) special_.emplace_back("[MASK]");
  if (options.add_dec_token) {
    if (token_to_id("[DEC]") < 0) {
      ids_["[DEC]"] = static_cast<int64_t>(tokens_.size());
      tokens_.emplace_back("[DEC]");
    }
    dec_id_ = token_to_id("[DEC]");
    special_.emplace_back("[DEC]");
  }
  bos_id_ = dec_id_;
  eos_id_ = sep_id_;
}

int64_t WordPieceTokenizer::token_to_id(const std::string& token) const {
  const auto it = ids_.find(token);
  return it == ids_.end() ? -1 : it->second;
}

void bert_basic_tokenize(const std::u32string& raw, bool lower_case, std::vector<std::string>& out) {
  std::u32string text;
  text.reserve(raw.size());
  for (char32_t c : raw) {
    if (c == 0 || c == 0xFFFD || is_bert_control(c)) continue;
    if (is_bert_whitespace(c)) {
      text.push_back(U' ');
    } else if (is_cjk(c)) {
      text.push_back(U' ');
      text.push_back(c);
      text.push_back(U' ');
    } else {
      text.push_back(c);
    }
  }
  text = unicode::nfc(text);
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && unicode::is_space(text[i])) ++i;  // str.split(): Python whitespace
    size_t j = i;
    while (j < text.size() && !unicode::is_space(text[j])) ++j;
    if (j == i) break;
    std::u32string word = text.substr(i, j - i);
    i = j;
    if (lower_case) {
      word = unicode::nfd(unicode::to_lower(word));
      std::u32string kept;
      for (char32_t c : word)
        if (std::string_view(unicode::category(c)) != "Mn") kept.push_back(c);
      word.swap(kept);
    }
    std::u32string piece;
    for (char32_t c : word) {
      if (is_bert_punctuation(c)) {
        if (!piece.empty()) out.push_back(unicode::encode_utf8(piece));
        piece.clear();
        out.push_back(unicode::encode_utf8(c));
      } else {
        piece.push_back(c);
      }
    }
    if (!piece.empty()) out.push_back(unicode::encode_utf8(piece));
  }
}

std::vector<std::string> build_wordpiece_vocab(const std::vector<std::string>& texts, int64_t vocab_size,
                                               bool lower_case) {
  std::vector<std::string> vocab = {"[PAD]", "[unused0]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
  MSMEDCAP_CHECK(vocab_size > static_cast<int64_t>(vocab.size()), "wordpiece: vocab_size must exceed ", vocab.size(),
                 " (the special tokens), got ", vocab_size);
  std::unordered_map<std::string, int64_t> words, chars;
  for (const auto& text : texts) {
    std::vector<std::string> tokens;
    bert_basic_tokenize(unicode::decode_utf8(text), lower_case, tokens);
    for (const auto& w : tokens) {
      ++words[w];
      for (char32_t c : unicode::decode_utf8(w)) chars[unicode::encode_utf8(c)] += 1;
    }
  }
  auto by_count = [](const std::unordered_map<std::string, int64_t>& m) {
    std::vector<std::pair<std::string, int64_t>> v(m.begin(), m.end());
    std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) {
      return a.second != b.second ? a.second > b.second : a.first < b.first;
    });
    return v;
  };
  // Every character, alone and as a continuation: no word of the corpus becomes [UNK].
  const auto char_list = by_count(chars);
  MSMEDCAP_CHECK(static_cast<int64_t>(vocab.size() + 2 * char_list.size()) <= vocab_size, "wordpiece: the corpus has ",
                 char_list.size(), " distinct characters; vocab_size ", vocab_size, " is too small to hold them (need ",
                 vocab.size() + 2 * char_list.size(), ")");
  for (const auto& [c, n] : char_list) vocab.push_back(c);
  for (const auto& [c, n] : char_list) vocab.push_back("##" + c);
  std::unordered_map<std::string, bool> have(vocab.size());
  for (const auto& t : vocab) have[t] = true;
  for (const auto& [w, n] : by_count(words)) {
    if (static_cast<int64_t>(vocab.size()) >= vocab_size) break;
    if (!have.count(w)) vocab.push_back(w);
  }
  return vocab;
}

void WordPieceTokenizer::wordpiece(const std::string& word, std::vector<std::string>& out) const {
  const std::u32string chars = unicode::decode_utf8(word);
  if (chars.size() > kMaxWordChars) {
    out.push_back(tokens_[static_cast<size_t>(unk_id_)]);
    return;
  }
  std::vector<std::string> pieces;
  size_t start = 0;
  while (start < chars.size()) {
    size_t end = chars.size();
    std::string found;
    while (start < end) {
      std::string sub = unicode::encode_utf8(std::u32string_view(chars).substr(start, end - start));
      if (start > 0) sub = "##" + sub;
      if (ids_.count(sub) != 0) {
        found = std::move(sub);
        break;
      }
      --end;
    }
    if (found.empty()) {
      out.push_back(tokens_[static_cast<size_t>(unk_id_)]);
      return;
    }
    pieces.push_back(std::move(found));
    start = end;
  }
  out.insert(out.end(), pieces.begin(), pieces.end());
}

std::vector<std::string> WordPieceTokenizer::tokenize(const std::string& text) const {
  std::vector<std::string> out;
  for (const auto& [part, special] : split_special_tokens(text, special_)) {
    if (special) {
      out.push_back(part);
      continue;
    }
    std::vector<std::string> words;
    bert_basic_tokenize(unicode::decode_utf8(part), lower_case_, words);
    for (const auto& w : words) wordpiece(w, out);
  }
  return out;
}

std::vector<int64_t> WordPieceTokenizer::encode(const std::string& text, bool add_special_tokens) const {
  std::vector<int64_t> ids;
  if (add_special_tokens) ids.push_back(cls_id_);
  for (const auto& t : tokenize(text)) {
    const int64_t id = token_to_id(t);
    ids.push_back(id >= 0 ? id : unk_id_);
  }
  if (add_special_tokens) ids.push_back(sep_id_);
  return ids;
}

std::string WordPieceTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  std::string text;
  for (int64_t id : ids) {
    MSMEDCAP_CHECK(id >= 0 && id < vocab_size(), "WordPiece decode: id ", id, " is outside the vocabulary of ",
                   vocab_size());
    const std::string& t = tokens_[static_cast<size_t>(id)];
    const bool special = std::find(special_.begin(), special_.end(), t) != special_.end();
    if (skip_special_tokens && special) continue;
    if (t.rfind("##", 0) == 0 && !text.empty()) {
      text += t.substr(2);
    } else {
      if (!text.empty()) text.push_back(' ');
      text += t;
    }
  }
  // HF clean_up_tokenization.
  static const std::pair<const char*, const char*> kFix[] = {
      {" .", "."},     {" ?", "?"},   {" !", "!"},   {" ,", ","},     {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : kFix) {
    const std::string f(from), t(to);
    for (size_t p = text.find(f); p != std::string::npos; p = text.find(f, p + t.size())) text.replace(p, f.size(), t);
  }
  return text;
}

}  // namespace msmedcap::data
