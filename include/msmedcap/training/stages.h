#pragma once
/// Stages (docs/MODEL.md, "Training stages"): which parameters of the composite train. Frozen parts
/// lose requires_grad and stay in eval mode; the trainable ones are returned by name.

#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

#include "msmedcap/config/train_config.h"
#include "msmedcap/models/msmedcap.h"

namespace msmedcap::training {

/// Parameter-name prefixes a stage trains:
///   stage1_clip: qformer., query_tokens, vision_projection., text_projection., itm_head., temp
///   stage1_sam:  the same with the sam_ prefix
///   stage2:      qformer., query_tokens, language_projection. and their sam_ twins (those present)
///   caption:     stage2's, plus vision_model. with train_vision, language_model. with train_llm
///   decoder_lm:  language_model.
std::vector<std::string> trainable_prefixes(const config::StageConfig& stage, const config::ModelConfig& model);

/// Freezes everything else (requires_grad false) and returns the trainable (name, parameter)
/// pairs in registration order. Throws when the stage trains nothing in this model.
std::vector<std::pair<std::string, torch::Tensor>> apply_stage(models::MsMedCapModelImpl& model,
                                                               const config::StageConfig& stage);

/// train() on the modules that hold trainable parameters, eval() on the frozen ones (dropout
/// off in the encoders and the LLM).
void set_train_mode(models::MsMedCapModelImpl& model, const config::StageConfig& stage);

/// Stores every parameter that does not train (requires_grad false after apply_stage) in
/// `dtype` (train.frozen_dtype); the trained ones keep their float32 master weights.
void store_frozen(models::MsMedCapModelImpl& model, c10::ScalarType dtype);

}  // namespace msmedcap::training
