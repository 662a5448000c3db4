#include "msmedcap/models/mask_decoder.h"

#include <torch/torch.h>

#include <cmath>

#include "msmedcap/core/check.h"

namespace msmedcap::models {

namespace F = torch::nn::functional;

PointMaskDecoderImpl::PointMaskDecoderImpl(int64_t channels, int64_t width, int64_t frequencies)
    : width_(width), frequencies_(frequencies) {
  pixel_projection = register_module("pixel_projection", Linear(channels, width));
  point_hidden = register_module("point_hidden", Linear(width + 4 * frequencies, width));
  point_output = register_module("point_output", Linear(width, width));
  bias = register_parameter("bias", torch::zeros({}));
}

torch::Tensor PointMaskDecoderImpl::forward(const torch::Tensor& embeddings, const torch::Tensor& points, int64_t out_h,
                                            int64_t out_w) {
  MSMEDCAP_CHECK(
      embeddings.dim() == 4 && points.dim() == 3 && points.size(2) == 2 && points.size(0) == embeddings.size(0),
      "mask decoder: expected embeddings [B, C, h, w] and points [B, P, 2], got ", embeddings.sizes(), " and ",
      points.sizes());
  const auto x = embeddings.to(pixel_projection->weight.dtype());
  auto pixels = pixel_projection(x.permute({0, 2, 3, 1})).permute({0, 3, 1, 2});  // [B, D, h, w]
  pixels = F::interpolate(pixels, F::InterpolateFuncOptions()
                                      .size(std::vector<int64_t>{out_h, out_w})
                                      .mode(torch::kBilinear)
                                      .align_corners(false));  // [B, D, H, W]
  const auto p = points.to(pixels.dtype());
  // The features under each point: grid coordinates in [-1, 1], pixel centres at (i + 0.5) / n.
  const auto grid = (p * 2 - 1).unsqueeze(2);  // [B, P, 1, 2]
  const auto under = F::grid_sample(pixels, grid, F::GridSampleFuncOptions().align_corners(false))
                         .squeeze(3)
                         .transpose(1, 2);  // [B, P, D]
  // Sinusoidal position of the point: sin and cos of pi * 2^k * (x, y).
  const auto scales = torch::pow(2.0, torch::arange(frequencies_, p.options())).mul(M_PI);    // [F]
  const auto angles = (p.unsqueeze(-1) * scales).flatten(2);                                  // [B, P, 2F]
  const auto position = torch::cat({angles.sin(), angles.cos()}, -1);                         // [B, P, 4F]
  const auto query = point_output(F::gelu(point_hidden(torch::cat({under, position}, -1))));  // [B, P, D]
  return torch::einsum("bpd,bdhw->bphw", {query, pixels}) / std::sqrt(static_cast<double>(width_)) + bias;
}

}  // namespace msmedcap::models
