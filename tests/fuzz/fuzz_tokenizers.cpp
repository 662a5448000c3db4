// The WordPiece (BERT, the Q-Former's) and byte-level BPE (OPT, GPT-2) tokenizers on arbitrary
// text, invalid UTF-8 included: encoding must not crash, and decoding the ids must not either.
#include <cstdint>
#include <memory>
#include <string>

#include "msmedcap/core/check.h"
#include "msmedcap/data/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto bert = msmedcap::data::load_tokenizer(std::string(MSMEDCAP_TEST_DATA_DIR) + "/tokenizers/bert");
  static const auto opt = msmedcap::data::load_tokenizer(std::string(MSMEDCAP_TEST_DATA_DIR) + "/tokenizers/opt");
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (const auto* tok : {bert.get(), opt.get()}) {
    try {
      const auto ids = tok->encode(text);
      for (const auto id : ids) {
        if (id < 0 || id >= tok->vocab_size()) __builtin_trap();
      }
      (void)tok->decode(ids);
    } catch (const msmedcap::Error&) {
    }
  }
  return 0;
}
