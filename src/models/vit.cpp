#include "msmedcap/models/vit.h"

#include "msmedcap/models/checkpointing.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/nn/functional/activation.h>
#include <torch/nn/functional/upsampling.h>

#include <cmath>

#include "msmedcap/core/check.h"
#include "msmedcap/core/compat.h"

namespace msmedcap::models {

namespace F = torch::nn::functional;

VisionEmbeddingsImpl::VisionEmbeddingsImpl(const config::VisionConfig& cfg) : patch_size_(cfg.patch_size) {
  const int64_t grid = cfg.image_size / cfg.patch_size;
  class_embedding = register_parameter("class_embedding", torch::randn({1, 1, cfg.hidden_size}) * 0.02);
  position_embedding =
      register_parameter("position_embedding", torch::randn({1, grid * grid + 1, cfg.hidden_size}) * 0.02);
  patch_embedding = register_module(
      "patch_embedding",
      torch::nn::Conv2d(torch::nn::Conv2dOptions(3, cfg.hidden_size, cfg.patch_size).stride(cfg.patch_size)));
}

torch::Tensor VisionEmbeddingsImpl::forward(const torch::Tensor& pixels) {
  MSMEDCAP_CHECK(pixels.dim() == 4 && pixels.size(1) == 3,
                 "vision_model: pixel_values must be "
                 "[B, 3, H, W], got ",
                 pixels.sizes());
  MSMEDCAP_CHECK(pixels.size(2) % patch_size_ == 0 && pixels.size(3) % patch_size_ == 0, "vision_model: image ",
                 pixels.size(2), "x", pixels.size(3), " is not a multiple of the patch size ", patch_size_);
  auto patches = patch_embedding(pixels.to(patch_embedding->weight.dtype()));  // [B, D, h, w]
  const int64_t h = patches.size(2), w = patches.size(3);
  patches = patches.flatten(2).transpose(1, 2);  // [B, h*w, D]
  const int64_t batch = pixels.size(0);
  // The residual stream in the weights' dtype, as HF's: under autocast the patches come out of the
  // convolution in bf16/fp16, and a LayerNorm's input must match its weights on the CPU.
  const auto dtype = patch_embedding->weight.scalar_type();
  auto x = torch::cat({class_embedding.expand({batch, 1, -1}).to(dtype), patches.to(dtype)}, 1);
  auto pos = position_embedding;
  const int64_t stored = pos.size(1) - 1;
  if (stored != h * w) {
    // Bicubic interpolation of the position grid, CLS kept (LAVIS interpolate_pos_embed).
    const auto side = static_cast<int64_t>(std::lround(std::sqrt(static_cast<double>(stored))));
    MSMEDCAP_CHECK(side * side == stored, "vision_model: position embedding of ", stored,
                   " patches is not a square grid");
    auto grid = pos.slice(1, 1).reshape({1, side, side, -1}).permute({0, 3, 1, 2});
    grid = F::interpolate(
        grid, F::InterpolateFuncOptions().size(std::vector<int64_t>{h, w}).mode(torch::kBicubic).align_corners(false));
    pos = torch::cat({pos.slice(1, 0, 1), grid.permute({0, 2, 3, 1}).reshape({1, h * w, -1})}, 1);
  }
  return x + pos.to(x.dtype());
}

VisionAttentionImpl::VisionAttentionImpl(const config::VisionConfig& cfg) : num_heads_(cfg.num_attention_heads) {
  qkv = register_module("qkv", Linear(cfg.hidden_size, 3 * cfg.hidden_size));
  projection = register_module("projection", Linear(cfg.hidden_size, cfg.hidden_size));
}

torch::Tensor VisionAttentionImpl::forward(const torch::Tensor& x) {
  const int64_t b = x.size(0), n = x.size(1), d = x.size(2);
  auto parts = qkv(x).reshape({b, n, 3, num_heads_, d / num_heads_}).permute({2, 0, 3, 1, 4});
  auto out = core::scaled_dot_product_attention(parts[0], parts[1], parts[2]);  // [B, H, N, Dh]
  return projection(out.transpose(1, 2).reshape({b, n, d}));
}

VisionMlpImpl::VisionMlpImpl(int64_t hidden, int64_t intermediate, bool quick_gelu) : quick_gelu_(quick_gelu) {
  fc1 = register_module("fc1", Linear(hidden, intermediate));
  fc2 = register_module("fc2", Linear(intermediate, hidden));
}

torch::Tensor VisionMlpImpl::forward(const torch::Tensor& x) {
  auto h = fc1(x);
  // CLIP's QuickGELU x * sigmoid(1.702 x); EVA's exact (erf) GELU.
  h = quick_gelu_ ? h * torch::sigmoid(1.702 * h) : F::gelu(h);
  return fc2(h);
}

ClipVisionEmbeddingsImpl::ClipVisionEmbeddingsImpl(const config::VisionConfig& cfg) : image_size_(cfg.image_size) {
  const int64_t grid = cfg.image_size / cfg.patch_size;
  class_embedding = register_parameter("class_embedding", torch::randn({cfg.hidden_size}) * 0.02);
  patch_embedding = register_module(
      "patch_embedding",
      torch::nn::Conv2d(
          torch::nn::Conv2dOptions(3, cfg.hidden_size, cfg.patch_size).stride(cfg.patch_size).bias(false)));
  position_embedding = register_module("position_embedding", Embedding(grid * grid + 1, cfg.hidden_size));
}

torch::Tensor ClipVisionEmbeddingsImpl::forward(const torch::Tensor& pixels) {
  MSMEDCAP_CHECK(
      pixels.dim() == 4 && pixels.size(1) == 3 && pixels.size(2) == image_size_ && pixels.size(3) == image_size_,
      "vision_model: CLIP pixel_values must be [B, 3, ", image_size_, ", ", image_size_, "], got ", pixels.sizes());
  auto patches = patch_embedding(pixels.to(patch_embedding->weight.dtype())).flatten(2).transpose(1, 2);
  const int64_t b = pixels.size(0);
  const auto dtype = patch_embedding->weight.scalar_type();  // as VisionEmbeddings: the weights' dtype
  auto x = torch::cat({class_embedding.view({1, 1, -1}).expand({b, 1, -1}).to(dtype), patches.to(dtype)}, 1);
  return x + position_embedding->weight.unsqueeze(0).to(x.dtype());
}

ClipAttentionImpl::ClipAttentionImpl(const config::VisionConfig& cfg) : num_heads_(cfg.num_attention_heads) {
  q_proj = register_module("q_proj", Linear(cfg.hidden_size, cfg.hidden_size));
  k_proj = register_module("k_proj", Linear(cfg.hidden_size, cfg.hidden_size));
  v_proj = register_module("v_proj", Linear(cfg.hidden_size, cfg.hidden_size));
  out_proj = register_module("out_proj", Linear(cfg.hidden_size, cfg.hidden_size));
}

torch::Tensor ClipAttentionImpl::forward(const torch::Tensor& x) {
  const int64_t b = x.size(0), n = x.size(1), d = x.size(2), dh = d / num_heads_;
  auto q = q_proj(x).view({b, n, num_heads_, dh}).transpose(1, 2);
  auto k = k_proj(x).view({b, n, num_heads_, dh}).transpose(1, 2);
  auto v = v_proj(x).view({b, n, num_heads_, dh}).transpose(1, 2);
  return out_proj(core::scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape({b, n, d}));
}

ClipLayerImpl::ClipLayerImpl(const config::VisionConfig& cfg) {
  self_attn = register_module("self_attn", ClipAttention(cfg));
  const auto ln = torch::nn::LayerNormOptions({cfg.hidden_size}).eps(cfg.layer_norm_eps);
  layer_norm1 = register_module("layer_norm1", LayerNorm(ln));
  mlp = register_module("mlp", VisionMlp(cfg.hidden_size, cfg.intermediate_size, /*quick_gelu=*/true));
  layer_norm2 = register_module("layer_norm2", LayerNorm(ln));
}

torch::Tensor ClipLayerImpl::forward(const torch::Tensor& x) {
  auto h = x + self_attn(layer_norm1(x));
  return h + mlp(layer_norm2(h));
}

VisionLayerImpl::VisionLayerImpl(const config::VisionConfig& cfg) {
  self_attn = register_module("self_attn", VisionAttention(cfg));
  const auto ln = torch::nn::LayerNormOptions({cfg.hidden_size}).eps(cfg.layer_norm_eps);
  layer_norm1 = register_module("layer_norm1", LayerNorm(ln));
  mlp = register_module("mlp", VisionMlp(cfg.hidden_size, cfg.intermediate_size));
  layer_norm2 = register_module("layer_norm2", LayerNorm(ln));
}

torch::Tensor VisionLayerImpl::forward(const torch::Tensor& x) {
  auto h = x + self_attn(layer_norm1(x));
  return h + mlp(layer_norm2(h));
}

VisionEncoderImpl::VisionEncoderImpl(const config::VisionConfig& cfg) {
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < cfg.num_hidden_layers; ++i) {
    if (cfg.type == "clip") {
      layers->push_back(ClipLayer(cfg));
    } else {
      layers->push_back(VisionLayer(cfg));
    }
  }
}

torch::Tensor VisionEncoderImpl::forward(torch::Tensor x) {
  const bool recompute = gradient_checkpointing && is_training() && at::GradMode::is_enabled() && x.requires_grad();
  for (const auto& layer : *layers) {
    Block block = [layer](const torch::Tensor& h) {
      if (auto* clip = layer->as<ClipLayer>()) return clip->forward(h);
      return layer->as<VisionLayer>()->forward(h);
    };
    x = recompute ? checkpointed(block, x) : block(x);
  }
  return x;
}

Blip2VisionModelImpl::Blip2VisionModelImpl(const config::VisionConfig& cfg) {
  embeddings = register_module("embeddings", VisionEmbeddings(cfg));
  encoder = register_module("encoder", VisionEncoder(cfg));
  post_layernorm = register_module("post_layernorm",
                                   LayerNorm(torch::nn::LayerNormOptions({cfg.hidden_size}).eps(cfg.layer_norm_eps)));
}

VisionOutput Blip2VisionModelImpl::forward(const torch::Tensor& pixels) {
  VisionOutput out;
  out.embeddings = embeddings(pixels);
  out.last_hidden_state = post_layernorm(encoder(out.embeddings));
  // HF applies post_layernorm a second time to the pooled CLS token.
  out.pooler_output = post_layernorm(out.last_hidden_state.select(1, 0));
  out.features = out.last_hidden_state;
  return out;
}

ClipVisionTransformerImpl::ClipVisionTransformerImpl(const config::VisionConfig& cfg) {
  const auto ln = torch::nn::LayerNormOptions({cfg.hidden_size}).eps(cfg.layer_norm_eps);
  embeddings = register_module("embeddings", ClipVisionEmbeddings(cfg));
  pre_layrnorm = register_module("pre_layrnorm", LayerNorm(ln));
  encoder = register_module("encoder", VisionEncoder(cfg));
  post_layernorm = register_module("post_layernorm", LayerNorm(ln));
}

VisionOutput ClipVisionTransformerImpl::forward(const torch::Tensor& pixels) {
  VisionOutput out;
  out.embeddings = embeddings(pixels);
  out.last_hidden_state = encoder(pre_layrnorm(out.embeddings));
  out.pooler_output = post_layernorm(out.last_hidden_state.select(1, 0));
  out.features = post_layernorm(out.last_hidden_state);
  return out;
}

VisionModel make_vision_model(const config::VisionConfig& cfg) {
  // A pointer to the interface: ModuleHolder's forwarding constructor would take a derived one.
  std::shared_ptr<VisionModelImpl> tower;
  if (cfg.type == "clip") {
    tower = std::make_shared<ClipVisionTransformerImpl>(cfg);
  } else {
    tower = std::make_shared<Blip2VisionModelImpl>(cfg);
  }
  return VisionModel(std::move(tower));
}

ClipVisionModelImpl::ClipVisionModelImpl(const config::VisionConfig& cfg) {
  vision_model = register_module("vision_model", make_vision_model(cfg));
}

}  // namespace msmedcap::models
