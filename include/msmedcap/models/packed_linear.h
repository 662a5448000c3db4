#pragma once
/// Weight formats for decoding on the CPU, and the small-row matrix product that reads them.
///
/// Decoding one image reads every decoder weight once per new token, so on a CPU its speed is set
/// by the bytes of weight it reads (docs/PERFORMANCE.md). A PackedWeight holds a Linear's weight
/// [N, K] in one of three formats, each row contiguous:
///   - float32;
///   - bf16: the float32 value's upper 16 bits, rounded to nearest even (half the bytes);
///   - int8: symmetric, per output channel: w[n, k] ~ scale[n] * q[n, k], q in -127..127,
///     scale[n] = max_k |w[n, k]| / 127 (a quarter of the bytes). Activations stay float32
///     (weight-only quantisation, as CTranslate2's int8_float32).
/// packed_linear() computes x W^T + b with float32 activations and accumulation. It runs its own
/// AVX-512 loop that converts each weight to float32 in registers as it is read, once for all the
/// rows (one pass over the weight bytes). Float32 weights at more than kPackedMaxRows rows go to
/// ATen's product (BLAS is as fast there); on a CPU without AVX-512 every format multiplies with
/// the dequantised weight through ATen, so the results stand for the same weight values.

#include <ATen/Tensor.h>

#include <cstdint>
#include <string>

namespace msmedcap::models {

enum class WeightFormat { kFloat32, kBFloat16, kInt8 };

/// "fp32" | "bf16" | "int8"; anything else is an error naming `what`.
WeightFormat parse_weight_format(const std::string& name, const std::string& what);
const char* weight_format_name(WeightFormat format);

/// Rows up to which packed_linear() uses its own loop for float32 weights (decode steps: batch x
/// beams rows); bf16 and int8 weights use it at every row count.
inline constexpr int64_t kPackedMaxRows = 16;

/// A weight [N, K] in one format, ready for packed_linear().
struct PackedWeight {
  WeightFormat format = WeightFormat::kFloat32;
  at::Tensor data;   ///< [N, K]: float32, bf16 (as int16 bits) or int8
  at::Tensor scale;  ///< [N] float32 (int8 only)
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
/// x [..., K] float32 (or bf16: computed in float32, returned as bf16) on the CPU -> [..., N];
/// bias [N] or undefined.
at::Tensor packed_linear(const at::Tensor& x, const PackedWeight& weight, const at::Tensor& bias = {});
/// True when this CPU runs packed_linear's own loop (AVX-512 F/BW/VL), false when it falls back.
bool packed_kernel_available();

}  // namespace msmedcap::models
