#include "msmedcap/core/compat.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>

#include <cmath>

#include "msmedcap/core/check.h"

namespace msmedcap::core {

namespace {
at::Tensor causal_mask(int64_t n, int64_t m, const at::TensorOptions& options) {
  // Query i (of the last n positions) may see key j when j <= i + (m - n).
  auto keep = at::ones({n, m}, options.dtype(at::kBool)).tril(m - n);
  return at::zeros({n, m}, options).masked_fill(keep.logical_not(), -INFINITY);
}
}  // namespace

at::Tensor attention_math(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask,
                          bool is_causal, c10::optional<double> scale,
                          const std::function<at::Tensor(const at::Tensor&)>& on_probs) {
  MSMEDCAP_CHECK(q.dim() >= 2 && k.dim() == q.dim() && v.dim() == q.dim(),
                 "attention: q, k, v must have the same rank >= 2, got ", q.sizes(), ", ", k.sizes(), ", ", v.sizes());
  const double s = scale.has_value() ? *scale : 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  auto scores = at::matmul(q, k.transpose(-2, -1)).mul_(s);  // [B, H, N, M]
  // In place: scores is this function's own tensor, and at SAM's global attention (4096 x 4096
  // per head) every extra copy costs as much as the scores.
  if (mask.defined()) scores.add_(mask);
  if (is_causal) scores.add_(causal_mask(q.size(-2), k.size(-2), scores.options()));
  // Reduced precision: the softmax runs in float32 (as HF's LLaMA and fp16 OPT attention do). The
  // scores are converted first: LibTorch 1.13's CPU softmax with a dtype argument takes a slow
  // mixed-type path (62 ms against 3 ms for 16 x 4 x 256 x 256 bf16 scores, docs/PERFORMANCE.md).
  const bool reduced = is_half_float(scores.scalar_type());
  const auto probs =
      reduced ? at::softmax(scores.to(at::kFloat), -1).to(scores.scalar_type()) : at::softmax(scores, -1);
  return at::matmul(on_probs ? on_probs(probs) : probs, v);
}

at::Tensor scaled_dot_product_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                        const at::Tensor& mask, bool is_causal, c10::optional<double> scale) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
  at::Tensor full_mask = mask;
  if (is_causal && (mask.defined() || q.size(-2) != k.size(-2))) {
    // The fused kernel's causal flag aligns to the first key; build the mask explicitly instead.
    auto c = causal_mask(q.size(-2), k.size(-2), q.options());
    full_mask = mask.defined() ? mask + c : c;
    is_causal = false;
  }
  return at::scaled_dot_product_attention(
      q, k, v, full_mask.defined() ? c10::optional<at::Tensor>(full_mask) : c10::nullopt, 0.0, is_causal, scale);
#else
  return attention_math(q, k, v, mask, is_causal, scale);
#endif
}

bool is_half_float(c10::ScalarType t) { return t == at::kBFloat16 || t == at::kHalf; }

at::Tensor at_least_float(const at::Tensor& x) { return is_half_float(x.scalar_type()) ? x.to(at::kFloat) : x; }

std::string torch_version() { return TORCH_VERSION; }

AutocastScope::AutocastScope(bool enabled, c10::ScalarType dtype, c10::DeviceType device)
    : enabled_(enabled), cpu_(device == c10::DeviceType::CPU) {
  if (!enabled_) return;
  MSMEDCAP_CHECK(!cpu_ || dtype == at::kBFloat16, "autocast on the CPU runs bf16 only, got ", c10::toString(dtype));
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  const auto type = cpu_ ? at::kCPU : at::kCUDA;
  previous_ = at::autocast::is_autocast_enabled(type);
  previous_dtype_ = at::autocast::get_autocast_dtype(type);
  at::autocast::set_autocast_dtype(type, dtype);
  at::autocast::set_autocast_enabled(type, true);
#else
  if (cpu_) {
    previous_ = at::autocast::is_cpu_enabled();
    previous_dtype_ = at::autocast::get_autocast_cpu_dtype();
    at::autocast::set_autocast_cpu_dtype(dtype);
    at::autocast::set_cpu_enabled(true);
  } else {
    previous_ = at::autocast::is_enabled();
    previous_dtype_ = at::autocast::get_autocast_gpu_dtype();
    at::autocast::set_autocast_gpu_dtype(dtype);
    at::autocast::set_enabled(true);
  }
#endif
  at::autocast::increment_nesting();
}

AutocastScope::~AutocastScope() {
  if (!enabled_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  const auto type = cpu_ ? at::kCPU : at::kCUDA;
  at::autocast::set_autocast_enabled(type, previous_);
  at::autocast::set_autocast_dtype(type, previous_dtype_);
#else
  if (cpu_) {
    at::autocast::set_cpu_enabled(previous_);
    at::autocast::set_autocast_cpu_dtype(previous_dtype_);
  } else {
    at::autocast::set_enabled(previous_);
    at::autocast::set_autocast_gpu_dtype(previous_dtype_);
  }
#endif
}

}  // namespace msmedcap::core
