#include "msmedcap/training/loss_scaler.h"

#include <ATen/ATen.h>

#include <cmath>

#include "msmedcap/core/check.h"

namespace msmedcap::training {

void LossScaler::restore(double scale, int64_t good_steps) {
  MSMEDCAP_CHECK(std::isfinite(scale) && scale > 0 && good_steps >= 0, "loss scaler: a saved scale ", scale, " and ",
                 good_steps, " clean steps are not a valid state");
  MSMEDCAP_CHECK(enabled_ || scale == 1.0, "loss scaler: a saved scale ", scale,
                 " for a run without fp16 loss scaling (train.precision changed?)");
  scale_ = scale;
  good_steps_ = good_steps;
}

at::Tensor LossScaler::scale_loss(const at::Tensor& loss) const { return enabled_ ? loss * scale_ : loss; }

bool LossScaler::unscale(const std::vector<at::Tensor>& params) {
  if (!enabled_) return true;
  bool overflow = false;
  for (const auto& p : params) {
    if (!p.grad().defined()) continue;
    p.mutable_grad().div_(scale_);
    overflow = overflow || !at::isfinite(p.grad()).all().item<bool>();
  }
  if (overflow) {
    scale_ /= 2;
    good_steps_ = 0;
    return false;
  }
  if (++good_steps_ % kGrowthInterval == 0) scale_ *= 2;
  return true;
}

}  // namespace msmedcap::training
