#pragma once
/// Attention of a few new queries over a key/value cache on the CPU: what each decoding step of
/// the decoders computes (one query per row and head against every cached position). Through
/// ATen this is two batched products of one row per head, which LibTorch 1.13 dispatches head by
/// head; here it is one loop per head (docs/PERFORMANCE.md, "Stop 38": 0.3 ms of a medium w8a8
/// step's 2.2 ms outside its products).

#include <ATen/core/Tensor.h>

namespace msmedcap::models {

/// Whether cached_attention takes (q, k, v, mask): on the CPU, with this CPU's AVX-512 loop
/// (packed_kernel_available(), and packed_kernels_enabled()), q, k, v float32 or all bf16,
/// [B, H, N, Dh] / [B, Hkv, M, Dh] with N <= kCachedAttentionMaxQueries and Hkv dividing H, each
/// with unit stride along Dh; the mask additive in q's dtype or float32 and broadcastable to
/// [B, H, N, M]; and nothing that asks for gradients.
bool cached_attention_applies(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask);
constexpr int64_t kCachedAttentionMaxQueries = 16;

/// softmax(q k^T / sqrt(Dh) + mask) v per row and head, with float32 sums, as
/// core::scaled_dot_product_attention; query head h reads key/value head h / (H / Hkv) (grouped
/// queries, as repeat_interleave of k and v would give). q [B, H, N, Dh]; k, v [B, Hkv, M, Dh] (views
/// of a longer cache are fine); mask broadcastable to [B, H, N, M] or undefined. Returns
/// [B, H, N, Dh] in q's dtype. Only where cached_attention_applies.
at::Tensor cached_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask);

}  // namespace msmedcap::models
