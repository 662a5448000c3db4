#pragma once
/// The CLIP-branch vision transformer; mirrors transformers Blip2VisionModel (EVA ViT-g style:
/// fused qkv with zero key bias, pre-LN blocks, exact GELU, CLS + learned positions,
/// post_layernorm). Registered names equal HF's under `vision_model.`.

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include "msmedcap/config/model_config.h"

namespace msmedcap::models {

/// Patch embedding + CLS + positions (Blip2VisionEmbeddings).
class VisionEmbeddingsImpl : public torch::nn::Module {
 public:
  explicit VisionEmbeddingsImpl(const config::VisionConfig& cfg);
  /// pixels: [B, 3, H, W] -> [B, 1 + (H/P)*(W/P), D]; positions are bicubically interpolated
  /// when the image size differs from the configured one.
  torch::Tensor forward(const torch::Tensor& pixels);
  torch::Tensor class_embedding, position_embedding;
  torch::nn::Conv2d patch_embedding{nullptr};

 private:
  int64_t patch_size_;
};
TORCH_MODULE(VisionEmbeddings);

/// Fused-qkv self attention (Blip2Attention).
class VisionAttentionImpl : public torch::nn::Module {
 public:
  explicit VisionAttentionImpl(const config::VisionConfig& cfg);
  /// x: [B, N, D] -> [B, N, D].
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear qkv{nullptr}, projection{nullptr};

 private:
  int64_t num_heads_;
};
TORCH_MODULE(VisionAttention);

/// fc1 -> GELU -> fc2.
class VisionMlpImpl : public torch::nn::Module {
 public:
  VisionMlpImpl(int64_t hidden, int64_t intermediate);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(VisionMlp);

/// Pre-LN block: x + attn(ln1(x)), then x + mlp(ln2(x)).
class VisionLayerImpl : public torch::nn::Module {
 public:
  explicit VisionLayerImpl(const config::VisionConfig& cfg);
  torch::Tensor forward(const torch::Tensor& x);
  VisionAttention self_attn{nullptr};
  torch::nn::LayerNorm layer_norm1{nullptr}, layer_norm2{nullptr};
  VisionMlp mlp{nullptr};
};
TORCH_MODULE(VisionLayer);

/// Blip2VisionEncoder: a ModuleList named `layers`.
class VisionEncoderImpl : public torch::nn::Module {
 public:
  explicit VisionEncoderImpl(const config::VisionConfig& cfg);
  torch::Tensor forward(torch::Tensor x);
  torch::nn::ModuleList layers{nullptr};
};
TORCH_MODULE(VisionEncoder);

/// Outputs of the vision model, named as HF names them.
struct VisionOutput {
  torch::Tensor embeddings;         // [B, N, D] after the embeddings
  torch::Tensor last_hidden_state;  // [B, N, D] after post_layernorm
  torch::Tensor pooler_output;      // [B, D] post_layernorm(last_hidden_state[:, 0])
};

/// Blip2VisionModel.
class VisionModelImpl : public torch::nn::Module {
 public:
  explicit VisionModelImpl(const config::VisionConfig& cfg);
  VisionOutput forward(const torch::Tensor& pixels);
  VisionEmbeddings embeddings{nullptr};
  VisionEncoder encoder{nullptr};
  torch::nn::LayerNorm post_layernorm{nullptr};
};
TORCH_MODULE(VisionModel);

}  // namespace msmedcap::models
