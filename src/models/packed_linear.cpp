// Weight formats for CPU decoding and their small-row product (packed_linear.h). The loop is
// AVX-512 code compiled for that target alone (function attributes), chosen at run time, so the
// library still runs on CPUs without it.
#include "msmedcap/models/packed_linear.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#include "avx512.h"
#include "msmedcap/core/check.h"

namespace msmedcap::models {

WeightFormat parse_weight_format(const std::string& name, const std::string& what) {
  if (name == "fp32") return WeightFormat::kFloat32;
  if (name == "bf16") return WeightFormat::kBFloat16;
  if (name == "int8") return WeightFormat::kInt8;
  if (name == "w8a8") return WeightFormat::kW8A8;
  MSMEDCAP_FAIL(what, ": expected fp32, bf16, int8 or w8a8, got '", name, "'");
}

const char* weight_format_name(WeightFormat format) {
  switch (format) {
    case WeightFormat::kFloat32:
      return "fp32";
    case WeightFormat::kBFloat16:
      return "bf16";
    case WeightFormat::kInt8:
      return "int8";
    case WeightFormat::kW8A8:
      return "w8a8";
  }
  return "?";
}

int64_t PackedWeight::nbytes() const {
  return static_cast<int64_t>(data.nbytes()) + (scale.defined() ? static_cast<int64_t>(scale.nbytes()) : 0) +
         (row_sums.defined() ? static_cast<int64_t>(row_sums.nbytes()) : 0);
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
    if (format == WeightFormat::kW8A8) p.row_sums = p.data.sum(1, /*keepdim=*/false, at::kInt).contiguous();
  }
  return p;
}

at::Tensor quantize_rows(const at::Tensor& x) {
  at::NoGradGuard no_grad;
  const auto xf = x.to(at::kFloat);
  const auto scale = xf.abs().amax(-1, /*keepdim=*/true).div(127.0f);
  const auto safe = at::where(scale > 0, scale, at::ones_like(scale));
  return xf.div(safe).round().clamp(-127, 127).mul(safe).to(x.scalar_type());
}

at::Tensor unpack_weight(const PackedWeight& p) {
  switch (p.format) {
    case WeightFormat::kFloat32:
      return p.data;
    case WeightFormat::kBFloat16:
      return p.data.view(at::kBFloat16).to(at::kFloat);
    case WeightFormat::kInt8:
    case WeightFormat::kW8A8:
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

// Every loop below is compiled for AVX-512 with VNNI and BF16 (MSMEDCAP_AVX512, avx512.h) and runs only
// where the CPU has what its format uses (packed_kernel_available and its siblings): the fp32, bf16 and
// int8-weight loops use AVX-512 F/BW alone, the w8a8 loop VNNI, the bf16 x bf16 loop AVX512-BF16.
using avx512::load16;

// A format's inner step (the loops' policy): where row m of x and row n of the weight start
// (x_row, w_row; ldx apart), how kStep of their values are loaded (load_x, load_w; masked for a
// row's partial last step) and multiplied into the sums (madd), and how a sum becomes y[m, n]
// (finish: scales and bias).

/// fp32, bf16 or int8 weights (W = float, int16_t bits or int8_t; int8 with its per-channel
/// `scale`) against float32 activations.
template <class W>
struct FloatStep {
  using Acc = __m512;
  using Mask = __mmask16;
  static constexpr int64_t kStep = 16;
  const float* x;
  const W* w;
  int64_t K;
  const float* scale;
  const float* bias;

  MSMEDCAP_AVX512 static Acc zero() { return _mm512_setzero_ps(); }
  MSMEDCAP_AVX512 static Mask tail(int64_t r) { return static_cast<Mask>((1u << r) - 1u); }
  using XVec = __m512;
  using WVec = __m512;
  const float* x_row(int64_t m) const { return x + m * K; }
  const W* w_row(int64_t n) const { return w + n * K; }
  int64_t ldx() const { return K; }
  template <class... M>
  MSMEDCAP_AVX512 static XVec load_x(const float* p, M... mask) {
    return load16(p, mask...);
  }
  template <class... M>
  MSMEDCAP_AVX512 static WVec load_w(const W* p, M... mask) {
    return load16(p, mask...);
  }
  MSMEDCAP_AVX512 static Acc madd(Acc acc, XVec x, WVec w) { return _mm512_fmadd_ps(x, w, acc); }
  MSMEDCAP_AVX512 float finish(Acc acc, int64_t, int64_t n) const {
    float v = _mm512_reduce_add_ps(acc);
    if (scale != nullptr) v *= scale[n];
    return bias != nullptr ? v + bias[n] : v;
  }
};

/// int8 x int8: the activations' bytes (q + 128, unsigned; rows ldx apart, zero past K) times 64
/// weights per instruction, four products per 32-bit lane (VPDPBUSD: exact, no saturation).
/// With u = q + 128, sum_k q w = sum_k u w - 128 sum_k w.
struct Int8Step {
  using Acc = __m512i;
  using Mask = __mmask64;
  static constexpr int64_t kStep = 64;
  const uint8_t* x;
  int64_t row_bytes;
  const float* x_scale;
  const int8_t* w;
  int64_t K;
  const float* w_scale;
  const int32_t* w_sum;
  const float* bias;

  MSMEDCAP_AVX512 static Acc zero() { return _mm512_setzero_si512(); }
  MSMEDCAP_AVX512 static Mask tail(int64_t r) { return static_cast<Mask>((1ull << r) - 1ull); }
  using XVec = __m512i;
  using WVec = __m512i;
  const uint8_t* x_row(int64_t m) const { return x + m * row_bytes; }
  const int8_t* w_row(int64_t n) const { return w + n * K; }
  int64_t ldx() const { return row_bytes; }
  template <class... M>  // the rows are padded with zeros: whole loads, mask or not
  MSMEDCAP_AVX512 static XVec load_x(const uint8_t* p, M...) {
    return _mm512_loadu_si512(p);
  }
  template <class... M>
  MSMEDCAP_AVX512 static WVec load_w(const int8_t* p, M... mask) {
    if constexpr (sizeof...(M) == 0)
      return _mm512_loadu_si512(p);
    else
      return _mm512_maskz_loadu_epi8(mask..., p);
  }
  MSMEDCAP_AVX512 static Acc madd(Acc acc, XVec x, WVec w) { return _mm512_dpbusd_epi32(acc, x, w); }
  MSMEDCAP_AVX512 float finish(Acc acc, int64_t m, int64_t n) const {
    const int32_t dot = _mm512_reduce_add_epi32(acc) - 128 * w_sum[n];
    const float v = static_cast<float>(dot) * x_scale[m] * w_scale[n];
    return bias != nullptr ? v + bias[n] : v;
  }
};

/// bf16 x bf16 (a bf16 model's activations against bf16 weights): 32 products per instruction,
/// summed in float32 lanes (VDPBF16PS).
struct Bf16Step {
  using Acc = __m512;
  using Mask = __mmask32;
  static constexpr int64_t kStep = 32;
  const int16_t* x;
  const int16_t* w;
  int64_t K;
  const float* bias;

  MSMEDCAP_AVX512 static Acc zero() { return _mm512_setzero_ps(); }
  MSMEDCAP_AVX512 static Mask tail(int64_t r) { return static_cast<Mask>((1u << r) - 1u); }
  using XVec = __m512bh;
  using WVec = __m512bh;
  template <class... M>
  MSMEDCAP_AVX512 static __m512bh load32(const int16_t* p, M... mask) {
    if constexpr (sizeof...(M) == 0)
      return reinterpret_cast<__m512bh>(_mm512_loadu_si512(p));
    else
      return reinterpret_cast<__m512bh>(_mm512_maskz_loadu_epi16(mask..., p));
  }
  const int16_t* x_row(int64_t m) const { return x + m * K; }
  const int16_t* w_row(int64_t n) const { return w + n * K; }
  int64_t ldx() const { return K; }
  template <class... M>
  MSMEDCAP_AVX512 static XVec load_x(const int16_t* p, M... mask) {
    return load32(p, mask...);
  }
  template <class... M>
  MSMEDCAP_AVX512 static WVec load_w(const int16_t* p, M... mask) {
    return load32(p, mask...);
  }
  MSMEDCAP_AVX512 static Acc madd(Acc acc, XVec x, WVec w) { return _mm512_dpbf16_ps(acc, x, w); }
  MSMEDCAP_AVX512 float finish(Acc acc, int64_t, int64_t n) const {
    const float v = _mm512_reduce_add_ps(acc);
    return bias != nullptr ? v + bias[n] : v;
  }
};

/// acc[m][j] += row m of the tile (from xr) times weight row j (from wr) over S::kStep values
/// from k; `mask...` is empty for a whole step, or the mask of a row's partial last one.
template <class S, int MT, int J, class X, class W, class... M>
MSMEDCAP_AVX512 inline void block(const S& s, typename S::Acc (&acc)[MT][J], const X* xr, const W* wr, int64_t k,
                                  M... mask) {
  typename S::WVec wv[J];
#pragma GCC unroll 8
  for (int j = 0; j < J; ++j) wv[j] = S::load_w(wr + j * s.K + k, mask...);
#pragma GCC unroll 4
  for (int m = 0; m < MT; ++m) {
    const typename S::XVec xv = S::load_x(xr + m * s.ldx() + k, mask...);
#pragma GCC unroll 8
    for (int j = 0; j < J; ++j) acc[m][j] = S::madd(acc[m][j], xv, wv[j]);
  }
}

/// y[m0+m, n..n+J-1] for the MT rows of a tile: each weight read once for all MT rows.
template <class S, int MT, int J>
MSMEDCAP_AVX512 inline void outputs(const S& s, int64_t m0, int64_t n, float* y, int64_t N) {
  typename S::Acc acc[MT][J];
#pragma GCC unroll 4
  for (int m = 0; m < MT; ++m)
#pragma GCC unroll 8
    for (int j = 0; j < J; ++j) acc[m][j] = S::zero();
  const auto* xr = s.x_row(m0);
  const auto* wr = s.w_row(n);
  const int64_t full = s.K / S::kStep * S::kStep;
  for (int64_t k = 0; k < full; k += S::kStep) block<S, MT, J>(s, acc, xr, wr, k);
  if (full < s.K) block<S, MT, J>(s, acc, xr, wr, full, S::tail(s.K - full));
#pragma GCC unroll 4
  for (int m = 0; m < MT; ++m)
#pragma GCC unroll 8
    for (int j = 0; j < J; ++j) y[(m0 + m) * N + n + j] = s.finish(acc[m][j], m0 + m, n + j);
}

/// The mt rows from m0 against outputs n..n+J-1 (mt up to 4 at run time; with J = 8, which
/// rows_product uses for one or two rows only, up to 2: 4 x 8 sums would not fit the registers).
template <class S, int J>
MSMEDCAP_AVX512 inline void rows_tile(const S& s, int64_t mt, int64_t m0, int64_t n, float* y, int64_t N) {
  if constexpr (J == 8) {
    if (mt == 2)
      outputs<S, 2, J>(s, m0, n, y, N);
    else
      outputs<S, 1, J>(s, m0, n, y, N);
    return;
  }
  switch (mt) {
    case 4:
      outputs<S, 4, J>(s, m0, n, y, N);
      break;
    case 3:
      outputs<S, 3, J>(s, m0, n, y, N);
      break;
    case 2:
      outputs<S, 2, J>(s, m0, n, y, N);
      break;
    default:
      outputs<S, 1, J>(s, m0, n, y, N);
      break;
  }
}

/// y[m, n] for every row and outputs n0..n1: J outputs at a time, and for each group every row in
/// tiles of four, so the group's weights are read from memory once (then from L1). J is 8 for
/// one or two rows (enough independent sums to keep both pipes busy), else 4 (the registers).
template <class S, int J>
MSMEDCAP_AVX512 void rows_product(const S& s, int64_t M, int64_t n0, int64_t n1, float* y, int64_t N) {
  int64_t n = n0;
  for (; n + J <= n1; n += J)
    for (int64_t m = 0; m < M; m += 4) rows_tile<S, J>(s, std::min<int64_t>(4, M - m), m, n, y, N);
  for (; n < n1; ++n)
    for (int64_t m = 0; m < M; m += 4) rows_tile<S, 1>(s, std::min<int64_t>(4, M - m), m, n, y, N);
}

/// Every row and output of y [M, N], threads splitting the outputs in blocks of 64 (a multiple
/// of the loops' 4 and 8 outputs).
template <class S>
void product(const S& s, int64_t M, float* y, int64_t N) {
  at::parallel_for(0, (N + 63) / 64, 1, [&](int64_t b0, int64_t b1) {
    const int64_t n0 = b0 * 64, n1 = std::min(N, b1 * 64);
    if (M <= 2)
      rows_product<S, 8>(s, M, n0, n1, y, N);
    else
      rows_product<S, 4>(s, M, n0, n1, y, N);
  });
}

/// Each row of x [M, K] as bytes q + 128 (q = round(x / s), s = max |x| / 127, as quantize_rows),
/// rows `ldx` apart and zero past K, and its scale.
void quantize_rows_to_bytes(const float* x, int64_t M, int64_t K, int64_t ldx, uint8_t* out, float* scales) {
  for (int64_t m = 0; m < M; ++m) {
    const float* row = x + m * K;
    float amax = 0.0f;
    for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(row[k]));
    const float s = amax / 127.0f;
    const float safe = s > 0.0f ? s : 1.0f;
    uint8_t* q = out + m * ldx;
    for (int64_t k = 0; k < K; ++k)
      q[k] = static_cast<uint8_t>(std::clamp(std::nearbyint(row[k] / safe), -127.0f, 127.0f) + 128.0f);
    std::fill(q + K, q + ldx, uint8_t{0});
    scales[m] = safe;
  }
}

}  // namespace

bool packed_kernel_available() {
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  return ok;
}

bool int8_kernel_available() {
  static const bool ok = packed_kernel_available() && __builtin_cpu_supports("avx512vnni");
  return ok;
}

bool bf16_kernel_available() {
  static const bool ok = packed_kernel_available() && __builtin_cpu_supports("avx512bf16");
  return ok;
}

namespace {
std::atomic<bool> g_kernels_enabled{true};
}  // namespace

void set_packed_kernels_enabled(bool enabled) { g_kernels_enabled.store(enabled); }
bool packed_kernels_enabled() { return g_kernels_enabled.load(std::memory_order_relaxed); }

at::Tensor packed_linear(const at::Tensor& x, const PackedWeight& p, const at::Tensor& bias) {
  MSMEDCAP_CHECK(p.defined(), "packed_linear: no packed weight");
  const int64_t K = p.in_features(), N = p.out_features();
  MSMEDCAP_CHECK(x.size(-1) == K, "packed_linear: input width ", x.size(-1), " != the weight's ", K);
  MSMEDCAP_CHECK(!bias.defined() || (bias.dim() == 1 && bias.size(0) == N), "packed_linear: bias must be [", N, "]");
  const bool kernels = packed_kernels_enabled() && x.device().is_cpu() && !x.requires_grad();
  const bool bf16_pair = p.format == WeightFormat::kBFloat16 && x.scalar_type() == at::kBFloat16;
  if (x.scalar_type() == at::kBFloat16 && x.device().is_cpu() && !x.requires_grad() &&
      !(bf16_pair && kernels && bf16_kernel_available())) {
    return packed_linear(x.to(at::kFloat), p, bias).to(at::kBFloat16);  // a bf16 model: float32 inside
  }
  const int64_t M = x.numel() / K;
  if (p.format == WeightFormat::kFloat32 && M > kPackedMaxRows && x.scalar_type() == at::kFloat) {
    return at::linear(x, p.data, bias);  // float32 at many rows: BLAS is as fast, and the weight is the same
  }
  const bool w8a8 = p.format == WeightFormat::kW8A8;
  if (!kernels || !(w8a8 ? int8_kernel_available() : packed_kernel_available()) ||
      (x.scalar_type() != at::kFloat && !bf16_pair)) {
    return at::linear(w8a8 ? quantize_rows(x) : x, unpack_weight(p).to(x.scalar_type()),
                      bias.defined() ? bias.to(x.scalar_type()) : bias);
  }
  const auto xc = x.contiguous();
  auto sizes = x.sizes().vec();
  sizes.back() = N;
  auto y = at::empty(sizes, x.options().dtype(at::kFloat));
  if (M == 0) return y.to(x.scalar_type());
  const auto b = bias.defined() ? bias.to(at::kFloat).contiguous() : bias;
  const float* bp = b.defined() ? b.data_ptr<float>() : nullptr;
  float* yp = y.data_ptr<float>();
  if (bf16_pair) {  // a bf16 model on a CPU with AVX512-BF16: bf16 products, float32 sums
    product(Bf16Step{reinterpret_cast<const int16_t*>(xc.data_ptr()), p.data.data_ptr<int16_t>(), K, bp}, M, yp, N);
    return y.to(at::kBFloat16);
  }
  const float* xp = xc.data_ptr<float>();
  switch (p.format) {
    case WeightFormat::kFloat32:
      product(FloatStep<float>{xp, p.data.data_ptr<float>(), K, nullptr, bp}, M, yp, N);
      break;
    case WeightFormat::kBFloat16:
      product(FloatStep<int16_t>{xp, p.data.data_ptr<int16_t>(), K, nullptr, bp}, M, yp, N);
      break;
    case WeightFormat::kInt8:
      product(FloatStep<int8_t>{xp, p.data.data_ptr<int8_t>(), K, p.scale.data_ptr<float>(), bp}, M, yp, N);
      break;
    case WeightFormat::kW8A8: {
      const int64_t ldx = (K + 63) / 64 * 64;
      thread_local std::vector<uint8_t> bytes;
      thread_local std::vector<float> scales;
      bytes.resize(static_cast<size_t>(M * ldx));
      scales.resize(static_cast<size_t>(M));
      quantize_rows_to_bytes(xp, M, K, ldx, bytes.data(), scales.data());
      product(Int8Step{bytes.data(), ldx, scales.data(), p.data.data_ptr<int8_t>(), K, p.scale.data_ptr<float>(),
                       p.row_sums.data_ptr<int32_t>(), bp},
              M, yp, N);
      break;
    }
  }
  return y;
}

#pragma GCC diagnostic pop

}  // namespace msmedcap::models
