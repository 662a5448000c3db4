// Packed weight formats for CPU decoding (models/packed_linear.h): the small-row loop equals
// ATen's product with the same (dequantised) weight at every row count and shape edge, the int8
// and bf16 formats stay within their rounding bounds, and a decoder whose weights are packed
// decodes as its float32 self does.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/grad_mode.h>

#include "msmedcap/core/check.h"
#include "msmedcap/inference/search.h"
#include "msmedcap/models/decoder.h"
#include "msmedcap/models/layers.h"
#include "msmedcap/models/packed_linear.h"
#include "tiny_models.h"

namespace msmedcap::models {
namespace {

double max_rel_error(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>() / b.abs().max().item<double>();
}

TEST(PackedLinear, EqualsAtenWithTheSameWeightsAtEveryRowCountAndShapeEdge) {
  torch::NoGradGuard no_grad;
  at::manual_seed(0);
  // K not a multiple of 16 (a masked tail block), N not a multiple of 8 or of the 64-wide thread
  // blocks, rows from one to past the float32 threshold; also the kernel's row tiles of 1-4.
  for (const auto& [k, n] : std::vector<std::pair<int64_t, int64_t>>{{64, 96}, {77, 13}, {5, 131}, {768, 200}}) {
    const auto w = at::randn({n, k});
    const auto bias = at::randn({n});
    for (const auto format :
         {WeightFormat::kFloat32, WeightFormat::kBFloat16, WeightFormat::kInt8, WeightFormat::kW8A8}) {
      const auto packed = pack_weight(w, format);
      const auto dense = unpack_weight(packed);
      // w8a8 products quantise their input per row: the reference multiplies the same values.
      const auto input = [&](const at::Tensor& x) { return format == WeightFormat::kW8A8 ? quantize_rows(x) : x; };
      for (const int64_t rows : {1, 2, 3, 4, 5, 8, 16, 17, 40}) {
        auto x = at::randn({rows, k});
        if (rows == 3) x[1].zero_();  // a zero row: its int8 scale is 0
        const auto want =
            at::linear(input(x).to(at::kDouble), dense.to(at::kDouble), bias.to(at::kDouble)).to(at::kFloat);
        const auto got = packed_linear(x, packed, bias);
        ASSERT_EQ(got.sizes(), want.sizes());
        EXPECT_LT(max_rel_error(got, want), 1e-5)
            << "K " << k << " N " << n << " rows " << rows << " format " << weight_format_name(format);
        if (format == WeightFormat::kBFloat16) {
          // A bf16 model's input: bf16 x bf16 products where the CPU has AVX512-BF16, else
          // widened; either way the output is rounded to bf16 (2^-9 of each value at most).
          const auto xb = x.to(at::kBFloat16);
          const auto got_b = packed_linear(xb, packed, bias);
          ASSERT_EQ(got_b.scalar_type(), at::kBFloat16);
          const auto want_b = at::linear(xb.to(at::kDouble), dense.to(at::kDouble), bias.to(at::kDouble));
          EXPECT_LT(max_rel_error(got_b.to(at::kDouble), want_b), 4e-3) << "K " << k << " N " << n << " rows " << rows;
        }
        // Without a bias, and with leading batch dimensions [B, T, K].
        const auto x3 = at::randn({2, rows, k});
        EXPECT_LT(max_rel_error(packed_linear(x3, packed),
                                at::matmul(input(x3).to(at::kDouble), dense.to(at::kDouble).t()).to(at::kFloat)),
                  1e-5);
      }
    }
  }
}

TEST(PackedLinear, FormatsRoundWithinTheirBounds) {
  at::manual_seed(1);
  auto w = at::randn({64, 48});
  w[3].zero_();  // an all-zero output channel: scale 0, no division by zero
  const auto fp32 = pack_weight(w, WeightFormat::kFloat32);
  EXPECT_TRUE(at::equal(unpack_weight(fp32), w));
  EXPECT_EQ(fp32.data.data_ptr(), w.data_ptr());  // a contiguous float32 weight is not copied
  EXPECT_EQ(fp32.nbytes(), 64 * 48 * 4);
  const auto bf16 = pack_weight(w, WeightFormat::kBFloat16);
  EXPECT_TRUE(at::equal(unpack_weight(bf16), w.to(at::kBFloat16).to(at::kFloat)));  // round to nearest even
  EXPECT_EQ(bf16.nbytes(), 64 * 48 * 2);
  const auto int8 = pack_weight(w, WeightFormat::kInt8);
  EXPECT_EQ(int8.nbytes(), 64 * 48 + 64 * 4);             // the bytes and the scales
  const auto w8a8 = pack_weight(w, WeightFormat::kW8A8);  // the same weights, and their row sums
  EXPECT_TRUE(at::equal(w8a8.data, int8.data));
  EXPECT_TRUE(at::equal(w8a8.row_sums, int8.data.sum(1, false, at::kInt)));
  EXPECT_EQ(w8a8.nbytes(), 64 * 48 + 64 * 4 + 64 * 4);
  const auto scale = std::get<0>(w.abs().max(1)) / 127;  // per output channel
  EXPECT_TRUE(at::allclose(int8.scale, scale));
  // Each weight within half a step of its channel's grid; the largest magnitude exactly +-127.
  EXPECT_TRUE(((unpack_weight(int8) - w).abs() <= scale.unsqueeze(1) * 0.5 + 1e-7).all().item<bool>());
  EXPECT_EQ(int8.data.abs().amax(1)[0].item<int>(), 127);
  EXPECT_TRUE(at::equal(unpack_weight(int8)[3], at::zeros({48})));
  EXPECT_THROW(pack_weight(at::randn({4, 4, 4}), WeightFormat::kInt8), msmedcap::Error);
  EXPECT_THROW(parse_weight_format("int4", "runtime.dtype"), msmedcap::Error);
}

TEST(PackedLinear, Int8InputsRoundPerRowWithinHalfAStep) {
  at::manual_seed(3);
  auto x = at::randn({5, 7, 300}) * at::rand({5, 7, 1}) * 10;
  x[2][3].zero_();
  const auto q = quantize_rows(x);
  const auto step = x.abs().amax(-1, true) / 127;
  EXPECT_TRUE(((q - x).abs() <= step * 0.5 + 1e-6).all().item<bool>());
  EXPECT_TRUE(at::equal(q[2][3], at::zeros({300})));
  // Each row's largest magnitude is kept, and every value is a whole number of its row's steps.
  EXPECT_TRUE(at::allclose(q.abs().amax(-1), x.abs().amax(-1)));
  const auto steps = q / at::where(step > 0, step, at::ones_like(step));
  EXPECT_LT((steps - steps.round()).abs().max().item<float>(), 1e-3);
}

TEST(PackedLinear, AutogradReadsTheWeightItself) {
  Linear linear(8, 4);
  linear->pack(WeightFormat::kInt8);
  const auto x = at::randn({3, 8});
  // Recording gradients: the float32 weight, so its gradient exists and equals ATen's.
  const auto y = linear(x);
  EXPECT_TRUE(at::allclose(y, at::linear(x, linear->weight, linear->bias)));
  y.sum().backward();
  ASSERT_TRUE(linear->weight.grad().defined());
  torch::NoGradGuard no_grad;  // not recording: the int8 copy
  EXPECT_TRUE(at::allclose(linear(x), at::linear(x, unpack_weight(linear->packed), linear->bias), 1e-5, 1e-6));
}

// Layers fused into one product (a decoder's q, k and v) give what each gives packed alone, to
// the bit where the packed loop runs: every output channel keeps its own scale and its own sum,
// and the input is the same.
TEST(PackedLinear, FusedLayersEqualEachLayerPackedAlone) {
  at::manual_seed(3);
  Linear q(40, 24), k(40, 8, /*bias=*/false), v(40, 8);
  for (const auto format :
       {WeightFormat::kFloat32, WeightFormat::kBFloat16, WeightFormat::kInt8, WeightFormat::kW8A8}) {
    FusedLinear fused;
    EXPECT_FALSE(fused.applies(at::randn({1, 40})));  // nothing packed yet
    fused.pack({q.get(), k.get(), v.get()}, format);
    for (const int64_t rows : {1, 3, 17}) {
      const auto x = at::randn({rows, 40});
      torch::NoGradGuard no_grad;
      ASSERT_TRUE(fused.applies(x));
      const auto parts = fused.forward(x);
      ASSERT_EQ(parts.size(), 3u);
      int i = 0;
      for (auto* layer : {q.get(), k.get(), v.get()}) {
        EXPECT_FALSE(layer->packed.defined());  // the fused copy replaced the layer's own
        const auto alone = packed_linear(x, pack_weight(layer->weight, format), layer->bias);
        // float32 at many rows goes to BLAS, whose blocking follows the product's width.
        const auto& part = parts[static_cast<size_t>(i)];
        if (format == WeightFormat::kFloat32 && rows > kPackedMaxRows)
          EXPECT_TRUE(at::allclose(part, alone, 1e-5, 1e-6)) << "part " << i;
        else
          EXPECT_TRUE(at::equal(part.contiguous(), alone))
              << weight_format_name(format) << " part " << i << " rows " << rows;
        ++i;
      }
    }
    // Recording gradients: the layers' own products.
    EXPECT_FALSE(fused.applies(at::randn({1, 40}).requires_grad_(true)));
  }
  Linear narrow(8, 4);
  FusedLinear mixed;
  EXPECT_THROW(mixed.pack({q.get(), narrow.get()}, WeightFormat::kInt8), Error);
}

// A packed decoder multiplies q, k and v as one product in the packed formats, whose separate
// copies it then drops; a float32 decoder keeps the separate products, as a fused float32 weight
// would be a second copy of the weights themselves.
TEST(PackedLinear, DecodersFuseProjectionsOnlyWhereItCostsNoMemory) {
  for (const std::string arch : {"opt", "llama"}) {
    for (const auto format : {WeightFormat::kFloat32, WeightFormat::kInt8}) {
      auto decoder = build_decoder(testing::tiny_decoder(arch));
      decoder->pack_weights(format);
      int64_t projections = 0;
      for (const auto& item : decoder->named_modules()) {
        const auto& name = item.key();
        const bool part = name.size() > 7 && (name.compare(name.size() - 7, 7, ".q_proj") == 0 ||
                                              name.compare(name.size() - 7, 7, ".v_proj") == 0);
        if (!part) continue;
        ++projections;
        const auto* linear = item.value()->as<LinearImpl>();
        ASSERT_NE(linear, nullptr) << name;
        EXPECT_EQ(linear->packed.defined(), format == WeightFormat::kFloat32) << arch << " " << name;
      }
      EXPECT_GT(projections, 0) << arch;
    }
  }
}

// A decoder packed in each format decodes greedily as the float32 decoder with the same
// (rounded) weights does: the packed path changes where the products run, not what they compute.
// w8a8 also rounds each product's input, which no float32 weight can stand for: its reference is
// the same packed decoder on the ATen path (quantize_rows, then the dequantised weight).
TEST(PackedLinear, PackedDecoderGreedyEqualsItsUnpackedSelf) {
  for (const std::string arch : {"opt", "llama", "gpt2"}) {
    const auto d = testing::tiny_decoder(arch);
    for (const auto format :
         {WeightFormat::kFloat32, WeightFormat::kBFloat16, WeightFormat::kInt8, WeightFormat::kW8A8}) {
      at::manual_seed(2);
      auto packed = build_decoder(d);
      at::manual_seed(2);
      auto rounded = build_decoder(d);
      packed->eval();
      rounded->eval();
      torch::NoGradGuard no_grad;
      // The reference holds the rounded values as plain float32 weights, multiplied by ATen.
      for (auto& p : rounded->named_parameters()) {
        if (p.value().dim() == 2 && p.key().find("embed_positions") == std::string::npos &&
            p.key().find("wpe") == std::string::npos) {
          auto w = arch == "gpt2" && p.key().find("wte") == std::string::npos ? p.value().t() : p.value();
          auto r = unpack_weight(pack_weight(w.contiguous(), format));
          p.value().copy_(arch == "gpt2" && p.key().find("wte") == std::string::npos ? r.t() : r);
        }
      }
      packed->pack_weights(format);
      ASSERT_TRUE(packed->packed_format().has_value());
      // The token table is both the embedding and the tied head: the reference rounds both,
      // the packed decoder rounds only the head, so inputs are embedded by the reference.
      const auto embeds = rounded->embed(at::randint(4, 50, {2, 5}));
      const auto mask = at::ones({2, 5}, at::kLong);
      inference::GenerateOptions g;
      g.max_new_tokens = 8;
      g.eos_token_id.reset();
      const auto a = packed->forward(embeds, mask);
      const auto ga = inference::generate(*packed, embeds, mask, g).tokens;
      const bool w8a8 = format == WeightFormat::kW8A8;
      if (w8a8) set_packed_kernels_enabled(false);
      const auto b = (w8a8 ? packed : rounded)->forward(embeds, mask);
      const auto gb = inference::generate(w8a8 ? *packed : *rounded, embeds, mask, g).tokens;
      set_packed_kernels_enabled(true);
      EXPECT_LT(max_rel_error(a, b), 1e-4) << arch << " " << weight_format_name(format);
      EXPECT_TRUE(at::equal(ga, gb)) << arch << " " << weight_format_name(format);
    }
  }
}

}  // namespace
}  // namespace msmedcap::models
