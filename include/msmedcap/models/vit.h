#pragma once
/// The CLIP-branch vision transformer, two towers with HF's names under `vision_model.`:
/// transformers Blip2VisionModel (EVA ViT-g style: fused qkv with zero key bias, pre-LN blocks,
/// exact GELU, CLS + learned positions, post_layernorm) and CLIPVisionModel (separate
/// q/k/v/out_proj, QuickGELU, pre_layrnorm, post_layernorm).

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/normalization.h>

#include "msmedcap/config/model_config.h"
#include "msmedcap/models/layers.h"

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
  Linear qkv{nullptr}, projection{nullptr};

 private:
  int64_t num_heads_;
};
TORCH_MODULE(VisionAttention);

/// fc1 -> GELU (exact, or CLIP's QuickGELU) -> fc2.
class VisionMlpImpl : public torch::nn::Module {
 public:
  VisionMlpImpl(int64_t hidden, int64_t intermediate, bool quick_gelu = false);
  torch::Tensor forward(const torch::Tensor& x);
  Linear fc1{nullptr}, fc2{nullptr};

 private:
  bool quick_gelu_;
};
TORCH_MODULE(VisionMlp);

/// Pre-LN block: x + attn(ln1(x)), then x + mlp(ln2(x)).
class VisionLayerImpl : public torch::nn::Module {
 public:
  explicit VisionLayerImpl(const config::VisionConfig& cfg);
  torch::Tensor forward(const torch::Tensor& x);
  VisionAttention self_attn{nullptr};
  LayerNorm layer_norm1{nullptr}, layer_norm2{nullptr};
  VisionMlp mlp{nullptr};
};
TORCH_MODULE(VisionLayer);

/// Blip2VisionEncoder: a ModuleList named `layers`.
class VisionEncoderImpl : public torch::nn::Module {
 public:
  explicit VisionEncoderImpl(const config::VisionConfig& cfg);
  torch::Tensor forward(torch::Tensor x);
  torch::nn::ModuleList layers{nullptr};
  /// Recompute each layer in the backward instead of keeping its activations (training with
  /// gradient only; models/checkpointing.h). LAVIS's use_grad_checkpoint for the ViT.
  bool gradient_checkpointing = false;
};
TORCH_MODULE(VisionEncoder);

/// CLIPVisionEmbeddings: bias-free patch conv, CLS vector, an Embedding table of positions.
class ClipVisionEmbeddingsImpl : public torch::nn::Module {
 public:
  explicit ClipVisionEmbeddingsImpl(const config::VisionConfig& cfg);
  /// pixels: [B, 3, S, S] (the configured size) -> [B, 1 + (S/P)^2, D].
  torch::Tensor forward(const torch::Tensor& pixels);
  torch::Tensor class_embedding;
  torch::nn::Conv2d patch_embedding{nullptr};
  Embedding position_embedding{nullptr};

 private:
  int64_t image_size_;
};
TORCH_MODULE(ClipVisionEmbeddings);

/// CLIPAttention: q/k/v/out_proj with bias.
class ClipAttentionImpl : public torch::nn::Module {
 public:
  explicit ClipAttentionImpl(const config::VisionConfig& cfg);
  torch::Tensor forward(const torch::Tensor& x);
  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, out_proj{nullptr};

 private:
  int64_t num_heads_;
};
TORCH_MODULE(ClipAttention);

/// CLIPEncoderLayer: pre-LN, QuickGELU MLP.
class ClipLayerImpl : public torch::nn::Module {
 public:
  explicit ClipLayerImpl(const config::VisionConfig& cfg);
  torch::Tensor forward(const torch::Tensor& x);
  ClipAttention self_attn{nullptr};
  LayerNorm layer_norm1{nullptr}, layer_norm2{nullptr};
  VisionMlp mlp{nullptr};
};
TORCH_MODULE(ClipLayer);

/// Outputs of the vision model, named as HF names them.
struct VisionOutput {
  torch::Tensor embeddings;         // [B, N, D] after the embeddings
  torch::Tensor last_hidden_state;  // [B, N, D] HF's (blip2: after post_layernorm; clip: before)
  torch::Tensor pooler_output;      // [B, D] post_layernorm of the CLS token
  torch::Tensor features;           // [B, N, D] what the Q-Former reads: post_layernorm(tokens)
};

/// The CLIP-branch tower the composite model holds as `vision_model.`: one of the two classes
/// below, chosen by cfg.type (make_vision_model). Both have an `encoder` of cfg.num_hidden_layers
/// pre-LN blocks and a `post_layernorm`.
class VisionModelImpl : public torch::nn::Module {
 public:
  virtual VisionOutput forward(const torch::Tensor& pixels) = 0;
  VisionEncoder encoder{nullptr};
  LayerNorm post_layernorm{nullptr};
};
TORCH_MODULE(VisionModel);

/// transformers Blip2VisionModel (EVA ViT-g style): embeddings, encoder, post_layernorm, which
/// is applied to every token (the Q-Former reads last_hidden_state).
class Blip2VisionModelImpl final : public VisionModelImpl {
 public:
  explicit Blip2VisionModelImpl(const config::VisionConfig& cfg);
  VisionOutput forward(const torch::Tensor& pixels) override;
  VisionEmbeddings embeddings{nullptr};
};

/// CLIPVisionModel's vision_model: embeddings, pre_layrnorm (HF's spelling), encoder,
/// post_layernorm, which HF applies to the CLS token alone; the Q-Former reads post_layernorm of
/// every token, as LAVIS's ln_vision does.
class ClipVisionTransformerImpl final : public VisionModelImpl {
 public:
  explicit ClipVisionTransformerImpl(const config::VisionConfig& cfg);
  VisionOutput forward(const torch::Tensor& pixels) override;
  ClipVisionEmbeddings embeddings{nullptr};
  LayerNorm pre_layrnorm{nullptr};
};

/// The tower cfg.type names ("blip2" or "clip").
VisionModel make_vision_model(const config::VisionConfig& cfg);

/// The root of an HF CLIPVisionModel checkpoint: holds `vision_model`.
class ClipVisionModelImpl : public torch::nn::Module {
 public:
  explicit ClipVisionModelImpl(const config::VisionConfig& cfg);
  VisionModel vision_model{nullptr};
};
TORCH_MODULE(ClipVisionModel);

}  // namespace msmedcap::models
