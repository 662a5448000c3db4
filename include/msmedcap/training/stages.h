#pragma once
/// A stage's plan applied to the model (docs/MODEL.md, "Training stages"): the parameters the
/// plan does not train lose requires_grad and their modules stay in eval mode; the trainable
/// ones are returned by name.

#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

#include "msmedcap/models/msmedcap.h"
#include "msmedcap/training/stage_plan.h"

namespace msmedcap::training {

/// Adds the stage's own head when it has one (clip_pretrain), freezes everything `plan` does not
/// train (requires_grad false) and returns the trainable (name, parameter) pairs in registration
/// order. Throws when the stage trains nothing in this model.
std::vector<std::pair<std::string, torch::Tensor>> apply_stage(models::MsMedCapModelImpl& model, const StagePlan& plan);

/// train() on the modules that hold trainable parameters, eval() on the frozen ones (dropout
/// off in the encoders and the LLM).
void set_train_mode(models::MsMedCapModelImpl& model, const StagePlan& plan);

/// train.frozen_dtype (`name`) as a dtype for `device`: fp16 only on CUDA (the trainer and
/// `bench train-step` both read it so).
c10::ScalarType frozen_dtype(const std::string& name, c10::Device device);

/// Stores every parameter that does not train (requires_grad false after apply_stage) in
/// `dtype` (train.frozen_dtype); the trained ones keep their float32 master weights.
void store_frozen(models::MsMedCapModelImpl& model, c10::ScalarType dtype);

}  // namespace msmedcap::training
