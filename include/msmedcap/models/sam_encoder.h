#pragma once
/// The SAM ViT image encoder; mirrors transformers SamVisionEncoder: patch embedding, absolute
/// positions (channels-last), pre-LN blocks with windowed attention (zero padding after
/// layer_norm1, crop after unpartition) or global attention, decomposed relative positions
/// (with linear interpolation of the tables), and the neck (1x1 conv, LayerNorm2d, 3x3 conv,
/// LayerNorm2d). Registered names equal HF's under `sam_model.vision_encoder.`.

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/normalization.h>

#include <vector>

#include "msmedcap/config/model_config.h"
#include "msmedcap/models/layers.h"

namespace msmedcap::models {

/// Relative-position table lookup of SAM (get_rel_pos): [q_size, k_size, Dh] from a table of
/// 2*S-1 rows, linearly interpolated when S differs.
torch::Tensor sam_relative_positions(int64_t q_size, int64_t k_size, const torch::Tensor& table);

/// Attention with decomposed relative positions (SamVisionAttention).
class SamAttentionImpl : public torch::nn::Module {
 public:
  /// input_size: tokens per side this attention sees (window size, or the full grid).
  SamAttentionImpl(const config::SamEncoderConfig& cfg, int64_t input_size);
  /// x: [B, H, W, C] -> [B, H, W, C].
  torch::Tensor forward(const torch::Tensor& x);
  Linear qkv{nullptr}, proj{nullptr};
  torch::Tensor rel_pos_h, rel_pos_w;

 private:
  int64_t num_heads_;
  bool use_rel_pos_;
};
TORCH_MODULE(SamAttention);

/// lin1 -> GELU -> lin2.
class SamMlpImpl : public torch::nn::Module {
 public:
  SamMlpImpl(int64_t hidden, int64_t mlp_dim);
  torch::Tensor forward(const torch::Tensor& x);
  Linear lin1{nullptr}, lin2{nullptr};
};
TORCH_MODULE(SamMlp);

/// One block; window_size 0 = global attention.
class SamLayerImpl : public torch::nn::Module {
 public:
  SamLayerImpl(const config::SamEncoderConfig& cfg, int64_t window_size);
  /// x: [B, H, W, C] -> [B, H, W, C].
  torch::Tensor forward(const torch::Tensor& x);
  LayerNorm layer_norm1{nullptr}, layer_norm2{nullptr};
  SamAttention attn{nullptr};
  SamMlp mlp{nullptr};

 private:
  int64_t window_size_;
};
TORCH_MODULE(SamLayer);

/// LayerNorm over the channel dimension of [B, C, H, W] (SamLayerNorm channels_first).
class LayerNorm2dImpl : public torch::nn::Module {
 public:
  LayerNorm2dImpl(int64_t channels, double eps);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight, bias;

 private:
  double eps_;
};
TORCH_MODULE(LayerNorm2d);

/// conv1 (1x1) -> layer_norm1 -> conv2 (3x3) -> layer_norm2.
class SamNeckImpl : public torch::nn::Module {
 public:
  explicit SamNeckImpl(const config::SamEncoderConfig& cfg);
  /// x: [B, H, W, C] -> [B, Cout, H, W].
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  LayerNorm2d layer_norm1{nullptr}, layer_norm2{nullptr};
};
TORCH_MODULE(SamNeck);

/// `patch_embed.projection`.
class SamPatchEmbedImpl : public torch::nn::Module {
 public:
  explicit SamPatchEmbedImpl(const config::SamEncoderConfig& cfg);
  /// pixels [B, 3, S, S] -> [B, S/P, S/P, C].
  torch::Tensor forward(const torch::Tensor& pixels);
  torch::nn::Conv2d projection{nullptr};
};
TORCH_MODULE(SamPatchEmbed);

/// SamVisionEncoder.
class SamEncoderImpl : public torch::nn::Module {
 public:
  explicit SamEncoderImpl(const config::SamEncoderConfig& cfg);
  /// pixels [B, 3, S, S] -> image embeddings [B, Cout, S/P, S/P]. When `hidden_states` is
  /// given it receives the residual stream entering each block ([B, h, w, C]).
  torch::Tensor forward(const torch::Tensor& pixels, std::vector<torch::Tensor>* hidden_states = nullptr);
  SamPatchEmbed patch_embed{nullptr};
  torch::Tensor pos_embed;
  torch::nn::ModuleList layers{nullptr};
  SamNeck neck{nullptr};

 private:
  int64_t image_size_;
};
TORCH_MODULE(SamEncoder);

/// The `sam_model` container: holds `vision_encoder` as HF SamModel does (prompt encoder and
/// mask decoder are not used by captioning).
class SamModelImpl : public torch::nn::Module {
 public:
  explicit SamModelImpl(const config::SamEncoderConfig& cfg);
  SamEncoder vision_encoder{nullptr};
};
TORCH_MODULE(SamModel);

}  // namespace msmedcap::models
