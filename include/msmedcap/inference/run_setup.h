#pragma once
/// What the inference commands (caption, retrieve, export, extract-features) and the training's
/// validation captions build from a resolved run config.

#include <memory>

#include "msmedcap/config/run_config.h"
#include "msmedcap/data/tokenizer.h"
#include "msmedcap/inference/batch_caption.h"
#include "msmedcap/models/msmedcap.h"

namespace msmedcap::inference {

/// The config's model with its weights (models::load_model), on runtime.device in
/// runtime.dtype, in eval mode. Weights with a NaN or infinite value (a diverged run's) are an
/// error naming the parameter and the files: captioning with them would write empty captions
/// and exit 0.
models::MsMedCapModel load_inference_model(const config::RunConfig& cfg);

/// How a run captions: its decoder tokenizer, search and prompt, and batch settings.
struct RunCaptioning {
  std::shared_ptr<const data::TextTokenizer> tokenizer;
  CaptionOptions options;     ///< after train.prompt; `generate`, ending at train.eos_text by default
  BatchCaptionOptions batch;  ///< loader.batch_size, loader.workers, data.transform
};

/// The decoder tokenizer (tokenizers.decoder, required) and the caption (`generate`,
/// train.prompt, train.eos_text) and batch settings of `cfg`.
RunCaptioning run_captioning(const config::RunConfig& cfg);

}  // namespace msmedcap::inference
