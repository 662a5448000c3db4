#pragma once
/// What the inference commands (caption, retrieve, export, extract-features) and the training's
/// validation captions build from a resolved run config.

#include <memory>
#include <optional>
#include <string>

#include "msmedcap/config/run_config.h"
#include "msmedcap/data/tokenizer.h"
#include "msmedcap/inference/batch_caption.h"
#include "msmedcap/models/msmedcap.h"
#include "msmedcap/models/packed_linear.h"

namespace msmedcap::inference {

/// The dtype a model's tensors are loaded in for runtime.dtype: float32 for int8 and w8a8
/// (decoding formats of the decoder alone), else runtime.dtype itself.
c10::ScalarType load_dtype(const config::RuntimeConfig& runtime);
/// The format the decoder's weights are packed in for decoding (DecoderLM::pack_weights): on the
/// CPU the one runtime.dtype names (fp32 packs nothing new: the loop reads the weights
/// themselves); none on CUDA, where ATen's products run.
std::optional<models::WeightFormat> decode_weight_format(const config::RuntimeConfig& runtime);

/// The config's model with its weights (models::load_model), on runtime.device in
/// load_dtype(), in eval mode, its decoder packed in decode_weight_format(). Weights with a NaN
/// or infinite value (a diverged run's) are an error naming the parameter and the files:
/// captioning with them would write empty captions and exit 0. `command`, when given, names a
/// command that does not decode (export, retrieve, extract-features, nearest): runtime.dtype
/// int8 and w8a8 are refused there, as they would change nothing.
models::MsMedCapModel load_inference_model(const config::RunConfig& cfg, const std::string& command = "");

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
