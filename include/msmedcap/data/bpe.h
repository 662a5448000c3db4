#pragma once
/// Byte-level BPE as HuggingFace's GPT2Tokenizer runs it (GPT-2, OPT): the GPT-2
/// pre-tokenisation pattern, bytes mapped to printable code points, merges applied by rank.
/// Special tokens in the vocabulary (<s>, </s>, <pad>, <unk>, <|endoftext|>) written in the text
/// are kept whole.

#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "msmedcap/data/tokenizer.h"

namespace msmedcap::data {

class BpeTokenizer : public TextTokenizer {
 public:
  /// Reads `vocab.json` (token -> id) and `merges.txt` ("#version" line optional).
  BpeTokenizer(const std::string& vocab_path, const std::string& merges_path, const TokenizerOptions& options = {});
  /// The same from a vocabulary (token, id) and merges in rank order, e.g. read from an HF
  /// `tokenizer.json`; `origin` names them in errors.
  BpeTokenizer(const std::vector<std::pair<std::string, int64_t>>& vocab,
               const std::vector<std::pair<std::string, std::string>>& merges, const TokenizerOptions& options,
               const std::string& origin);

  std::vector<int64_t> encode(const std::string& text, bool add_special_tokens = true) const override;
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens = true) const override;
  std::vector<std::string> tokenize(const std::string& text) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(tokens_.size()); }
  int64_t token_to_id(const std::string& token) const override;
  std::string kind() const override { return "bpe"; }

  /// The GPT-2 pre-tokenisation of text (exposed for tests).
  static std::vector<std::u32string> pretokenize(const std::u32string& text);

 private:
  void init(const std::vector<std::pair<std::string, int64_t>>& vocab,
            const std::vector<std::pair<std::string, std::string>>& merges, const std::string& origin);
  void bpe(const std::string& word, std::vector<std::string>& out) const;

  bool add_bos_;
  std::vector<std::string> tokens_;
  std::unordered_map<std::string, int64_t> ids_;
  std::map<std::pair<std::string, std::string>, int> ranks_;
  std::vector<std::string> special_;
  std::vector<bool> is_special_;
};

}  // namespace msmedcap::data
