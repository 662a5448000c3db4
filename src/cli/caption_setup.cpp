#include "caption_setup.h"

#include <algorithm>

#include "msmedcap/config/config_io.h"
#include "msmedcap/core/check.h"

namespace msmedcap::cli {

RunCaptioning run_captioning(const config::RunConfig& cfg) {
  MSMEDCAP_CHECK(!cfg.tokenizers.decoder.empty(), "caption: the config names no decoder tokenizer (tokenizers.decoder)");
  RunCaptioning r;
  r.tokenizer = data::load_tokenizer(cfg.tokenizers.decoder);
  r.options.generate = inference::generate_options(cfg.generate, *r.tokenizer, cfg.train.eos_text);
  r.options.prompt = cfg.train.prompt;
  r.batch.batch_size = cfg.loader.batch_size;
  r.batch.workers = std::max<int64_t>(1, cfg.loader.workers);
  r.batch.transform = cfg.data.transform;
  return r;
}

}  // namespace msmedcap::cli
