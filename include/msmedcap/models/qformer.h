#pragma once
/// The Q-Former; mirrors transformers Blip2QFormerModel: post-LN BERT layers whose learned
/// query tokens self-attend, cross-attend to image features every `cross_attention_frequency`
/// layers, and pass through their own feed-forward (intermediate_query / output_query).
/// Registered names equal HF's under `qformer.` (and `sam_qformer.` for the SAM branch).

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include "msmedcap/config/model_config.h"

namespace msmedcap::models {

/// Multi-head attention with separate query/key/value (Blip2QFormerMultiHeadAttention).
class QFormerMultiHeadAttentionImpl : public torch::nn::Module {
 public:
  QFormerMultiHeadAttentionImpl(const config::QFormerConfig& cfg, bool is_cross);
  /// x: [B, N, D]; context: [B, M, Dc] (x itself for self attention); mask: additive,
  /// broadcastable to [B, H, N, M] (undefined = none). Returns [B, N, D].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context,
                        const torch::Tensor& mask = {});
  torch::nn::Linear query{nullptr}, key{nullptr}, value{nullptr};

 private:
  int64_t num_heads_;
};
TORCH_MODULE(QFormerMultiHeadAttention);

/// dense -> dropout -> LayerNorm(x + input) (Blip2QFormerSelfOutput / Blip2QFormerOutput).
class QFormerOutputImpl : public torch::nn::Module {
 public:
  QFormerOutputImpl(int64_t in, int64_t out, double eps);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& residual);
  torch::nn::Linear dense{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};
};
TORCH_MODULE(QFormerOutput);

/// attention + output (Blip2QFormerAttention), registered as `attention` and `output`.
class QFormerAttentionImpl : public torch::nn::Module {
 public:
  QFormerAttentionImpl(const config::QFormerConfig& cfg, bool is_cross);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context,
                        const torch::Tensor& mask = {});
  QFormerMultiHeadAttention attention{nullptr};
  QFormerOutput output{nullptr};
};
TORCH_MODULE(QFormerAttention);

/// dense -> GELU (Blip2QFormerIntermediate).
class QFormerIntermediateImpl : public torch::nn::Module {
 public:
  QFormerIntermediateImpl(int64_t hidden, int64_t intermediate);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear dense{nullptr};
};
TORCH_MODULE(QFormerIntermediate);

/// One post-LN layer (Blip2QFormerLayer), query path.
class QFormerLayerImpl : public torch::nn::Module {
 public:
  QFormerLayerImpl(const config::QFormerConfig& cfg, int64_t index);
  /// queries: [B, Nq, D]; image: [B, M, Dc]. Returns [B, Nq, D].
  torch::Tensor forward(const torch::Tensor& queries, const torch::Tensor& image);
  QFormerAttention attention{nullptr};
  QFormerAttention crossattention{nullptr};  // null on layers without cross-attention
  QFormerIntermediate intermediate_query{nullptr};
  QFormerOutput output_query{nullptr};
};
TORCH_MODULE(QFormerLayer);

/// `encoder.layer.N`.
class QFormerEncoderImpl : public torch::nn::Module {
 public:
  explicit QFormerEncoderImpl(const config::QFormerConfig& cfg);
  torch::nn::ModuleList layer{nullptr};
};
TORCH_MODULE(QFormerEncoder);

/// Blip2QFormerModel: `layernorm` (applied to the query embeddings) and `encoder`.
class QFormerModelImpl : public torch::nn::Module {
 public:
  explicit QFormerModelImpl(const config::QFormerConfig& cfg);
  /// query_embeds: [B, Nq, D]; image: [B, M, Dc] -> last hidden state [B, Nq, D].
  torch::Tensor forward(const torch::Tensor& query_embeds, const torch::Tensor& image);
  torch::nn::LayerNorm layernorm{nullptr};
  QFormerEncoder encoder{nullptr};

 private:
  int64_t encoder_hidden_size_;
};
TORCH_MODULE(QFormerModel);

}  // namespace msmedcap::models
