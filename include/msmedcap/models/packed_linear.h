#pragma once
/// Weight formats for decoding on the CPU, and the small-row matrix product that reads them.
///
/// Decoding one image reads every decoder weight once per new token, so on a CPU its speed is set
/// by the bytes of weight it reads (docs/PERFORMANCE.md). A PackedWeight holds a Linear's weight
/// [N, K] in one of four formats, each row contiguous:
///   - float32;
///   - bf16: the float32 value's upper 16 bits, rounded to nearest even (half the bytes);
///   - int8: symmetric, per output channel: w[n, k] ~ scale[n] * q[n, k], q in -127..127,
///     scale[n] = max_k |w[n, k]| / 127 (a quarter of the bytes). Activations stay float32
///     (weight-only quantisation, CTranslate2's int8_float32);
///   - w8a8: the same weights, and the product quantises its input too, per row and as it runs
///     (quantize_rows: x ~ s_m * round(x / s_m), s_m = max_k |x[m, k]| / 127), as PyTorch's
///     dynamic quantisation does, and multiplies bytes by bytes with exact 32-bit sums (AVX-512
///     VNNI): faster, and further from float32 (docs/PERFORMANCE.md).
/// packed_linear() computes x W^T + b. For fp32, bf16 and int8 weights it runs its own AVX-512
/// loop that converts each weight to float32 in registers as it is read, once for all the rows (one
/// pass over the weight bytes), with float32 activations and sums; for w8a8 the VNNI loop. Float32
/// weights at more than kPackedMaxRows rows go to ATen's product (BLAS is as fast there); on a CPU
/// without the instructions every format multiplies the dequantised weight (and, for w8a8, the
/// quantised input) through ATen, so the results stand for the same values.

#include <ATen/Tensor.h>

#include <cstdint>
#include <string>

namespace msmedcap::models {

enum class WeightFormat { kFloat32, kBFloat16, kInt8, kW8A8 };

/// "fp32" | "bf16" | "int8" | "w8a8"; anything else is an error naming `what`.
WeightFormat parse_weight_format(const std::string& name, const std::string& what);
const char* weight_format_name(WeightFormat format);

/// Rows up to which packed_linear() uses its own loop for float32 weights (decode steps: batch x
/// beams rows); bf16 and int8 weights use it at every row count.
inline constexpr int64_t kPackedMaxRows = 16;

/// A weight [N, K] in one format, ready for packed_linear().
struct PackedWeight {
  WeightFormat format = WeightFormat::kFloat32;
  at::Tensor data;      ///< [N, K]: float32, bf16 (as int16 bits) or int8
  at::Tensor scale;     ///< [N] float32 (int8 and w8a8)
  at::Tensor row_sums;  ///< [N] int32: sum over k of data (w8a8 only; the VNNI loop's offset)
  bool defined() const { return data.defined(); }
  int64_t out_features() const { return data.size(0); }
  int64_t in_features() const { return data.size(1); }
  /// Bytes of weight one product reads.
  int64_t nbytes() const;
};

/// Packs a float32 or bf16 CPU weight [N, K]. `weight` is left as it is; the fp32 format of a
/// contiguous float32 weight shares its storage, the others are copies.
PackedWeight pack_weight(const at::Tensor& weight, WeightFormat format);
/// The float32 [N, K] values the packed weight stands for.
at::Tensor unpack_weight(const PackedWeight& packed);
/// x [..., K] float32 (or bf16: returned as bf16; against bf16 weights on a CPU with AVX512-BF16
/// the products take the bf16 values as they are, elsewhere x is widened to float32) on the CPU ->
/// [..., N], float32 sums; bias [N] or undefined.
at::Tensor packed_linear(const at::Tensor& x, const PackedWeight& weight, const at::Tensor& bias = {});
/// The float32 values a w8a8 product reads for x [..., K]: each row rounded to its own 255-level
/// grid, round(x / s) * s with s = max |row| / 127 (a zero row stays zero).
at::Tensor quantize_rows(const at::Tensor& x);
/// True when this CPU runs packed_linear's own loop (AVX-512 F/BW/VL), false when it falls back.
bool packed_kernel_available();
/// True when this CPU runs the w8a8 loop (AVX-512 VNNI besides).
bool int8_kernel_available();
/// True when this CPU multiplies bf16 activations by bf16 weights directly (AVX512-BF16 besides).
bool bf16_kernel_available();
/// Off: every packed product takes the ATen path a CPU without the instructions takes (for tests
/// that hold the loops to it). On by default; process-wide.
void set_packed_kernels_enabled(bool enabled);
/// What set_packed_kernels_enabled last set (the CPU loops of cached_attention.h follow it too).
bool packed_kernels_enabled();

}  // namespace msmedcap::models
