#pragma once
/// The `msmedcap forward` contract, for tests and for feature extraction: read named inputs
/// (pixel_values, sam_pixel_values, input_ids, attention_mask, labels), run the model and
/// return every output it has under the HF fixture names; optionally decode from the
/// first K tokens of input_ids with the
/// generation settings given (greedy, beam search or sampling, as `caption` decodes).

#include <c10/core/Device.h>

#include <optional>
#include <string>

#include "msmedcap/config/run_config.h"
#include "msmedcap/inference/search.h"
#include "msmedcap/io/tensor_store.h"
#include "msmedcap/models/packed_linear.h"

namespace msmedcap::inference {

/// Where the model comes from: an HF directory (Blip2ForConditionalGeneration, SamModel,
/// CLIPVisionModel or a causal LM) or a resolved msmedcap config with its weights list; and
/// the device it runs on.
struct ModelSource {
  std::string hf_dir;                      ///< non-empty: load this HF model directory
  const config::RunConfig* run = nullptr;  ///< else: build run->model, load run->weights
  c10::Device device = c10::Device(c10::kCPU);
  c10::ScalarType dtype = c10::kFloat;  ///< the weights' and activations' type (run_setup.h load_dtype)
  /// The decoder's weights packed in this format after loading (run_setup.h decode_weight_format).
  std::optional<models::WeightFormat> decoder_weights;
};

/// Generation request: settings and how many leading input_ids form the prompt.
struct GenerateRequest {
  GenerateOptions options;
  int64_t prompt_tokens = 0;
};

/// Runs the forward contract. Outputs: vision_embeddings_output, vision_last_hidden_state,
/// vision_pooler_output, qformer_last_hidden_state, language_projection, sam_image_embeddings,
/// sam_qformer_last_hidden_state, sam_language_projection, logits, loss (with labels),
/// sequences (with a generate request); a SAM-only model gives vision_last_hidden_state and
/// vision_hidden_state_i; a CLIP vision model the vision_* outputs; a standalone causal LM
/// (OPT/LLaMA/GPT-2 directory) logits, loss and sequences. Without input_ids only the image
/// outputs are computed. Inputs move to `source.device`; outputs come back on the CPU.
io::StateDict run_forward(const ModelSource& source, const io::TensorStore& inputs,
                          const std::optional<GenerateRequest>& generate);

}  // namespace msmedcap::inference
