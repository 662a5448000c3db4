#include "msmedcap/training/stages.h"

#include <torch/torch.h>

#include "msmedcap/core/check.h"
#include "msmedcap/core/device.h"

namespace msmedcap::training {

std::vector<std::pair<std::string, torch::Tensor>> apply_stage(models::MsMedCapModelImpl& model,
                                                               const StagePlan& plan) {
  if (const auto branch = plan.encoder_pretrain_branch())
    model.add_encoder_pretrain_head(*branch, plan.mask_classes(), plan.mask_places());
  std::vector<std::pair<std::string, torch::Tensor>> trainable;
  for (auto& item : model.named_parameters(true)) {
    const bool train = plan.trains(item.key());
    item.value().set_requires_grad(train);
    if (train) trainable.emplace_back(item.key(), item.value());
  }
  MSMEDCAP_CHECK(!trainable.empty(), "train.stage.name: stage '", plan.name(), "' trains no parameter of this model");
  set_train_mode(model, plan);
  return trainable;
}

void set_train_mode(models::MsMedCapModelImpl& model, const StagePlan& plan) {
  model.eval();
  // A child trains when a trainable prefix names it (e.g. "qformer." -> child "qformer").
  for (auto& item : model.named_children())
    if (plan.trains_module(item.key())) item.value()->train();
}

c10::ScalarType frozen_dtype(const std::string& name, c10::Device device) {
  const auto dtype = core::parse_dtype(name, "train.frozen_dtype");
  MSMEDCAP_CHECK(dtype != c10::kHalf || device.is_cuda(),
                 "train.frozen_dtype: fp16 needs a CUDA device; use bf16 or fp32 on the CPU");
  return dtype;
}

void store_frozen(models::MsMedCapModelImpl& model, c10::ScalarType dtype) {
  torch::NoGradGuard no_grad;
  for (auto& p : model.parameters(true)) {
    if (!p.requires_grad() && p.is_floating_point() && p.scalar_type() != dtype) p.set_data(p.to(dtype));
  }
}

}  // namespace msmedcap::training
