// Weight formats for CPU decoding and their small-row product (packed_linear.h). The loop is
// AVX-512 code compiled for that target alone (function attributes), chosen at run time, so the
// library still runs on CPUs without it.
#include "msmedcap/models/packed_linear.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <immintrin.h>

#include <algorithm>

#include "msmedcap/core/check.h"

namespace msmedcap::models {

WeightFormat parse_weight_format(const std::string& name, const std::string& what) {
  if (name == "fp32") return WeightFormat::kFloat32;
  if (name == "bf16") return WeightFormat::kBFloat16;
  if (name == "int8") return WeightFormat::kInt8;
  MSMEDCAP_FAIL(what, ": expected fp32, bf16 or int8, got '", name, "'");
}

const char* weight_format_name(WeightFormat format) {
  switch (format) {
    case WeightFormat::kFloat32:
      return "fp32";
    case WeightFormat::kBFloat16:
      return "bf16";
    case WeightFormat::kInt8:
      return "int8";
  }
  return "?";
}

int64_t PackedWeight::nbytes() const {
  return static_cast<int64_t>(data.nbytes()) + (scale.defined() ? static_cast<int64_t>(scale.nbytes()) : 0);
}

PackedWeight pack_weight(const at::Tensor& weight, WeightFormat format) {
  MSMEDCAP_CHECK(weight.dim() == 2 && weight.device().is_cpu() &&
                     (weight.scalar_type() == at::kFloat || weight.scalar_type() == at::kBFloat16),
                 "pack_weight: expected a float32 or bf16 CPU weight [N, K], got ", weight.sizes(), " ", weight.dtype(),
                 " on ", weight.device().str());
  at::NoGradGuard no_grad;
  PackedWeight p;
  p.format = format;
  if (format == WeightFormat::kBFloat16) {
    // Round to nearest even, as the float32 -> bf16 conversion does; kept as raw 16-bit patterns.
    p.data = weight.detach().to(at::kBFloat16).contiguous().view(at::kShort);
    return p;
  }
  const auto w = weight.detach().to(at::kFloat).contiguous();
  if (format == WeightFormat::kFloat32) {
    p.data = w;  // the weight itself when it is float32 and contiguous: no copy
  } else {
    p.scale = std::get<0>(w.abs().max(1)).div(127.0f);  // [N]
    const auto safe = at::where(p.scale > 0, p.scale, at::ones_like(p.scale));
    p.data = w.div(safe.unsqueeze(1)).round().clamp(-127, 127).to(at::kChar).contiguous();
  }
  return p;
}

at::Tensor unpack_weight(const PackedWeight& p) {
  switch (p.format) {
    case WeightFormat::kFloat32:
      return p.data;
    case WeightFormat::kBFloat16:
      return p.data.view(at::kBFloat16).to(at::kFloat);
    case WeightFormat::kInt8:
      return p.data.to(at::kFloat).mul(p.scale.unsqueeze(1));
  }
  return {};
}

// GCC 12's own AVX-512 headers start masked loads and reductions from a deliberately undefined
// vector, which -Wmaybe-uninitialized reports wherever they are inlined.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace {

#define MSMEDCAP_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))

// 16 weights of a row from k on, as float32. The masked forms read a row's last, partial block
// only: with a mask that is not a constant a masked load is several times slower here.
MSMEDCAP_AVX512 inline __m512 load16(const float* w) { return _mm512_loadu_ps(w); }
MSMEDCAP_AVX512 inline __m512 load16(const int16_t* w) {
  const __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w)));
  return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));  // bf16 bits are float32's upper half
}
MSMEDCAP_AVX512 inline __m512 load16(const int8_t* w) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w))));
}
MSMEDCAP_AVX512 inline __m512 load16(const float* w, __mmask16 mask) { return _mm512_maskz_loadu_ps(mask, w); }
MSMEDCAP_AVX512 inline __m512 load16(const int16_t* w, __mmask16 mask) {
  const __m512i wide = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, w));
  return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
}
MSMEDCAP_AVX512 inline __m512 load16(const int8_t* w, __mmask16 mask) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(mask, w)));
}
MSMEDCAP_AVX512 inline __m512 load_x(const float* x) { return _mm512_loadu_ps(x); }
MSMEDCAP_AVX512 inline __m512 load_x(const float* x, __mmask16 mask) { return _mm512_maskz_loadu_ps(mask, x); }

/// acc[m][j] += x[m, k..k+15] * w[j, k..k+15] for MT rows and J (1, 4 or 8) weight rows; `mask...`
/// is empty for a whole block of 16, or the mask of the last, partial one.
template <int MT, int J, class W, class... Mask>
MSMEDCAP_AVX512 inline void block(__m512 (&acc)[MT][J], const float* x, int64_t ldx, const W* w, int64_t K, int64_t k,
                                  Mask... mask) {
  __m512 wv[J];
#pragma GCC unroll 8
  for (int j = 0; j < J; ++j) wv[j] = load16(w + j * K + k, mask...);
#pragma GCC unroll 4
  for (int m = 0; m < MT; ++m) {
    const __m512 xv = load_x(x + m * ldx + k, mask...);
#pragma GCC unroll 8
    for (int j = 0; j < J; ++j) acc[m][j] = _mm512_fmadd_ps(xv, wv[j], acc[m][j]);
  }
}

/// y[m, n..n+J-1] for the MT rows of a tile: each weight converted once, used by all MT rows.
template <int MT, int J, class W>
MSMEDCAP_AVX512 inline void outputs(const float* x, int64_t ldx, const W* w, int64_t K, int64_t n, const float* scale,
                                    const float* bias, float* y, int64_t ldy) {
  __m512 acc[MT][J];
#pragma GCC unroll 4
  for (int m = 0; m < MT; ++m)
#pragma GCC unroll 8
    for (int j = 0; j < J; ++j) acc[m][j] = _mm512_setzero_ps();
  const W* rows = w + n * K;
  const int64_t full = K / 16 * 16;
  for (int64_t k = 0; k < full; k += 16) block<MT, J>(acc, x, ldx, rows, K, k);
  if (full < K) block<MT, J>(acc, x, ldx, rows, K, full, static_cast<__mmask16>((1u << (K - full)) - 1u));
#pragma GCC unroll 4
  for (int m = 0; m < MT; ++m)
#pragma GCC unroll 8
    for (int j = 0; j < J; ++j) {
      float v = _mm512_reduce_add_ps(acc[m][j]);
      if (scale != nullptr) v *= scale[n + j];
      if (bias != nullptr) v += bias[n + j];
      y[m * ldy + n + j] = v;
    }
}

/// The MT rows of x at x_m against outputs n..n+J-1 (MT up to 4 at run time; with J = 8, which
/// rows_product uses for one or two rows only, up to 2: 4 x 8 sums would not fit the registers).
template <int J, class W>
MSMEDCAP_AVX512 inline void rows_tile(int64_t mt, const float* x, const W* w, int64_t K, int64_t n, const float* scale,
                                      const float* bias, float* y, int64_t N) {
  if constexpr (J == 8) {
    if (mt == 2)
      outputs<2, J>(x, K, w, K, n, scale, bias, y, N);
    else
      outputs<1, J>(x, K, w, K, n, scale, bias, y, N);
    return;
  }
  switch (mt) {
    case 4:
      outputs<4, J>(x, K, w, K, n, scale, bias, y, N);
      break;
    case 3:
      outputs<3, J>(x, K, w, K, n, scale, bias, y, N);
      break;
    case 2:
      outputs<2, J>(x, K, w, K, n, scale, bias, y, N);
      break;
    default:
      outputs<1, J>(x, K, w, K, n, scale, bias, y, N);
      break;
  }
}

/// y[m, n] for every row and outputs n0..n1: J outputs at a time, and for each group every row in
/// tiles of four, so the group's weights are read from memory once (then from L1). J is 8 for
/// one or two rows (enough independent sums to keep both FMA pipes busy), else 4 (the registers).
template <int J, class W>
MSMEDCAP_AVX512 void rows_product(const float* x, int64_t M, const W* w, int64_t K, int64_t n0, int64_t n1,
                                  const float* scale, const float* bias, float* y, int64_t N) {
  int64_t n = n0;
  for (; n + J <= n1; n += J)
    for (int64_t m = 0; m < M; m += 4)
      rows_tile<J>(std::min<int64_t>(4, M - m), x + m * K, w, K, n, scale, bias, y + m * N, N);
  for (; n < n1; ++n)
    for (int64_t m = 0; m < M; m += 4)
      rows_tile<1>(std::min<int64_t>(4, M - m), x + m * K, w, K, n, scale, bias, y + m * N, N);
}

}  // namespace

bool packed_kernel_available() {
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  return ok;
}

at::Tensor packed_linear(const at::Tensor& x, const PackedWeight& p, const at::Tensor& bias) {
  MSMEDCAP_CHECK(p.defined(), "packed_linear: no packed weight");
  const int64_t K = p.in_features(), N = p.out_features();
  MSMEDCAP_CHECK(x.size(-1) == K, "packed_linear: input width ", x.size(-1), " != the weight's ", K);
  MSMEDCAP_CHECK(!bias.defined() || (bias.dim() == 1 && bias.size(0) == N), "packed_linear: bias must be [", N, "]");
  if (x.scalar_type() == at::kBFloat16 && x.device().is_cpu() && !x.requires_grad()) {
    return packed_linear(x.to(at::kFloat), p, bias).to(at::kBFloat16);  // a bf16 model: float32 inside
  }
  const int64_t M = x.numel() / K;
  if (p.format == WeightFormat::kFloat32 && M > kPackedMaxRows && x.scalar_type() == at::kFloat) {
    return at::linear(x, p.data, bias);  // float32 at many rows: BLAS is as fast, and the weight is the same
  }
  if (!packed_kernel_available() || !x.device().is_cpu() || x.scalar_type() != at::kFloat || x.requires_grad()) {
    return at::linear(x, unpack_weight(p).to(x.scalar_type()), bias.defined() ? bias.to(x.scalar_type()) : bias);
  }
  const auto xc = x.contiguous();
  auto sizes = x.sizes().vec();
  sizes.back() = N;
  auto y = at::empty(sizes, x.options());
  if (M == 0) return y;
  const auto b = bias.defined() ? bias.to(at::kFloat).contiguous() : bias;
  const float* xp = xc.data_ptr<float>();
  const float* bp = b.defined() ? b.data_ptr<float>() : nullptr;
  const float* sp = p.scale.defined() ? p.scale.data_ptr<float>() : nullptr;
  float* yp = y.data_ptr<float>();
  // Threads split the outputs in blocks of 64 (a multiple of the loop's 4 and 8 outputs).
  const int64_t blocks = (N + 63) / 64;
  at::parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
    const int64_t n0 = b0 * 64, n1 = std::min(N, b1 * 64);
    auto run = [&](const auto* w) {
      if (M <= 2)
        rows_product<8>(xp, M, w, K, n0, n1, sp, bp, yp, N);
      else
        rows_product<4>(xp, M, w, K, n0, n1, sp, bp, yp, N);
    };
    switch (p.format) {
      case WeightFormat::kFloat32:
        run(p.data.data_ptr<float>());
        break;
      case WeightFormat::kBFloat16:
        run(p.data.data_ptr<int16_t>());
        break;
      case WeightFormat::kInt8:
        run(p.data.data_ptr<int8_t>());
        break;
    }
  });
  return y;
}

#pragma GCC diagnostic pop

}  // namespace msmedcap::models
