#pragma once
/// sam_pretrain's light mask decoder (docs/MODEL.md, "Encoder pretraining"): a point prompt ->
/// the mask of the structure under it, from the SAM encoder's embeddings, class-agnostic as SAM's
/// promptable segmentation. Far lighter than SAM's two-way transformer: the embeddings go to
/// `width` channels and are upsampled to the mask's size; a prompt's query is an MLP of the
/// features under the point and the point's sinusoidal position; a pixel's logit is its
/// feature's dot product with the query. What it asks of the encoder is SAM's: features that
/// tell one structure from the next, small lesions included.

#include <torch/nn/module.h>

#include "msmedcap/models/layers.h"

namespace msmedcap::models {

class PointMaskDecoderImpl : public torch::nn::Module {
 public:
  /// `channels`: the SAM embeddings' (model.sam.output_channels).
  explicit PointMaskDecoderImpl(int64_t channels, int64_t width = 32, int64_t frequencies = 6);
  /// embeddings [B, C, h, w]; points [B, P, 2] as (x, y) fractions of the embedding's extent.
  /// Returns mask logits [B, P, out_h, out_w].
  torch::Tensor forward(const torch::Tensor& embeddings, const torch::Tensor& points, int64_t out_h, int64_t out_w);

  Linear pixel_projection{nullptr}, point_hidden{nullptr}, point_output{nullptr};
  torch::Tensor bias;

 private:
  int64_t width_, frequencies_;
};
TORCH_MODULE(PointMaskDecoder);

}  // namespace msmedcap::models
