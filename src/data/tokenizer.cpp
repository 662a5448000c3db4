#include "msmedcap/data/tokenizer.h"

#include <algorithm>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "msmedcap/config/json_depth.h"
#include "msmedcap/core/atomic_file.h"
#include "msmedcap/core/check.h"
#include "msmedcap/data/bpe.h"
#include "msmedcap/data/sentencepiece.h"
#include "msmedcap/data/wordpiece.h"

namespace msmedcap::data {
namespace {

namespace fs = std::filesystem;

/// SentencePiece behind the common interface (LLaMA: <s> first, no eos).
class SentencePieceTextTokenizer : public TextTokenizer {
 public:
  explicit SentencePieceTextTokenizer(const std::string& path) : spm_(path) {
    pad_id_ = spm_.pad_id();
    bos_id_ = spm_.bos_id();
    eos_id_ = spm_.eos_id();
    unk_id_ = spm_.unk_id();
  }
  std::vector<int64_t> encode(const std::string& text, bool add_special_tokens) const override {
    std::vector<int64_t> ids;
    if (add_special_tokens && bos_id_ >= 0) ids.push_back(bos_id_);
    for (int32_t id : spm_.encode(text)) ids.push_back(id);
    return ids;
  }
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const override {
    std::vector<int32_t> kept;
    for (int64_t id : ids) {
      MSMEDCAP_CHECK(id >= 0 && id < vocab_size(), "SentencePiece decode: id ", id, " is outside the vocabulary");
      if (skip_special_tokens && (id == bos_id_ || id == eos_id_ || id == pad_id_)) continue;
      kept.push_back(static_cast<int32_t>(id));
    }
    return spm_.decode(kept);
  }
  std::vector<std::string> tokenize(const std::string& text) const override {
    std::vector<std::string> out;
    for (int32_t id : spm_.encode(text)) out.push_back(spm_.id_to_piece(id));
    return out;
  }
  int64_t vocab_size() const override { return spm_.vocab_size(); }
  int64_t token_to_id(const std::string& token) const override {
    const int id = spm_.piece_to_id(token);
    return (id == spm_.unk_id() && token != spm_.id_to_piece(id)) ? -1 : id;
  }
  std::string kind() const override { return "sentencepiece"; }

 private:
  SentencePieceTokenizer spm_;
};

}  // namespace

std::vector<std::pair<std::string, bool>> split_special_tokens(const std::string& text,
                                                               const std::vector<std::string>& specials) {
  std::vector<std::pair<std::string, bool>> parts;
  size_t start = 0, i = 0;
  while (i < text.size()) {
    const std::string* hit = nullptr;
    for (const auto& s : specials)
      if (text.compare(i, s.size(), s) == 0 && (hit == nullptr || s.size() > hit->size())) hit = &s;
    if (hit == nullptr) {
      ++i;
      continue;
    }
    if (i > start) parts.emplace_back(text.substr(start, i - start), false);
    parts.emplace_back(*hit, true);
    i += hit->size();
    start = i;
  }
  if (start < text.size()) parts.emplace_back(text.substr(start), false);
  return parts;
}

namespace {

/// An HF `tokenizer.json` (the tokenizers library's file, all a hub folder may carry): its
/// byte-level BPE (GPT-2, OPT) or WordPiece (BERT) model, with the added tokens in the vocabulary.
std::unique_ptr<TextTokenizer> load_tokenizer_json(const std::string& path, const TokenizerOptions& options) {
  nlohmann::json j;
  const std::string text = core::read_file(path);
  config::check_json_depth(text, path);
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    MSMEDCAP_FAIL(path, ": invalid JSON: ", e.what());
  }
  MSMEDCAP_CHECK(j.is_object() && j.contains("model") && j["model"].is_object(), path,
                 ": not an HF tokenizer.json (no \"model\" object)");
  const auto& model = j["model"];
  const std::string type = model.value("type", std::string());
  MSMEDCAP_CHECK(model.contains("vocab") && model["vocab"].is_object(), path,
                 ": model.vocab must be an object {token: id}");
  std::vector<std::pair<std::string, int64_t>> vocab;
  for (auto it = model["vocab"].begin(); it != model["vocab"].end(); ++it) {
    MSMEDCAP_CHECK(it.value().is_number_integer() && it.value().get<int64_t>() >= 0, path, ": model.vocab token '",
                   it.key().substr(0, 40), "' has no non-negative integer id");
    vocab.emplace_back(it.key(), it.value().get<int64_t>());
  }
  if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
    for (const auto& t : j["added_tokens"]) {
      MSMEDCAP_CHECK(t.is_object() && t.contains("id") && t["id"].is_number_integer() && t.contains("content") &&
                         t["content"].is_string(),
                     path, ": added_tokens entries need an integer id and a content");
      vocab.emplace_back(t["content"].get<std::string>(), t["id"].get<int64_t>());
    }
  }
  if (type == "BPE") {
    const std::string pre = j.contains("pre_tokenizer") && j["pre_tokenizer"].is_object()
                                ? j["pre_tokenizer"].value("type", std::string())
                                : std::string();
    MSMEDCAP_CHECK(pre == "ByteLevel", path, ": a BPE tokenizer.json with pre_tokenizer '", pre,
                   "' is not supported (byte-level BPE, as GPT-2 and OPT, is)");
    std::vector<std::pair<std::string, std::string>> merges;
    MSMEDCAP_CHECK(model.contains("merges") && model["merges"].is_array(), path, ": model.merges must be a list");
    for (const auto& m : model["merges"]) {
      if (m.is_string()) {  // "a b" (tokenizers < 0.20)
        const std::string line = m.get<std::string>();
        const auto sp = line.find(' ');
        MSMEDCAP_CHECK(sp != std::string::npos && sp > 0 && sp + 1 < line.size(), path, ": merge '", line.substr(0, 40),
                       "' is not two tokens separated by a space");
        merges.emplace_back(line.substr(0, sp), line.substr(sp + 1));
      } else {  // ["a", "b"] (tokenizers >= 0.20)
        MSMEDCAP_CHECK(m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string(), path,
                       ": a merge must be \"a b\" or [\"a\", \"b\"]");
        merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
      }
    }
    return std::make_unique<BpeTokenizer>(vocab, merges, options, path);
  }
  if (type == "WordPiece") {
    std::sort(vocab.begin(), vocab.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
    std::vector<std::string> tokens;
    for (const auto& [token, id] : vocab) {
      MSMEDCAP_CHECK(id == static_cast<int64_t>(tokens.size()), path,
                     ": WordPiece ids must run 0..N-1 without gaps (id ", id, " at position ", tokens.size(), ")");
      tokens.push_back(token);
    }
    return std::make_unique<WordPieceTokenizer>(std::move(tokens), options, path);
  }
  MSMEDCAP_FAIL(path, ": tokenizer.json model type '", type,
                "' is not supported (BPE and WordPiece are; for SentencePiece give tokenizer.model)");
}

}  // namespace

std::unique_ptr<TextTokenizer> load_tokenizer(const std::string& path, const TokenizerOptions& options) {
  const fs::path p(path);
  MSMEDCAP_CHECK(fs::exists(p), path, ": no such tokenizer file or folder");
  if (fs::is_directory(p)) {
    if (fs::exists(p / "vocab.txt")) return std::make_unique<WordPieceTokenizer>((p / "vocab.txt").string(), options);
    if (fs::exists(p / "vocab.json") && fs::exists(p / "merges.txt"))
      return std::make_unique<BpeTokenizer>((p / "vocab.json").string(), (p / "merges.txt").string(), options);
    if (fs::exists(p / "tokenizer.model"))
      return std::make_unique<SentencePieceTextTokenizer>((p / "tokenizer.model").string());
    if (fs::exists(p / "tokenizer.json")) return load_tokenizer_json((p / "tokenizer.json").string(), options);
    MSMEDCAP_FAIL(path, ": no vocab.txt, vocab.json + merges.txt, tokenizer.model or tokenizer.json in this folder");
  }
  if (p.filename() == "tokenizer.json") return load_tokenizer_json(path, options);
  const std::string ext = p.extension().string();
  if (ext == ".model") return std::make_unique<SentencePieceTextTokenizer>(path);
  if (ext == ".txt") return std::make_unique<WordPieceTokenizer>(path, options);
  if (ext == ".json") {
    const fs::path merges = p.parent_path() / "merges.txt";
    MSMEDCAP_CHECK(fs::exists(merges), path, ": a BPE vocab.json needs merges.txt beside it");
    return std::make_unique<BpeTokenizer>(path, merges.string(), options);
  }
  MSMEDCAP_FAIL(path, ": unknown tokenizer file (expected vocab.txt, vocab.json, or a .model)");
}

std::optional<int64_t> single_token_after_word(const TextTokenizer& tokenizer, const std::string& suffix) {
  const auto word = tokenizer.encode("a", false), with = tokenizer.encode("a" + suffix, false);
  if (with.size() != word.size() + 1 || !std::equal(word.begin(), word.end(), with.begin())) return std::nullopt;
  return with.back();
}

}  // namespace msmedcap::data
