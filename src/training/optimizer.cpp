#include "msmedcap/training/optimizer.h"

#include <set>
#include <sstream>
#include <type_traits>

#include <torch/torch.h>

#include "msmedcap/core/check.h"

namespace msmedcap::training {
namespace {

/// The key LibTorch's optimiser state uses for a parameter: a string of the TensorImpl address
/// in 1.13, the address itself in later versions (detected from the map's key type).
template <class Map>
typename Map::key_type state_key(const torch::Tensor& p) {
  using Key = typename Map::key_type;
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream key;  // as 1.13's c10::guts::to_string writes it (gone in 2.x)
    key << p.unsafeGetTensorImpl();
    return key.str();
  } else {
    return static_cast<Key>(p.unsafeGetTensorImpl());
  }
}

bool decays(const std::string& name, const torch::Tensor& p) {
  const bool bias = name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
  return p.dim() >= 2 && !bias;
}

}  // namespace

Optimizer::Optimizer(const std::vector<std::pair<std::string, torch::Tensor>>& params,
                     const config::OptimizerConfig& cfg)
    : params_(params) {
  cfg.validate("train.optimizer");
  std::vector<torch::Tensor> with, without;
  for (const auto& [name, p] : params) {
    (decays(name, p) ? with : without).push_back(p);
    (decays(name, p) ? decayed_ : undecayed_).push_back(name);
  }
  auto options = [&](double wd) {
    return std::make_unique<torch::optim::AdamWOptions>(
        torch::optim::AdamWOptions(cfg.lr).betas({cfg.beta1, cfg.beta2}).eps(cfg.eps).weight_decay(wd));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  if (!with.empty()) groups.emplace_back(with, options(cfg.weight_decay));
  if (!without.empty()) groups.emplace_back(without, options(0.0));
  MSMEDCAP_CHECK(!groups.empty(), "optimizer: no trainable parameters");
  adamw_ = std::make_unique<torch::optim::AdamW>(groups, torch::optim::AdamWOptions(cfg.lr));
}

void Optimizer::set_lr(double lr) {
  for (auto& g : adamw_->param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
}

void Optimizer::zero_grad() { adamw_->zero_grad(); }

void Optimizer::step() { adamw_->step(); }

io::StateDict Optimizer::state() const {
  io::StateDict out;
  using Map = std::decay_t<decltype(adamw_->state())>;
  for (const auto& [name, p] : params_) {
    const auto it = adamw_->state().find(state_key<Map>(p));
    if (it == adamw_->state().end()) continue;  // never stepped
    const auto& s = static_cast<const torch::optim::AdamWParamState&>(*it->second);
    out.emplace("exp_avg." + name, s.exp_avg().detach().to(torch::kCPU).clone());
    out.emplace("exp_avg_sq." + name, s.exp_avg_sq().detach().to(torch::kCPU).clone());
    out.emplace("step." + name, torch::full({1}, s.step(), torch::kLong));
  }
  return out;
}

void Optimizer::load_state(const io::TensorSource& source) {
  using Map = std::decay_t<decltype(adamw_->state())>;
  const auto names = source.tensor_names();
  const std::set<std::string> present(names.begin(), names.end());
  for (const auto& [name, p] : params_) {
    if (present.count("step." + name) == 0) continue;
    for (const char* k : {"exp_avg.", "exp_avg_sq."}) {
      MSMEDCAP_CHECK(present.count(k + name) == 1, source.describe(), ": optimizer state lacks ", k, name);
      MSMEDCAP_CHECK(source.shape_of(k + name) == p.sizes().vec(), source.describe(), ": ", k, name, " has shape ",
                     c10::IntArrayRef(source.shape_of(k + name)), ", the parameter ", p.sizes());
    }
    auto s = std::make_unique<torch::optim::AdamWParamState>();
    s->step(source.tensor("step." + name).to(torch::kLong).item<int64_t>());
    s->exp_avg(source.tensor("exp_avg." + name).to(p.device(), p.scalar_type()).clone());
    s->exp_avg_sq(source.tensor("exp_avg_sq." + name).to(p.device(), p.scalar_type()).clone());
    adamw_->state()[state_key<Map>(p)] = std::move(s);
  }
}

}  // namespace msmedcap::training
