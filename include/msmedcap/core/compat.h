#pragma once
/// LibTorch version differences (1.13 on Debian, 2.x on CUDA machines). This header is the ONLY
/// place in msmedcap that tests TORCH_VERSION_*: everything else calls these wrappers.

#include <ATen/core/Tensor.h>
#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>
#include <c10/util/Optional.h>
#include <torch/version.h>

#include <functional>
#include <string>

namespace msmedcap::core {

/// True when this LibTorch has a fused scaled_dot_product_attention (2.0+).
constexpr bool kHasFusedAttention = TORCH_VERSION_MAJOR >= 2;

/// softmax(q k^T * scale + mask [+ causal]) v over the last two dims, as
/// torch.nn.functional.scaled_dot_product_attention (no dropout).
/// q: [B, H, N, Dh]; k, v: [B, H, M, Dh]; mask: additive float, broadcastable to [B, H, N, M]
/// (undefined = none); is_causal: a lower-triangular mask aligned to the last key
/// (position i sees keys j <= i + M - N); scale: default 1/sqrt(Dh).
/// Uses the fused kernel on LibTorch 2.x, the explicit math on 1.13.
at::Tensor scaled_dot_product_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                        const at::Tensor& mask = {}, bool is_causal = false,
                                        c10::optional<double> scale = c10::nullopt);

/// The explicit math form of scaled_dot_product_attention (the reference; also used on 1.13).
/// `on_probs`, when given, transforms the attention probabilities before they weigh v (dropout).
at::Tensor attention_math(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask = {},
                          bool is_causal = false, c10::optional<double> scale = c10::nullopt,
                          const std::function<at::Tensor(const at::Tensor&)>& on_probs = {});

/// Whether `t` is one of the 16-bit float types (bf16, fp16).
bool is_half_float(c10::ScalarType t);

/// `x` in float32 when it is bf16 or fp16 (what autocast's products give), else `x` itself
/// (float32 stays, float64 too): the losses take their logits at least this wide.
at::Tensor at_least_float(const at::Tensor& x);

/// Autocast to `dtype` for the scope's lifetime, as `torch.autocast(device, dtype)`: on CUDA bf16
/// or fp16, on the CPU bf16 only (LibTorch's CPU autocast list runs products and convolutions in
/// bf16; 1.13's leaves LayerNorm out, hence models::LayerNorm, and the losses widen their logits
/// with at_least_float). A no-op when `enabled` is false. Restores the previous state and clears
/// the autocast weight cache on exit.
class AutocastScope {
 public:
  AutocastScope(bool enabled, c10::ScalarType dtype, c10::DeviceType device = c10::DeviceType::CUDA);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool enabled_;
  bool cpu_;
  bool previous_ = false;
  c10::ScalarType previous_dtype_ = c10::ScalarType::Half;
};

/// c10d's TCPStore: LibTorch 2.4+ serves it with libuv by default, and Debian 13's 2.6 is built
/// without libuv ("use_libuv was requested but PyTorch was build without libuv support"), so the
/// built-in server is asked for wherever there is the choice (2.3+).
template <class StoreOptions>
void use_builtin_tcp_store(StoreOptions& options) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
  options.useLibUV = false;
#else
  (void)options;
#endif
}

/// "1.13.1"-style version of the LibTorch msmedcap was built against.
std::string torch_version();

}  // namespace msmedcap::core
