#pragma once
/// Dynamic loss scaling for fp16 autocast (train.precision fp16), as torch.cuda.amp.GradScaler
/// does it: the loss is multiplied by the scale before backward, the gradients divided by it
/// after; an overflow (a non-finite gradient) skips the update and halves the scale, and every
/// kGrowthInterval clean steps double it. Disabled (bf16, fp32): scale 1, nothing changes.

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

namespace msmedcap::training {

class LossScaler {
 public:
  /// 2^16 and 2000: GradScaler's defaults.
  static constexpr double kInitialScale = 65536.0;
  static constexpr int64_t kGrowthInterval = 2000;

  explicit LossScaler(bool enabled) : enabled_(enabled), scale_(enabled ? kInitialScale : 1.0) {}

  bool enabled() const { return enabled_; }
  /// The current scale (1 when disabled).
  double scale() const { return scale_; }
  /// Clean steps since the last overflow (saved with checkpoints).
  int64_t good_steps() const { return good_steps_; }
  /// A checkpoint's values.
  void restore(double scale, int64_t good_steps);

  /// `loss` times the scale (the loss itself when disabled).
  at::Tensor scale_loss(const at::Tensor& loss) const;
  /// Divides the gradients of `params` by the scale and updates it. Returns false on an overflow
  /// (the step must not update; the scale was halved). Disabled: true, gradients untouched.
  bool unscale(const std::vector<at::Tensor>& params);

 private:
  bool enabled_;
  double scale_;
  int64_t good_steps_ = 0;
};

}  // namespace msmedcap::training
