#include "msmedcap/models/sam_encoder.h"

#include <ATen/ATen.h>
#include <torch/nn/functional/activation.h>
#include <torch/nn/functional/padding.h>
#include <torch/nn/functional/upsampling.h>

#include <algorithm>

#include "msmedcap/core/check.h"
#include "msmedcap/core/compat.h"

namespace msmedcap::models {

namespace F = torch::nn::functional;

torch::Tensor sam_relative_positions(int64_t q_size, int64_t k_size, const torch::Tensor& table) {
  const int64_t max_rel_dist = 2 * std::max(q_size, k_size) - 1;
  torch::Tensor resized = table;
  if (table.size(0) != max_rel_dist) {
    resized = F::interpolate(table.t().unsqueeze(0),  // [1, Dh, L]
                             F::InterpolateFuncOptions()
                                 .size(std::vector<int64_t>{max_rel_dist})
                                 .mode(torch::kLinear)
                                 .align_corners(false))
                  .squeeze(0)
                  .t();
  }
  const double qk = std::max(static_cast<double>(k_size) / q_size, 1.0);
  const double kq = std::max(static_cast<double>(q_size) / k_size, 1.0);
  auto opts = table.options().dtype(torch::kFloat);
  auto q_coords = torch::arange(q_size, opts).unsqueeze(1) * qk;
  auto k_coords = torch::arange(k_size, opts).unsqueeze(0) * kq;
  auto relative = (q_coords - k_coords) + (k_size - 1) * kq;
  return resized.index({relative.to(torch::kLong)});  // [q, k, Dh]
}

SamAttentionImpl::SamAttentionImpl(const config::SamEncoderConfig& cfg, int64_t input_size)
    : num_heads_(cfg.num_attention_heads), use_rel_pos_(cfg.use_rel_pos) {
  qkv = register_module("qkv", Linear(cfg.hidden_size, 3 * cfg.hidden_size));
  proj = register_module("proj", Linear(cfg.hidden_size, cfg.hidden_size));
  if (use_rel_pos_) {
    const int64_t head_dim = cfg.hidden_size / cfg.num_attention_heads;
    rel_pos_h = register_parameter("rel_pos_h", torch::zeros({2 * input_size - 1, head_dim}));
    rel_pos_w = register_parameter("rel_pos_w", torch::zeros({2 * input_size - 1, head_dim}));
  }
}

torch::Tensor SamAttentionImpl::forward(const torch::Tensor& x) {
  const int64_t b = x.size(0), h = x.size(1), w = x.size(2), c = x.size(3);
  const int64_t dh = c / num_heads_;
  auto parts =
      qkv(x).reshape({b, h * w, 3, num_heads_, dh}).permute({2, 0, 3, 1, 4}).reshape({3, b * num_heads_, h * w, dh});
  auto q = parts[0], k = parts[1], v = parts[2];  // [B*H, N, Dh]
  // Decomposed relative positions (computed from the unscaled query) enter as an additive mask,
  // so the fused kernel serves SAM too on LibTorch 2.x.
  torch::Tensor bias;
  if (use_rel_pos_) {
    const auto rh = sam_relative_positions(h, h, rel_pos_h).to(q.dtype());  // [h, h, Dh]
    const auto rw = sam_relative_positions(w, w, rel_pos_w).to(q.dtype());  // [w, w, Dh]
    const auto r_q = q.reshape({b * num_heads_, h, w, dh});
    const auto rel_h = torch::einsum("bhwc,hkc->bhwk", {r_q, rh});  // [BH, h, w, h]
    const auto rel_w = torch::einsum("bhwc,wkc->bhwk", {r_q, rw});  // [BH, h, w, w]
    bias = (rel_h.unsqueeze(-1) + rel_w.unsqueeze(-2)).reshape({b * num_heads_, h * w, h * w});
  }
  auto out = core::scaled_dot_product_attention(q, k, v, bias)
                 .reshape({b, num_heads_, h, w, dh})
                 .permute({0, 2, 3, 1, 4})
                 .reshape({b, h, w, c});
  return proj(out);
}

SamMlpImpl::SamMlpImpl(int64_t hidden, int64_t mlp_dim) {
  lin1 = register_module("lin1", Linear(hidden, mlp_dim));
  lin2 = register_module("lin2", Linear(mlp_dim, hidden));
}

torch::Tensor SamMlpImpl::forward(const torch::Tensor& x) { return lin2(F::gelu(lin1(x))); }

SamLayerImpl::SamLayerImpl(const config::SamEncoderConfig& cfg, int64_t window_size) : window_size_(window_size) {
  const auto ln = torch::nn::LayerNormOptions({cfg.hidden_size}).eps(cfg.layer_norm_eps);
  layer_norm1 = register_module("layer_norm1", LayerNorm(ln));
  const int64_t grid = cfg.image_size / cfg.patch_size;
  attn = register_module("attn", SamAttention(cfg, window_size == 0 ? grid : window_size));
  layer_norm2 = register_module("layer_norm2", LayerNorm(ln));
  mlp = register_module("mlp", SamMlp(cfg.hidden_size, cfg.mlp_dim));
}

torch::Tensor SamLayerImpl::forward(const torch::Tensor& x) {
  auto h = layer_norm1(x);
  const int64_t b = h.size(0), height = h.size(1), width = h.size(2), c = h.size(3);
  if (window_size_ > 0) {
    // Zero-pad (after the norm) to a multiple of the window, attend per window, crop back.
    const int64_t ws = window_size_;
    const int64_t pad_h = (ws - height % ws) % ws, pad_w = (ws - width % ws) % ws;
    auto padded = F::pad(h, F::PadFuncOptions({0, 0, 0, pad_w, 0, pad_h}));
    const int64_t hp = height + pad_h, wp = width + pad_w;
    auto windows = padded.view({b, hp / ws, ws, wp / ws, ws, c}).permute({0, 1, 3, 2, 4, 5}).reshape({-1, ws, ws, c});
    windows = attn(windows);
    h = windows.view({b, hp / ws, wp / ws, ws, ws, c})
            .permute({0, 1, 3, 2, 4, 5})
            .reshape({b, hp, wp, c})
            .slice(1, 0, height)
            .slice(2, 0, width);
  } else {
    h = attn(h);
  }
  h = x + h;
  return h + mlp(layer_norm2(h));
}

LayerNorm2dImpl::LayerNorm2dImpl(int64_t channels, double eps) : eps_(eps) {
  weight = register_parameter("weight", torch::ones({channels}));
  bias = register_parameter("bias", torch::zeros({channels}));
}

torch::Tensor LayerNorm2dImpl::forward(const torch::Tensor& x) {
  auto u = x.mean(1, true);
  auto s = (x - u).pow(2).mean(1, true);
  auto normed = (x - u) / torch::sqrt(s + eps_);
  return weight.view({1, -1, 1, 1}) * normed + bias.view({1, -1, 1, 1});
}

SamNeckImpl::SamNeckImpl(const config::SamEncoderConfig& cfg) {
  conv1 = register_module(
      "conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(cfg.hidden_size, cfg.output_channels, 1).bias(false)));
  layer_norm1 = register_module("layer_norm1", LayerNorm2d(cfg.output_channels, cfg.layer_norm_eps));
  conv2 = register_module(
      "conv2",
      torch::nn::Conv2d(torch::nn::Conv2dOptions(cfg.output_channels, cfg.output_channels, 3).padding(1).bias(false)));
  layer_norm2 = register_module("layer_norm2", LayerNorm2d(cfg.output_channels, cfg.layer_norm_eps));
}

torch::Tensor SamNeckImpl::forward(const torch::Tensor& x) {
  return layer_norm2(conv2(layer_norm1(conv1(x.permute({0, 3, 1, 2})))));
}

SamPatchEmbedImpl::SamPatchEmbedImpl(const config::SamEncoderConfig& cfg) {
  projection = register_module(
      "projection",
      torch::nn::Conv2d(torch::nn::Conv2dOptions(3, cfg.hidden_size, cfg.patch_size).stride(cfg.patch_size)));
}

torch::Tensor SamPatchEmbedImpl::forward(const torch::Tensor& pixels) {
  return projection(pixels).permute({0, 2, 3, 1});
}

SamEncoderImpl::SamEncoderImpl(const config::SamEncoderConfig& cfg) : image_size_(cfg.image_size) {
  const int64_t grid = cfg.image_size / cfg.patch_size;
  patch_embed = register_module("patch_embed", SamPatchEmbed(cfg));
  pos_embed = register_parameter("pos_embed", torch::zeros({1, grid, grid, cfg.hidden_size}));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < cfg.num_hidden_layers; ++i) {
    const bool global =
        std::find(cfg.global_attn_indexes.begin(), cfg.global_attn_indexes.end(), i) != cfg.global_attn_indexes.end();
    layers->push_back(SamLayer(cfg, global ? 0 : cfg.window_size));
  }
  neck = register_module("neck", SamNeck(cfg));
}

torch::Tensor SamEncoderImpl::forward(const torch::Tensor& pixels, std::vector<torch::Tensor>* hidden_states) {
  MSMEDCAP_CHECK(
      pixels.dim() == 4 && pixels.size(1) == 3 && pixels.size(2) == image_size_ && pixels.size(3) == image_size_,
      "sam_model: pixel values must be [B, 3, ", image_size_, ", ", image_size_,
      "] (longest side resized and zero-padded), got ", pixels.sizes());
  auto x = patch_embed(pixels.to(pos_embed.dtype())) + pos_embed;
  for (const auto& layer : *layers) {
    if (hidden_states != nullptr) hidden_states->push_back(x);
    x = layer->as<SamLayer>()->forward(x);
  }
  return neck(x);
}

SamModelImpl::SamModelImpl(const config::SamEncoderConfig& cfg) {
  vision_encoder = register_module("vision_encoder", SamEncoder(cfg));
}

}  // namespace msmedcap::models
