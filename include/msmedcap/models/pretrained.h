#pragma once
/// Building models and loading pretrained weights: HF model directories (config.json +
/// model.safetensors or a sharded index) for Blip2ForConditionalGeneration and SamModel, and
/// msmedcap model configs that compose several weight files under component prefixes.

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "msmedcap/config/fields.h"
#include "msmedcap/config/model_config.h"
#include "msmedcap/config/run_config.h"
#include "msmedcap/io/state_dict.h"
#include "msmedcap/models/msmedcap.h"
#include "msmedcap/models/sam_encoder.h"

namespace msmedcap::models {

/// Which HF architecture a config.json describes.
enum class HfKind { kBlip2, kSam, kClipVision, kCausalLm };

/// The architecture of an HF config.json ("model_type": "blip-2", "sam", "clip_vision_model" or
/// "clip", or a causal LM: "opt", "llama", "gpt2"); throws otherwise.
HfKind hf_kind(const config::Json& hf, const std::string& path);

/// msmedcap's ModelConfig for an HF Blip2ForConditionalGeneration config (CLIP branch + LLM;
/// SAM branch off). HF defaults fill absent fields; unknown fields are ignored.
config::ModelConfig model_config_from_hf_blip2(const config::Json& hf, const std::string& path);

/// VisionConfig (type clip) from an HF CLIPVisionModel config, or a CLIPModel's vision_config.
config::VisionConfig clip_vision_config_from_hf(const config::Json& hf, const std::string& path);

/// SamEncoderConfig from an HF SamModel config's vision_config.
config::SamEncoderConfig sam_config_from_hf(const config::Json& hf, const std::string& path);

/// DecoderConfig from an HF OPT / Llama / GPT-2 config (text_config of BLIP-2, or a causal LM).
config::DecoderConfig decoder_config_from_hf(const config::Json& text, const std::string& path);

/// HuggingFace's initialisation (`_init_weights` of BERT/OPT/CLIP with initializer_range `std`)
/// of the parameters of Linear, Embedding, Conv1D and Conv2d (weights N(0, std), biases 0) and
/// LayerNorm (weight 1, bias 0). Each parameter draws from its own generator, seeded by `seed`
/// and its name, so a parameter gets the same values whichever others are initialised with it;
/// `only` (when given) limits the work to those names. LibTorch's own defaults (Kaiming, N(0, 1)
/// embeddings) give a from-scratch model losses of 20-40 nats instead of log(V).
void init_weights(torch::nn::Module& model, uint64_t seed, const std::set<std::string>* only = nullptr,
                  double std = 0.02);

/// Builds the composite (one builder for every architecture the config names) with random
/// weights: init_weights with a seed drawn from LibTorch's global generator (seed that first
/// for reproducible weights).
MsMedCapModel build_model(const config::ModelConfig& cfg);

/// Where a loaded model lives: its floating-point parameters in `dtype`, all on `device`.
struct LoadTarget {
  c10::ScalarType dtype = c10::kFloat;
  c10::Device device = c10::Device(c10::kCPU);
  /// Weights that need no conversion stay in the file's pages, shared with the page cache, not
  /// copied (io::LoadOptions::share_file_pages): for a model that is only read (inference).
  bool share_file_pages = false;
};

/// Builds cfg's model without initialising it and fills it from `sources` in order (a later
/// file wins), each tensor read once from its memory map into target.dtype on target.device.
/// Parameters no source has (allowed by `policy.allow_missing`) get the values build_model
/// would give them under the same global seed, and only they are initialised. Without sources
/// this is build_model moved to the target. The model is returned in eval mode (no dropout),
/// as HF's from_pretrained returns it; training sets its trained modules to train().
MsMedCapModel load_model(const config::ModelConfig& cfg, const std::vector<config::WeightsSource>& sources,
                         const config::LoadConfig& policy, const LoadTarget& target = {});

/// The run's model, as `train`, `caption`, `export` and every other command build it: the
/// global seed set to runtime.seed first (so the parameters no weights file has are the same on
/// every rank and in every later command), then load_model of run.model, run.weights and
/// run.load. Warns when the config names no weights.
MsMedCapModel load_model(const config::RunConfig& run, const LoadTarget& target = {});

/// Loads `path` (file, sharded index or directory) into the model, checkpoint names prefixed by
/// `prefix`. Beyond `policy`, a tied LM head present in the file and SAM's prompt encoder and
/// mask decoder (unused by captioning) are accepted.
io::LoadReport load_weights(torch::nn::Module& model, const std::string& path, const std::string& prefix,
                            const config::LoadConfig& policy, const std::string& format = "hf",
                            const std::optional<LoadTarget>& target = {});

/// Loads several weight sources in order (e.g. an HF LLM directory under "language_model.",
/// a SAM file under "sam_model.", trained Q-Formers) into an existing model (resuming, merging)
/// and checks that together they cover every parameter except what `policy.allow_missing`
/// allows. Returns the names loaded.
std::vector<std::string> load_weight_sources(torch::nn::Module& model,
                                             const std::vector<config::WeightsSource>& sources,
                                             const config::LoadConfig& policy);

/// Moves every parameter and buffer to `target.device` and the floating-point ones to
/// `target.dtype`, replacing their data (so a deferred, never-written tensor costs nothing).
void move_to(torch::nn::Module& model, const LoadTarget& target);

/// Reads `dir`/config.json; the file is named in errors.
config::Json read_hf_config(const std::string& dir);

}  // namespace msmedcap::models
