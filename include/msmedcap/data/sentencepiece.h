#pragma once
/// SentencePiece tokenizer (LLaMA-family `tokenizer.model`) through the sentencepiece bridge,
/// a shared object loaded with dlopen(RTLD_LOCAL | RTLD_DEEPBIND) because Debian's
/// libsentencepiece carries a protobuf that clashes with libtorch's
/// (third_party/sentencepiece_bridge/README.md).

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace msmedcap::data {

namespace detail {
struct SpmBridge;
}

/// A loaded SentencePiece model. Encoding is thread-safe (sentencepiece's processor is const).
class SentencePieceTokenizer {
 public:
  /// Loads a `.model` file; throws msmedcap::Error naming the file on failure.
  explicit SentencePieceTokenizer(const std::string& model_path);
  ~SentencePieceTokenizer();
  SentencePieceTokenizer(const SentencePieceTokenizer&) = delete;
  SentencePieceTokenizer& operator=(const SentencePieceTokenizer&) = delete;

  /// Token ids of UTF-8 text (no bos/eos added).
  std::vector<int32_t> encode(const std::string& text) const;
  /// UTF-8 text of ids.
  std::string decode(const std::vector<int32_t>& ids) const;
  int vocab_size() const;
  /// Id of a piece (the unk id when absent).
  int piece_to_id(const std::string& piece) const;
  /// Piece of an id; throws for ids outside the vocabulary.
  std::string id_to_piece(int id) const;
  int unk_id() const;
  int bos_id() const;  ///< -1 when the model has none
  int eos_id() const;  ///< -1 when the model has none
  int pad_id() const;  ///< -1 when the model has none

  /// Trains a model with spm_train-style arguments, e.g.
  /// "--input=corpus.txt --model_prefix=out/spm --vocab_size=500". Throws on failure.
  static void train(const std::string& args);

  /// Path of the bridge library in use (loading it if needed); throws when it cannot be found.
  static std::string bridge_path();

 private:
  const detail::SpmBridge* bridge_;
  void* handle_ = nullptr;
  std::string path_;
};

}  // namespace msmedcap::data
