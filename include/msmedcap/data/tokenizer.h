#pragma once
/// The text tokenizers behind one interface: WordPiece (BERT `vocab.txt`, for the Q-Formers),
/// byte-level BPE (`vocab.json` + `merges.txt`, OPT and GPT-2) and SentencePiece (`.model`,
/// the LLaMA family). Ids are checked against goldens from an independent Python implementation of HF's
/// slow-tokenizer algorithms (tests/golden/make_tokenizer_golden.py).

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace msmedcap::data {

class TextTokenizer {
 public:
  virtual ~TextTokenizer() = default;
  /// Ids of UTF-8 text. With `add_special_tokens`, the ones the model was trained with:
  /// [CLS] ... [SEP] (WordPiece), </s> first (OPT), <s> first (LLaMA); none for GPT-2.
  virtual std::vector<int64_t> encode(const std::string& text, bool add_special_tokens = true) const = 0;
  /// Text of ids; special tokens dropped when `skip_special_tokens`.
  virtual std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens = true) const = 0;
  /// Token strings of text, without special tokens added (for inspection and tests).
  virtual std::vector<std::string> tokenize(const std::string& text) const = 0;
  virtual int64_t vocab_size() const = 0;
  /// Id of a token string, or -1.
  virtual int64_t token_to_id(const std::string& token) const = 0;
  int64_t pad_id() const { return pad_id_; }
  int64_t bos_id() const { return bos_id_; }
  int64_t eos_id() const { return eos_id_; }
  int64_t unk_id() const { return unk_id_; }
  /// "wordpiece", "bpe" or "sentencepiece".
  virtual std::string kind() const = 0;

 protected:
  int64_t pad_id_ = -1, bos_id_ = -1, eos_id_ = -1, unk_id_ = -1;
};

/// Splits text into plain pieces and special tokens written in it, (piece, is_special) in
/// order, the longest special token winning at each position: HF splits on added tokens so
/// before tokenising the rest.
std::vector<std::pair<std::string, bool>> split_special_tokens(const std::string& text,
                                                               const std::vector<std::string>& specials);

/// Options of the tokenizer a model uses.
struct TokenizerOptions {
  /// WordPiece: lower-case and strip accents (bert-base-uncased).
  bool lower_case = true;
  /// WordPiece: add `[DEC]` after the vocabulary (BLIP-2's Q-Former bos, id 30522 for BERT).
  bool add_dec_token = true;
  /// BPE: prepend the bos token (OPT prepends </s>; GPT-2 adds nothing).
  bool add_bos = true;
};

/// Loads a tokenizer from a file or a HuggingFace model folder: `vocab.txt` -> WordPiece,
/// `vocab.json` + `merges.txt` -> BPE, `*.model` / `tokenizer.model` -> SentencePiece, and
/// `tokenizer.json` alone (byte-level BPE or WordPiece; its added tokens join the vocabulary).
/// Throws naming the path when none is found or a file is malformed.
std::unique_ptr<TextTokenizer> load_tokenizer(const std::string& path, const TokenizerOptions& options = {});

/// The one token `suffix` adds after a word ("a" + suffix, no special tokens), as a text holds it
/// mid-sentence; none when it adds more or changes the word's tokens.
std::optional<int64_t> single_token_after_word(const TextTokenizer& tokenizer, const std::string& suffix);

}  // namespace msmedcap::data
