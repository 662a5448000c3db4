#pragma once
// How a run captions by default, shared by `caption` and `train`'s validation captions.

#include <memory>

#include "msmedcap/config/run_config.h"
#include "msmedcap/data/tokenizer.h"
#include "msmedcap/inference/batch_caption.h"

namespace msmedcap::cli {

struct RunCaptioning {
  std::shared_ptr<const data::TextTokenizer> tokenizer;
  inference::CaptionOptions options;     ///< after train.prompt; greedy ending at train.eos_text by default
  inference::BatchCaptionOptions batch;  ///< loader.batch_size, loader.workers, data.transform
};

/// The decoder tokenizer (tokenizers.decoder, required) and the caption (`generate`,
/// train.prompt, train.eos_text) and batch settings of `cfg`.
RunCaptioning run_captioning(const config::RunConfig& cfg);

}  // namespace msmedcap::cli
