// A few queries against a key/value cache (models/cached_attention.h): the loop equals the
// explicit math form of attention on what decoding hands it (views of a longer cache, padding
// masks broadcast over heads, grouped key/value heads, widths off the 16-lane vectors, bf16), and
// it takes only what it can.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <limits>

#include "msmedcap/core/check.h"
#include "msmedcap/core/compat.h"
#include "msmedcap/models/cached_attention.h"
#include "msmedcap/models/packed_linear.h"

namespace msmedcap::models {
namespace {

TEST(CachedAttention, EqualsTheMathFormOnCacheViewsMasksAndGroupedHeads) {
  if (!packed_kernel_available()) GTEST_SKIP() << "this CPU has no AVX-512: attention takes ATen's path";
  torch::NoGradGuard no_grad;
  at::manual_seed(0);
  const float lowest = std::numeric_limits<float>::lowest();
  for (const int64_t d : {8, 24, 64})
    for (const int64_t kv_heads : {4, 2, 1})
      for (const int64_t n : {1, 3})
        for (const int64_t m : {1, 7, 40}) {
          const int64_t b = 3, heads = 4;
          // The cache holds more positions than are filled: k and v are views of its first m.
          const auto k_cache = at::randn({b, kv_heads, m + 5, d}), v_cache = at::randn({b, kv_heads, m + 5, d});
          const auto k = k_cache.narrow(2, 0, m), v = v_cache.narrow(2, 0, m);
          // q as a decoder makes it: [B, N, H, Dh] transposed, not contiguous.
          const auto q = at::randn({b, n, heads, d}).transpose(1, 2);
          // A padding mask per row, broadcast over heads; row 1 also hides its first positions.
          auto mask = at::zeros({b, 1, n, m});
          if (m > 2) mask[1].narrow(-1, 0, 2).fill_(lowest);
          const auto expanded_k = k.repeat_interleave(heads / kv_heads, 1);
          const auto expanded_v = v.repeat_interleave(heads / kv_heads, 1);
          for (const bool masked : {false, true}) {
            const auto& mk = masked ? mask : at::Tensor();
            ASSERT_TRUE(cached_attention_applies(q, k, v, mk));
            const auto got = cached_attention(q, k, v, mk);
            const auto want = core::attention_math(q, expanded_k, expanded_v, mk);
            EXPECT_LT((got - want).abs().max().item<float>(), 2e-6)
                << "d " << d << " kv " << kv_heads << " n " << n << " m " << m << " masked " << masked;
          }
          // bf16 q, k, v and mask: float32 sums, one bf16 rounding of the output.
          const auto qb = q.to(at::kBFloat16), kb = k.to(at::kBFloat16), vb = v.to(at::kBFloat16);
          const auto mb = mask.to(at::kBFloat16);
          ASSERT_TRUE(cached_attention_applies(qb, kb, vb, mb));
          const auto got = cached_attention(qb, kb, vb, mb).to(at::kFloat);
          const auto want =
              core::attention_math(qb.to(at::kFloat), kb.to(at::kFloat).repeat_interleave(heads / kv_heads, 1),
                                   vb.to(at::kFloat).repeat_interleave(heads / kv_heads, 1), mb.to(at::kFloat));
          EXPECT_LE((got - want).abs().max().item<float>(), want.abs().max().item<float>() / 128)
              << "bf16 d " << d << " kv " << kv_heads << " n " << n << " m " << m;
        }
}

TEST(CachedAttention, AppliesOnlyWhereItCan) {
  if (!packed_kernel_available()) GTEST_SKIP() << "this CPU has no AVX-512: the loop never applies";
  const auto q = at::randn({2, 4, 1, 8}), k = at::randn({2, 4, 6, 8}), v = at::randn({2, 4, 6, 8});
  EXPECT_TRUE(cached_attention_applies(q, k, v, {}));
  EXPECT_TRUE(cached_attention_applies(q, k, v, at::zeros({2, 1, 1, 6})));
  // More queries than a decoding step has (a prefill), a mask that does not broadcast, mixed
  // dtypes, key heads that do not divide the query heads, a strided last dimension.
  EXPECT_FALSE(cached_attention_applies(at::randn({2, 4, kCachedAttentionMaxQueries + 1, 8}), k, v, {}));
  EXPECT_FALSE(cached_attention_applies(q, k, v, at::zeros({2, 1, 1, 5})));
  EXPECT_FALSE(cached_attention_applies(q, k.to(at::kBFloat16), v, {}));
  EXPECT_FALSE(cached_attention_applies(q, at::randn({2, 3, 6, 8}), at::randn({2, 3, 6, 8}), {}));
  EXPECT_FALSE(cached_attention_applies(q, at::randn({2, 4, 8, 6}).transpose(2, 3), v, {}));
  // Gradients: autograd must record the ATen form.
  const auto qg = q.clone().requires_grad_(true);
  EXPECT_FALSE(cached_attention_applies(qg, k, v, {}));
  {
    torch::NoGradGuard no_grad;
    EXPECT_TRUE(cached_attention_applies(qg, k, v, {}));
  }
  // The tests' switch for the CPU loops turns this one off too.
  set_packed_kernels_enabled(false);
  EXPECT_FALSE(cached_attention_applies(q, k, v, {}));
  set_packed_kernels_enabled(true);
  EXPECT_THROW(cached_attention(qg, k, v, {}), Error);
}

}  // namespace
}  // namespace msmedcap::models
