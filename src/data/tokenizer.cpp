#include "msmedcap/data/tokenizer.h"

#include <filesystem>

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
    if (hit == nullptr) { ++i; continue; }
    if (i > start) parts.emplace_back(text.substr(start, i - start), false);
    parts.emplace_back(*hit, true);
    i += hit->size();
    start = i;
  }
  if (start < text.size()) parts.emplace_back(text.substr(start), false);
  return parts;
}


std::unique_ptr<TextTokenizer> load_tokenizer(const std::string& path, const TokenizerOptions& options) {
  const fs::path p(path);
  MSMEDCAP_CHECK(fs::exists(p), path, ": no such tokenizer file or folder");
  if (fs::is_directory(p)) {
    if (fs::exists(p / "vocab.txt")) return std::make_unique<WordPieceTokenizer>((p / "vocab.txt").string(), options);
    if (fs::exists(p / "vocab.json") && fs::exists(p / "merges.txt"))
      return std::make_unique<BpeTokenizer>((p / "vocab.json").string(), (p / "merges.txt").string(), options);
    if (fs::exists(p / "tokenizer.model")) return std::make_unique<SentencePieceTextTokenizer>((p / "tokenizer.model").string());
    MSMEDCAP_FAIL(path, ": no vocab.txt, vocab.json + merges.txt or tokenizer.model in this folder");
  }
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

}  // namespace msmedcap::data
