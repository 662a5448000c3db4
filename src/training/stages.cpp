#include "msmedcap/training/stages.h"

#include <torch/torch.h>

#include "msmedcap/core/check.h"

namespace msmedcap::training {
namespace {

bool has_prefix(const std::string& name, const std::vector<std::string>& prefixes) {
  for (const auto& p : prefixes) {
    const bool whole = p.back() != '.';
    if (whole ? name == p : name.rfind(p, 0) == 0) return true;
  }
  return false;
}

}  // namespace

std::vector<std::string> trainable_prefixes(const config::StageConfig& stage, const config::ModelConfig& model) {
  auto branch1 = [](const std::string& s) {
    return std::vector<std::string>{s + "qformer.", s + "query_tokens", s + "vision_projection.", s + "text_projection.",
                                    s + "itm_head.", s + "temp"};
  };
  if (stage.name == "stage1_clip") return branch1("");
  if (stage.name == "stage1_sam") return branch1("sam_");
  if (stage.name == "decoder_lm") return {"language_model."};
  std::vector<std::string> p;
  if (model.use_clip) p.insert(p.end(), {"qformer.", "query_tokens", "language_projection."});
  if (model.use_sam) p.insert(p.end(), {"sam_qformer.", "sam_query_tokens", "sam_language_projection."});
  if (stage.name == "caption" && stage.train_vision) p.push_back("vision_model.");
  if (stage.name == "caption" && stage.train_llm) p.push_back("language_model.");
  return p;
}

std::vector<std::pair<std::string, torch::Tensor>> apply_stage(models::MsMedCapModelImpl& model,
                                                               const config::StageConfig& stage) {
  stage.validate("train.stage");
  const auto prefixes = trainable_prefixes(stage, model.config());
  std::vector<std::pair<std::string, torch::Tensor>> trainable;
  for (auto& item : model.named_parameters(true)) {
    const bool train = has_prefix(item.key(), prefixes);
    item.value().set_requires_grad(train);
    if (train) trainable.emplace_back(item.key(), item.value());
  }
  MSMEDCAP_CHECK(!trainable.empty(), "train.stage.name: stage '", stage.name, "' trains no parameter of this model");
  set_train_mode(model, stage);
  return trainable;
}

void set_train_mode(models::MsMedCapModelImpl& model, const config::StageConfig& stage) {
  model.eval();
  const auto prefixes = trainable_prefixes(stage, model.config());
  for (auto& item : model.named_children()) {
    // A child trains when a trainable prefix names it (e.g. "qformer." -> child "qformer").
    for (const auto& p : prefixes)
      if (p == item.key() + "." ) item.value()->train();
  }
}

void store_frozen(models::MsMedCapModelImpl& model, c10::ScalarType dtype) {
  torch::NoGradGuard no_grad;
  for (auto& p : model.parameters(true)) {
    if (!p.requires_grad() && p.is_floating_point() && p.scalar_type() != dtype) p.set_data(p.to(dtype));
  }
}

}  // namespace msmedcap::training
