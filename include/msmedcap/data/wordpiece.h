#pragma once
/// BERT's tokenizer as HuggingFace's BertTokenizer runs it: clean text (drop controls, map
/// whitespace to spaces), space around CJK ideographs, NFC, whitespace split, lower-case and
/// strip accents (NFD minus Mn), split on punctuation, then greedy longest-match WordPiece
/// with "##" continuations (words over 100 characters become [UNK]). Special tokens written in
/// the text ([CLS], [SEP], [PAD], [MASK], [UNK], [DEC]) are kept whole.

#include <string>
#include <unordered_map>
#include <vector>

#include "msmedcap/data/tokenizer.h"

namespace msmedcap::data {

class WordPieceTokenizer : public TextTokenizer {
 public:
  /// Reads `vocab.txt` (one token per line, id = line number).
  WordPieceTokenizer(const std::string& vocab_path, const TokenizerOptions& options = {});
  /// The same from the tokens in id order; `vocab_path` names them in errors.
  WordPieceTokenizer(std::vector<std::string> tokens, const TokenizerOptions& options, const std::string& vocab_path);

  std::vector<int64_t> encode(const std::string& text, bool add_special_tokens = true) const override;
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens = true) const override;
  std::vector<std::string> tokenize(const std::string& text) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(tokens_.size()); }
  int64_t token_to_id(const std::string& token) const override;
  std::string kind() const override { return "wordpiece"; }
  int64_t cls_id() const { return cls_id_; }
  int64_t sep_id() const { return sep_id_; }
  /// [DEC] (the Q-Former's generation bos), -1 without it.
  int64_t dec_id() const { return dec_id_; }

 private:
  void wordpiece(const std::string& word, std::vector<std::string>& out) const;

  bool lower_case_;
  std::vector<std::string> tokens_;
  std::unordered_map<std::string, int64_t> ids_;
  std::vector<std::string> special_;
  int64_t cls_id_ = -1, sep_id_ = -1, dec_id_ = -1;
};

/// BERT's basic tokenization (clean, CJK spacing, NFC, whitespace split, optional lower-case and
/// accent stripping, punctuation split) of UTF-32 text, appended to `out`.
void bert_basic_tokenize(const std::u32string& text, bool lower_case, std::vector<std::string>& out);

/// A WordPiece vocabulary for `texts` (`msmedcap train-tokenizer --kind wordpiece`): BERT's
/// special tokens ([PAD] [unused0] [UNK] [CLS] [SEP] [MASK]), every character of the corpus
/// alone and as a "##" continuation (so no word becomes [UNK]), then whole words by frequency
/// (ties alphabetical) up to `vocab_size` tokens. A word-level vocabulary with character
/// fallback, not HuggingFace's WordPieceTrainer (which merges sub-words): meant for small,
/// closed caption vocabularies. Throws when vocab_size cannot hold the characters.
std::vector<std::string> build_wordpiece_vocab(const std::vector<std::string>& texts, int64_t vocab_size,
                                               bool lower_case = true);

}  // namespace msmedcap::data
