#include "msmedcap/models/qformer.h"

#include <ATen/ATen.h>
#include <torch/nn/functional/activation.h>

#include "msmedcap/core/check.h"
#include "msmedcap/core/compat.h"

namespace msmedcap::models {

namespace F = torch::nn::functional;

QFormerMultiHeadAttentionImpl::QFormerMultiHeadAttentionImpl(const config::QFormerConfig& cfg,
                                                             bool is_cross)
    : num_heads_(cfg.num_attention_heads) {
  const int64_t context_width = is_cross ? cfg.encoder_hidden_size : cfg.hidden_size;
  query = register_module("query", torch::nn::Linear(cfg.hidden_size, cfg.hidden_size));
  key = register_module("key", torch::nn::Linear(context_width, cfg.hidden_size));
  value = register_module("value", torch::nn::Linear(context_width, cfg.hidden_size));
}

torch::Tensor QFormerMultiHeadAttentionImpl::forward(const torch::Tensor& x,
                                                     const torch::Tensor& context,
                                                     const torch::Tensor& mask) {
  const int64_t b = x.size(0), n = x.size(1), d = query->weight.size(0);
  const int64_t m = context.size(1), dh = d / num_heads_;
  auto q = query(x).view({b, n, num_heads_, dh}).transpose(1, 2);        // [B, H, N, Dh]
  auto k = key(context).view({b, m, num_heads_, dh}).transpose(1, 2);    // [B, H, M, Dh]
  auto v = value(context).view({b, m, num_heads_, dh}).transpose(1, 2);  // [B, H, M, Dh]
  auto out = core::scaled_dot_product_attention(q, k, v, mask);
  return out.transpose(1, 2).reshape({b, n, d});
}

QFormerOutputImpl::QFormerOutputImpl(int64_t in, int64_t out, double eps) {
  dense = register_module("dense", torch::nn::Linear(in, out));
  LayerNorm = register_module("LayerNorm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({out}).eps(eps)));
}

torch::Tensor QFormerOutputImpl::forward(const torch::Tensor& x, const torch::Tensor& residual) {
  return LayerNorm(dense(x) + residual);
}

QFormerAttentionImpl::QFormerAttentionImpl(const config::QFormerConfig& cfg, bool is_cross) {
  attention = register_module("attention", QFormerMultiHeadAttention(cfg, is_cross));
  output = register_module("output", QFormerOutput(cfg.hidden_size, cfg.hidden_size, cfg.layer_norm_eps));
}

torch::Tensor QFormerAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& context,
                                            const torch::Tensor& mask) {
  return output(attention(x, context, mask), x);
}

QFormerIntermediateImpl::QFormerIntermediateImpl(int64_t hidden, int64_t intermediate) {
  dense = register_module("dense", torch::nn::Linear(hidden, intermediate));
}

torch::Tensor QFormerIntermediateImpl::forward(const torch::Tensor& x) { return F::gelu(dense(x)); }

QFormerLayerImpl::QFormerLayerImpl(const config::QFormerConfig& cfg, int64_t index) {
  attention = register_module("attention", QFormerAttention(cfg, /*is_cross=*/false));
  if (index % cfg.cross_attention_frequency == 0) {
    crossattention = register_module("crossattention", QFormerAttention(cfg, /*is_cross=*/true));
  }
  intermediate_query =
      register_module("intermediate_query", QFormerIntermediate(cfg.hidden_size, cfg.intermediate_size));
  output_query = register_module(
      "output_query", QFormerOutput(cfg.intermediate_size, cfg.hidden_size, cfg.layer_norm_eps));
}

torch::Tensor QFormerLayerImpl::forward(const torch::Tensor& queries, const torch::Tensor& image) {
  auto h = attention(queries, queries);
  if (!crossattention.is_empty()) h = crossattention(h, image);
  return output_query(intermediate_query(h), h);
}

QFormerEncoderImpl::QFormerEncoderImpl(const config::QFormerConfig& cfg) {
  layer = register_module("layer", torch::nn::ModuleList());
  for (int64_t i = 0; i < cfg.num_hidden_layers; ++i) layer->push_back(QFormerLayer(cfg, i));
}

QFormerModelImpl::QFormerModelImpl(const config::QFormerConfig& cfg)
    : encoder_hidden_size_(cfg.encoder_hidden_size) {
  layernorm = register_module(
      "layernorm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({cfg.hidden_size}).eps(cfg.layer_norm_eps)));
  encoder = register_module("encoder", QFormerEncoder(cfg));
}

torch::Tensor QFormerModelImpl::forward(const torch::Tensor& query_embeds, const torch::Tensor& image) {
  MSMEDCAP_CHECK(image.dim() == 3 && image.size(2) == encoder_hidden_size_,
                 "qformer: image features must be [B, M, ", encoder_hidden_size_, "], got ",
                 image.sizes());
  auto h = layernorm(query_embeds);
  for (const auto& layer : *encoder->layer) h = layer->as<QFormerLayer>()->forward(h, image);
  return h;
}

}  // namespace msmedcap::models
