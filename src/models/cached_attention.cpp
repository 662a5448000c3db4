// A few queries against a key/value cache (cached_attention.h): per row and head, the scores
// against every key, their softmax and the weighted sum of the values, in float32, with the
// AVX-512 loads of avx512.h.
#include "msmedcap/models/cached_attention.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <vector>

#include "avx512.h"
#include "msmedcap/core/check.h"
#include "msmedcap/models/packed_linear.h"

namespace msmedcap::models {

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace {

using avx512::load16;

/// Where one row and head's values lie: element strides of q/out rows (per query), of k and v
/// rows (per position), of the mask along queries and positions (0 where it broadcasts).
template <class T>
struct Head {
  const T* q;
  const T* k;
  const T* v;
  const T* mask;        // or nullptr
  const float* mask_f;  // a float32 mask beside bf16 q, k, v (or nullptr)
  T* out;
  int64_t q_step, k_step, v_step, out_step, mask_n, mask_m;
};

MSMEDCAP_AVX512 inline float to_float(float x) { return x; }
MSMEDCAP_AVX512 inline float to_float(c10::BFloat16 x) { return static_cast<float>(x); }

/// The raw pointer the loads take: float32 as is, bf16 as its 16-bit patterns.
inline const float* raw(const float* p) { return p; }
inline const int16_t* raw(const c10::BFloat16* p) { return reinterpret_cast<const int16_t*>(p); }

MSMEDCAP_AVX512 inline __mmask16 tail_mask(int64_t r) { return static_cast<__mmask16>((1u << r) - 1u); }

/// dot(a, b) over d values, a float32 (the scaled query), b in T.
template <class T>
MSMEDCAP_AVX512 inline float dot(const float* a, const T* b, int64_t d) {
  __m512 acc = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= d; i += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), load16(raw(b + i)), acc);
  if (i < d) {
    const auto m = tail_mask(d - i);
    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), load16(raw(b + i), m), acc);
  }
  return _mm512_reduce_add_ps(acc);
}

/// acc[0..d) += w * b[0..d).
template <class T>
MSMEDCAP_AVX512 inline void axpy(float* acc, float w, const T* b, int64_t d) {
  const __m512 wv = _mm512_set1_ps(w);
  int64_t i = 0;
  for (; i + 16 <= d; i += 16)
    _mm512_storeu_ps(acc + i, _mm512_fmadd_ps(wv, load16(raw(b + i)), _mm512_loadu_ps(acc + i)));
  if (i < d) {
    const auto m = tail_mask(d - i);
    _mm512_mask_storeu_ps(acc + i, m, _mm512_fmadd_ps(wv, load16(raw(b + i), m), _mm512_maskz_loadu_ps(m, acc + i)));
  }
}

/// One row and head: N queries against M positions of width d. `scratch`: M + 2 d floats.
template <class T>
MSMEDCAP_AVX512 void attend_head(const Head<T>& h, int64_t N, int64_t M, int64_t d, float scale, float* scratch) {
  float* scores = scratch;
  float* query = scratch + M;
  float* acc = query + d;
  for (int64_t n = 0; n < N; ++n) {
    const T* q = h.q + n * h.q_step;
    for (int64_t i = 0; i < d; ++i) query[i] = to_float(q[i]) * scale;
    float top = -std::numeric_limits<float>::infinity();
    for (int64_t m = 0; m < M; ++m) {
      float s = dot(query, h.k + m * h.k_step, d);
      if (h.mask != nullptr) s += to_float(h.mask[n * h.mask_n + m * h.mask_m]);
      if (h.mask_f != nullptr) s += h.mask_f[n * h.mask_n + m * h.mask_m];
      scores[m] = s;
      top = std::max(top, s);
    }
    float total = 0;
    for (int64_t m = 0; m < M; ++m) {
      scores[m] = std::exp(scores[m] - top);
      total += scores[m];
    }
    std::fill(acc, acc + d, 0.0f);
    for (int64_t m = 0; m < M; ++m) axpy(acc, scores[m], h.v + m * h.v_step, d);
    T* out = h.out + n * h.out_step;
    const float inv = 1.0f / total;
    for (int64_t i = 0; i < d; ++i) out[i] = static_cast<T>(acc[i] * inv);
  }
}

template <class T>
void attend_all(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask,
                at::Tensor& out) {
  const int64_t B = q.size(0), H = q.size(1), N = q.size(2), d = q.size(3);
  const int64_t Hkv = k.size(1), M = k.size(2), group = H / Hkv;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  at::Tensor m4;
  if (mask.defined()) m4 = mask.expand({B, H, N, M});  // a view: broadcast dimensions get stride 0
  const bool float_mask = m4.defined() && m4.scalar_type() == at::kFloat && q.scalar_type() != at::kFloat;
  const T* qp = q.data_ptr<T>();
  const T* kp = k.data_ptr<T>();
  const T* vp = v.data_ptr<T>();
  T* op = out.data_ptr<T>();
  const T* mp = m4.defined() && !float_mask ? m4.data_ptr<T>() : nullptr;
  const float* mfp = float_mask ? m4.data_ptr<float>() : nullptr;
  // Small problems (one decoding step of one image) run on the calling thread: a parallel region
  // costs more than the loop.
  const int64_t work = B * H * N * M * d;
  const int64_t grain = work < (1 << 16) ? B * H : 1;
  at::parallel_for(0, B * H, grain, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch(static_cast<size_t>(M + 2 * d));
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / H, h = i % H, g = h / group;
      Head<T> head{qp + b * q.stride(0) + h * q.stride(1),
                   kp + b * k.stride(0) + g * k.stride(1),
                   vp + b * v.stride(0) + g * v.stride(1),
                   mp != nullptr ? mp + b * m4.stride(0) + h * m4.stride(1) : nullptr,
                   mfp != nullptr ? mfp + b * m4.stride(0) + h * m4.stride(1) : nullptr,
                   op + b * out.stride(0) + h * out.stride(1),
                   q.stride(2),
                   k.stride(2),
                   v.stride(2),
                   out.stride(2),
                   m4.defined() ? m4.stride(2) : 0,
                   m4.defined() ? m4.stride(3) : 0};
      attend_head(head, N, M, d, scale, scratch.data());
    }
  });
}

}  // namespace

#pragma GCC diagnostic pop

bool cached_attention_applies(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask) {
  if (!packed_kernels_enabled() || !packed_kernel_available()) return false;
  if (!q.defined() || !k.defined() || !v.defined() || q.dim() != 4 || k.dim() != 4 || v.dim() != 4) return false;
  if (!q.device().is_cpu() || !k.device().is_cpu() || !v.device().is_cpu()) return false;
  const auto t = q.scalar_type();
  if ((t != at::kFloat && t != at::kBFloat16) || k.scalar_type() != t || v.scalar_type() != t) return false;
  if (c10::GradMode::is_enabled() &&
      (q.requires_grad() || k.requires_grad() || v.requires_grad() || (mask.defined() && mask.requires_grad())))
    return false;
  const int64_t B = q.size(0), H = q.size(1), N = q.size(2), d = q.size(3);
  if (N < 1 || N > kCachedAttentionMaxQueries || d < 1 || k.size(0) != B || v.size(0) != B) return false;
  if (k.size(1) < 1 || H % k.size(1) != 0 || v.size(1) != k.size(1) || k.size(3) != d || v.size(3) != d ||
      v.size(2) != k.size(2) || k.size(2) < 1)
    return false;
  if (q.stride(3) != 1 || k.stride(3) != 1 || v.stride(3) != 1) return false;
  if (mask.defined()) {
    if (!mask.device().is_cpu() || mask.dim() > 4 || (mask.scalar_type() != t && mask.scalar_type() != at::kFloat))
      return false;
    const std::array<int64_t, 4> full{B, H, N, k.size(2)};
    for (int64_t i = 0; i < mask.dim(); ++i) {
      const int64_t size = mask.size(mask.dim() - 1 - i), want = full[static_cast<size_t>(3 - i)];
      if (size != 1 && size != want) return false;
    }
  }
  return true;
}

at::Tensor cached_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask) {
  MSMEDCAP_CHECK(cached_attention_applies(q, k, v, mask), "cached_attention: not for q ", q.sizes(), " ", q.dtype(),
                 ", k ", k.sizes(), ", v ", v.sizes(), (mask.defined() ? ", this mask" : ""),
                 " (cached_attention_applies)");
  auto out = at::empty(q.sizes(), q.options());
  if (q.scalar_type() == at::kFloat)
    attend_all<float>(q, k, v, mask, out);
  else
    attend_all<c10::BFloat16>(q, k, v, mask, out);
  return out;
}

}  // namespace msmedcap::models
