// OPT, LLaMA and GPT-2 decoders. One file because the three share the cache, the mask and the
// causal-LM head; each class mirrors its HF counterpart's module tree so names match checkpoints.
#include "msmedcap/models/decoder.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/nn/functional/activation.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "msmedcap/core/check.h"
#include "msmedcap/core/compat.h"
#include "msmedcap/models/cached_attention.h"
#include "msmedcap/models/layers.h"

namespace msmedcap::models {

namespace F = torch::nn::functional;

std::pair<torch::Tensor, torch::Tensor> KvCache::append(size_t layer, const torch::Tensor& k, const torch::Tensor& v) {
  if (keys_.size() <= layer) {
    keys_.resize(layer + 1);
    values_.resize(layer + 1);
    lengths_.resize(layer + 1, 0);
  }
  auto& kb = keys_[layer];
  auto& vb = values_[layer];
  const int64_t len = lengths_[layer], t = k.size(2), total = len + t;
  if (c10::GradMode::is_enabled() && (k.requires_grad() || v.requires_grad())) {
    kb = len == 0 ? k : torch::cat({kb.narrow(2, 0, len), k}, 2);
    vb = len == 0 ? v : torch::cat({vb.narrow(2, 0, len), v}, 2);
    lengths_[layer] = total;
    return {kb, vb};
  }
  if (!kb.defined() || total > kb.size(2)) {
    const int64_t capacity = std::max({total, reserve_, kb.defined() ? 2 * kb.size(2) : int64_t{0}});
    auto grow = [&](torch::Tensor& buffer, const torch::Tensor& like) {
      auto fresh = torch::empty({like.size(0), like.size(1), capacity, like.size(3)}, like.options());
      if (len > 0) fresh.narrow(2, 0, len).copy_(buffer.narrow(2, 0, len));
      buffer = fresh;
    };
    grow(kb, k);
    grow(vb, v);
  }
  kb.narrow(2, len, t).copy_(k);
  vb.narrow(2, len, t).copy_(v);
  lengths_[layer] = total;
  return {kb.narrow(2, 0, total), vb.narrow(2, 0, total)};
}

void KvCache::select(const torch::Tensor& rows) {
  for (auto& k : keys_) k = k.index_select(0, rows);
  for (auto& v : values_) v = v.index_select(0, rows);
}

void KvCache::repeat_interleave(int64_t times) {
  for (auto& k : keys_) k = k.repeat_interleave(times, 0);
  for (auto& v : values_) v = v.repeat_interleave(times, 0);
}

torch::Tensor causal_padding_bias(const torch::Tensor& mask, int64_t new_tokens, c10::ScalarType dtype) {
  const int64_t total = mask.size(1);
  const int64_t past = total - new_tokens;
  auto causal = torch::ones({new_tokens, total}, mask.options().dtype(torch::kBool)).tril(past);
  auto keep = causal.unsqueeze(0) & mask.to(torch::kBool).unsqueeze(1);  // [B, T, past+T]
  // The dtype's most negative value, as HF's torch.finfo(dtype).min (float's would overflow bf16).
  const double lowest = dtype == torch::kDouble     ? std::numeric_limits<double>::lowest()
                        : dtype == torch::kBFloat16 ? static_cast<double>(std::numeric_limits<c10::BFloat16>::lowest())
                        : dtype == torch::kHalf     ? static_cast<double>(std::numeric_limits<c10::Half>::lowest())
                                                    : std::numeric_limits<float>::lowest();
  return torch::zeros(keep.sizes(), mask.options().dtype(dtype)).masked_fill(keep.logical_not(), lowest).unsqueeze(1);
}

namespace {

torch::Tensor default_positions(const torch::Tensor& embeds, int64_t past) {
  const int64_t t = embeds.size(1);
  return torch::arange(past, past + t, embeds.options().dtype(torch::kLong)).unsqueeze(0).expand({embeds.size(0), t});
}

torch::Tensor check_mask(const torch::Tensor& embeds, const torch::Tensor& mask, int64_t past) {
  if (!mask.defined()) {
    return torch::ones({embeds.size(0), past + embeds.size(1)}, embeds.options().dtype(torch::kLong));
  }
  MSMEDCAP_CHECK(mask.dim() == 2 && mask.size(0) == embeds.size(0) && mask.size(1) == past + embeds.size(1),
                 "language_model: attention_mask must be [B, past + T] = [", embeds.size(0), ", ",
                 past + embeds.size(1), "], got ", mask.sizes());
  return mask;
}

/// A module with projections that a packed model multiplies as one product (FusedLinear).
struct FusesProjections {
  virtual ~FusesProjections() = default;
  virtual void pack_fused(WeightFormat format) = 0;
};

/// softmax(q k^T / sqrt(Dh) + bias) v, where k and v may have fewer heads than q (grouped
/// queries: query head h reads head h / (H / Hkv)). A decoding step on the CPU (a few queries
/// against the cache) takes cached_attention's loop; everything else repeats the heads as needed
/// and takes core::scaled_dot_product_attention.
torch::Tensor attend(const torch::Tensor& q, torch::Tensor k, torch::Tensor v, const torch::Tensor& bias) {
  if (cached_attention_applies(q, k, v, bias)) return cached_attention(q, k, v, bias);
  if (k.size(1) != q.size(1)) {
    k = k.repeat_interleave(q.size(1) / k.size(1), 1);
    v = v.repeat_interleave(q.size(1) / v.size(1), 1);
  }
  return core::scaled_dot_product_attention(q, k, v, bias);
}

/// What the three families share: the LM head (tied to the token embedding unless configured
/// otherwise) and the per-call mask, positions and attention bias.
class CausalLmBase : public DecoderLM {
 public:
  Linear lm_head{nullptr};

 protected:
  explicit CausalLmBase(const config::DecoderConfig& cfg) : cfg_(cfg) {}
  /// Registers `lm_head` (width -> vocab, no bias) unless the head is tied.
  void add_lm_head(int64_t width) {
    if (!cfg_.tie_word_embeddings) {
      lm_head = register_module("lm_head", Linear(width, cfg_.vocab_size, /*bias=*/false));
    }
  }
  /// Logits of final hidden states; `embedding` is the token table a tied head reuses.
  torch::Tensor vocab_logits(const torch::Tensor& h, const torch::Tensor& embedding) {
    if (!lm_head.is_empty()) return lm_head(h);
    const bool packed = tied_head_.defined() && (!at::GradMode::is_enabled() || !h.requires_grad());
    return packed ? packed_linear(h, tied_head_) : torch::matmul(h, embedding.t());
  }
  /// The token embedding table [V, E] (what a tied LM head multiplies with).
  virtual const torch::Tensor& token_table() const = 0;

 public:
  void pack_weights(WeightFormat format) override {
    for (const auto& m : modules(/*include_self=*/false)) {
      if (auto* linear = m->as<LinearImpl>()) linear->pack(format);
      if (auto* conv = m->as<Conv1DImpl>()) conv->pack(format);
    }
    // Fused projections replace the parts' packed copies. A float32 "packed" weight is the
    // weight itself, so a fused one would be a second copy (a sixth of the medium decoder's
    // weights; by arithmetic 2.5 GB for OPT-2.7b): float32 keeps the separate products.
    if (format != WeightFormat::kFloat32) {
      for (const auto& m : modules(/*include_self=*/false)) {
        if (auto* fuses = dynamic_cast<FusesProjections*>(m.get())) fuses->pack_fused(format);
      }
    }
    if (lm_head.is_empty()) tied_head_ = pack_weight(token_table(), format);
    format_ = format;
  }
  std::optional<WeightFormat> packed_format() const override { return format_; }

 protected:
  /// The last n positions of hidden states [B, T, D] (all when n is 0 or at least T): what the
  /// final norm and the LM head need to see.
  static torch::Tensor last_positions(const torch::Tensor& h, int64_t n) {
    return n <= 0 || n >= h.size(1) ? h : h.narrow(1, h.size(1) - n, n);
  }
  struct Step {
    torch::Tensor mask;       // [B, past + T]
    torch::Tensor positions;  // [B, T] (undefined for OPT: derived from the mask)
    torch::Tensor bias;       // [B, 1, T, past + T]
    int64_t past = 0;
  };
  Step prepare(const torch::Tensor& embeds, const torch::Tensor& mask, const torch::Tensor& positions,
               const KvCache* cache) const {
    Step s;
    s.past = cache != nullptr ? cache->length() : 0;
    s.mask = check_mask(embeds, mask, s.past);
    s.positions = positions.defined() || positions_from_mask() ? positions : default_positions(embeds, s.past);
    s.bias = causal_padding_bias(s.mask, embeds.size(1), embeds.scalar_type());
    return s;
  }
  config::DecoderConfig cfg_;

 private:
  PackedWeight tied_head_;  // the token table packed for a tied head (pack_weights)
  std::optional<WeightFormat> format_;
};

// ---------------------------------------------------------------- OPT
struct OptAttentionImpl : torch::nn::Module, FusesProjections {
  OptAttentionImpl(int64_t hidden, int64_t heads) : heads(heads) {
    q_proj = register_module("q_proj", Linear(hidden, hidden));
    k_proj = register_module("k_proj", Linear(hidden, hidden));
    v_proj = register_module("v_proj", Linear(hidden, hidden));
    out_proj = register_module("out_proj", Linear(hidden, hidden));
  }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& bias, KvCache* cache, size_t layer) {
    const int64_t b = x.size(0), t = x.size(1), d = x.size(2), dh = d / heads;
    const auto qkv_out = qkv.applies(x) ? qkv.forward(x) : std::vector<torch::Tensor>{q_proj(x), k_proj(x), v_proj(x)};
    auto q = qkv_out[0].view({b, t, heads, dh}).transpose(1, 2);
    auto k = qkv_out[1].view({b, t, heads, dh}).transpose(1, 2);
    auto v = qkv_out[2].view({b, t, heads, dh}).transpose(1, 2);
    if (cache != nullptr) std::tie(k, v) = cache->append(layer, k, v);
    auto out = attend(q, k, v, bias);
    return out_proj(out.transpose(1, 2).reshape({b, t, d}));
  }
  void pack_fused(WeightFormat format) override { qkv.pack({q_proj.get(), k_proj.get(), v_proj.get()}, format); }
  int64_t heads;
  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, out_proj{nullptr};
  FusedLinear qkv;  // q, k and v as one product once packed
};
TORCH_MODULE(OptAttention);

struct OptLayerImpl : torch::nn::Module {
  explicit OptLayerImpl(const config::DecoderConfig& cfg) : pre_ln(cfg.do_layer_norm_before) {
    const auto ln = torch::nn::LayerNormOptions({cfg.hidden_size}).eps(cfg.layer_norm_eps);
    self_attn = register_module("self_attn", OptAttention(cfg.hidden_size, cfg.num_attention_heads));
    self_attn_layer_norm = register_module("self_attn_layer_norm", LayerNorm(ln));
    fc1 = register_module("fc1", Linear(cfg.hidden_size, cfg.intermediate_size));
    fc2 = register_module("fc2", Linear(cfg.intermediate_size, cfg.hidden_size));
    final_layer_norm = register_module("final_layer_norm", LayerNorm(ln));
  }
  torch::Tensor forward(torch::Tensor h, const torch::Tensor& bias, KvCache* cache, size_t layer) {
    auto residual = h;
    if (pre_ln) h = self_attn_layer_norm(h);
    h = residual + self_attn(h, bias, cache, layer);
    if (!pre_ln) h = self_attn_layer_norm(h);
    residual = h;
    if (pre_ln) h = final_layer_norm(h);
    h = residual + fc2(torch::relu(fc1(h)));
    if (!pre_ln) h = final_layer_norm(h);
    return h;
  }
  bool pre_ln;
  OptAttention self_attn{nullptr};
  LayerNorm self_attn_layer_norm{nullptr}, final_layer_norm{nullptr};
  Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(OptLayer);

struct OptDecoderImpl : torch::nn::Module {
  explicit OptDecoderImpl(const config::DecoderConfig& cfg) {
    embed_tokens = register_module("embed_tokens", Embedding(cfg.vocab_size, cfg.embed_dim()));
    embed_positions = register_module("embed_positions", Embedding(cfg.max_position_embeddings + 2, cfg.hidden_size));
    if (cfg.embed_dim() != cfg.hidden_size) {
      project_in = register_module("project_in", Linear(cfg.embed_dim(), cfg.hidden_size, /*bias=*/false));
      project_out = register_module("project_out", Linear(cfg.hidden_size, cfg.embed_dim(), /*bias=*/false));
    }
    if (cfg.do_layer_norm_before) {
      final_layer_norm = register_module(
          "final_layer_norm", LayerNorm(torch::nn::LayerNormOptions({cfg.hidden_size}).eps(cfg.layer_norm_eps)));
    }
    layers = register_module("layers", torch::nn::ModuleList());
    for (int64_t i = 0; i < cfg.num_hidden_layers; ++i) layers->push_back(OptLayer(cfg));
  }
  Embedding embed_tokens{nullptr}, embed_positions{nullptr};
  Linear project_in{nullptr}, project_out{nullptr};
  LayerNorm final_layer_norm{nullptr};
  torch::nn::ModuleList layers{nullptr};
};
TORCH_MODULE(OptDecoder);

struct OptModelImpl : torch::nn::Module {
  explicit OptModelImpl(const config::DecoderConfig& cfg) { decoder = register_module("decoder", OptDecoder(cfg)); }
  OptDecoder decoder{nullptr};
};
TORCH_MODULE(OptModel);

class OptForCausalLM : public CausalLmBase {
 public:
  explicit OptForCausalLM(const config::DecoderConfig& cfg) : CausalLmBase(cfg) {
    model = register_module("model", OptModel(cfg));
    add_lm_head(cfg.embed_dim());
  }
  torch::Tensor embed(const torch::Tensor& ids) override { return model->decoder->embed_tokens(ids); }
  const torch::Tensor& token_table() const override { return model->decoder->embed_tokens->weight; }
  int64_t input_width() const override { return cfg_.embed_dim(); }
  bool positions_from_mask() const override { return true; }
  torch::Tensor forward(const torch::Tensor& embeds, const torch::Tensor& mask_in, const torch::Tensor& positions,
                        KvCache* cache, int64_t logits_last) override {
    auto& d = model->decoder;
    const auto step = prepare(embeds, mask_in, positions, cache);
    torch::Tensor pos = step.positions;
    if (!pos.defined()) {
      // HF OPTLearnedPositionalEmbedding: cumsum over the mask, pads at -1, offset 2.
      const auto m = step.mask.to(torch::kLong);
      pos = (torch::cumsum(m, 1) * m - 1).slice(1, step.past);
    }
    auto h = embeds;
    if (!d->project_in.is_empty()) h = d->project_in(h);
    h = h + d->embed_positions(pos + 2);
    size_t i = 0;
    for (const auto& layer : *d->layers) h = layer->as<OptLayer>()->forward(h, step.bias, cache, i++);
    h = last_positions(h, logits_last);
    if (!d->final_layer_norm.is_empty()) h = d->final_layer_norm(h);
    if (!d->project_out.is_empty()) h = d->project_out(h);
    return vocab_logits(h, d->embed_tokens->weight);
  }
  OptModel model{nullptr};
};

// ---------------------------------------------------------------- LLaMA
struct RmsNormImpl : torch::nn::Module {
  RmsNormImpl(int64_t dim, double eps) : eps(eps) { weight = register_parameter("weight", torch::ones({dim})); }
  torch::Tensor forward(const torch::Tensor& x) {
    auto f = x.to(torch::kFloat);
    f = f * torch::rsqrt(f.pow(2).mean(-1, true) + eps);
    return weight * f.to(x.scalar_type());
  }
  double eps;
  torch::Tensor weight;
};
TORCH_MODULE(RmsNorm);

torch::Tensor rotate_half(const torch::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return torch::cat({-x.slice(-1, half), x.slice(-1, 0, half)}, -1);
}

struct LlamaAttentionImpl : torch::nn::Module, FusesProjections {
  explicit LlamaAttentionImpl(const config::DecoderConfig& cfg)
      : heads(cfg.num_attention_heads),
        kv_heads(cfg.kv_heads()),
        head_dim(cfg.hidden_size / cfg.num_attention_heads),
        theta(cfg.rope_theta) {
    auto linear = [](int64_t in, int64_t out) { return Linear(in, out, /*bias=*/false); };
    q_proj = register_module("q_proj", linear(cfg.hidden_size, heads * head_dim));
    k_proj = register_module("k_proj", linear(cfg.hidden_size, kv_heads * head_dim));
    v_proj = register_module("v_proj", linear(cfg.hidden_size, kv_heads * head_dim));
    o_proj = register_module("o_proj", linear(heads * head_dim, cfg.hidden_size));
  }
  /// cos, sin: the rotary tables of this call's positions, [B, 1, T, Dh] (rotary()).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& bias, KvCache* cache, size_t layer) {
    const int64_t b = x.size(0), t = x.size(1);
    const auto qkv_out = qkv.applies(x) ? qkv.forward(x) : std::vector<torch::Tensor>{q_proj(x), k_proj(x), v_proj(x)};
    auto q = qkv_out[0].view({b, t, heads, head_dim}).transpose(1, 2);
    auto k = qkv_out[1].view({b, t, kv_heads, head_dim}).transpose(1, 2);
    auto v = qkv_out[2].view({b, t, kv_heads, head_dim}).transpose(1, 2);
    q = q * cos + rotate_half(q) * sin;
    k = k * cos + rotate_half(k) * sin;
    if (cache != nullptr) std::tie(k, v) = cache->append(layer, k, v);
    auto out = attend(q, k, v, bias);  // grouped-query attention: each K/V head serves heads/kv_heads
    return o_proj(out.transpose(1, 2).reshape({b, t, heads * head_dim}));
  }
  /// Rotary embedding tables (rotate-half convention of HF checkpoints, computed in float32) for
  /// positions [B, T]: cos and sin, [B, 1, T, Dh] in `dtype`. The same for every layer, so the
  /// model computes them once per call.
  std::pair<torch::Tensor, torch::Tensor> rotary(const torch::Tensor& positions, c10::ScalarType dtype) const {
    auto inv_freq =
        1.0 / torch::pow(theta, torch::arange(0, head_dim, 2, positions.options().dtype(torch::kFloat)) / head_dim);
    auto freqs = positions.to(torch::kFloat).unsqueeze(-1) * inv_freq;  // [B, T, Dh/2]
    auto emb = torch::cat({freqs, freqs}, -1).unsqueeze(1);             // [B, 1, T, Dh]
    return {emb.cos().to(dtype), emb.sin().to(dtype)};
  }
  void pack_fused(WeightFormat format) override { qkv.pack({q_proj.get(), k_proj.get(), v_proj.get()}, format); }
  int64_t heads, kv_heads, head_dim;
  double theta;
  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  FusedLinear qkv;  // q, k and v as one product once packed
};
TORCH_MODULE(LlamaAttention);

struct LlamaMlpImpl : torch::nn::Module, FusesProjections {
  explicit LlamaMlpImpl(const config::DecoderConfig& cfg) {
    auto linear = [](int64_t in, int64_t out) { return Linear(in, out, /*bias=*/false); };
    gate_proj = register_module("gate_proj", linear(cfg.hidden_size, cfg.intermediate_size));
    up_proj = register_module("up_proj", linear(cfg.hidden_size, cfg.intermediate_size));
    down_proj = register_module("down_proj", linear(cfg.intermediate_size, cfg.hidden_size));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    if (gate_up.applies(x)) {
      const auto parts = gate_up.forward(x);
      return down_proj(torch::silu(parts[0]) * parts[1]);
    }
    return down_proj(torch::silu(gate_proj(x)) * up_proj(x));
  }
  void pack_fused(WeightFormat format) override { gate_up.pack({gate_proj.get(), up_proj.get()}, format); }
  Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
  FusedLinear gate_up;  // gate and up as one product once packed
};
TORCH_MODULE(LlamaMlp);

struct LlamaLayerImpl : torch::nn::Module {
  explicit LlamaLayerImpl(const config::DecoderConfig& cfg) {
    self_attn = register_module("self_attn", LlamaAttention(cfg));
    mlp = register_module("mlp", LlamaMlp(cfg));
    input_layernorm = register_module("input_layernorm", RmsNorm(cfg.hidden_size, cfg.layer_norm_eps));
    post_attention_layernorm =
        register_module("post_attention_layernorm", RmsNorm(cfg.hidden_size, cfg.layer_norm_eps));
  }
  torch::Tensor forward(torch::Tensor h, const torch::Tensor& cos, const torch::Tensor& sin, const torch::Tensor& bias,
                        KvCache* cache, size_t layer) {
    h = h + self_attn(input_layernorm(h), cos, sin, bias, cache, layer);
    return h + mlp(post_attention_layernorm(h));
  }
  LlamaAttention self_attn{nullptr};
  LlamaMlp mlp{nullptr};
  RmsNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
};
TORCH_MODULE(LlamaLayer);

struct LlamaModelImpl : torch::nn::Module {
  explicit LlamaModelImpl(const config::DecoderConfig& cfg) {
    embed_tokens = register_module("embed_tokens", Embedding(cfg.vocab_size, cfg.hidden_size));
    layers = register_module("layers", torch::nn::ModuleList());
    for (int64_t i = 0; i < cfg.num_hidden_layers; ++i) layers->push_back(LlamaLayer(cfg));
    norm = register_module("norm", RmsNorm(cfg.hidden_size, cfg.layer_norm_eps));
  }
  Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RmsNorm norm{nullptr};
};
TORCH_MODULE(LlamaModel);

class LlamaForCausalLM : public CausalLmBase {
 public:
  explicit LlamaForCausalLM(const config::DecoderConfig& cfg) : CausalLmBase(cfg) {
    model = register_module("model", LlamaModel(cfg));
    add_lm_head(cfg.hidden_size);
  }
  torch::Tensor embed(const torch::Tensor& ids) override { return model->embed_tokens(ids); }
  const torch::Tensor& token_table() const override { return model->embed_tokens->weight; }
  int64_t input_width() const override { return cfg_.hidden_size; }
  torch::Tensor forward(const torch::Tensor& embeds, const torch::Tensor& mask_in, const torch::Tensor& positions,
                        KvCache* cache, int64_t logits_last) override {
    const auto step = prepare(embeds, mask_in, positions, cache);
    auto h = embeds;
    size_t i = 0;
    torch::Tensor cos, sin;
    for (const auto& layer : *model->layers) {
      auto* l = layer->as<LlamaLayer>();
      if (!cos.defined())
        std::tie(cos, sin) = l->self_attn->rotary(step.positions.to(embeds.device()), embeds.scalar_type());
      h = l->forward(h, cos, sin, step.bias, cache, i++);
    }
    return vocab_logits(model->norm(last_positions(h, logits_last)), model->embed_tokens->weight);
  }
  LlamaModel model{nullptr};
};

// ---------------------------------------------------------------- GPT-2

struct Gpt2AttentionImpl : torch::nn::Module {
  Gpt2AttentionImpl(int64_t hidden, int64_t heads) : heads(heads) {
    c_attn = register_module("c_attn", Conv1D(hidden, 3 * hidden));
    c_proj = register_module("c_proj", Conv1D(hidden, hidden));
  }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& bias, KvCache* cache, size_t layer) {
    const int64_t b = x.size(0), t = x.size(1), d = x.size(2), dh = d / heads;
    auto qkv = c_attn(x).split(d, -1);
    auto q = qkv[0].view({b, t, heads, dh}).transpose(1, 2);
    auto k = qkv[1].view({b, t, heads, dh}).transpose(1, 2);
    auto v = qkv[2].view({b, t, heads, dh}).transpose(1, 2);
    if (cache != nullptr) std::tie(k, v) = cache->append(layer, k, v);
    auto out = attend(q, k, v, bias);
    return c_proj(out.transpose(1, 2).reshape({b, t, d}));
  }
  int64_t heads;
  Conv1D c_attn{nullptr}, c_proj{nullptr};
};
TORCH_MODULE(Gpt2Attention);

struct Gpt2MlpImpl : torch::nn::Module {
  Gpt2MlpImpl(int64_t hidden, int64_t inner) {
    c_fc = register_module("c_fc", Conv1D(hidden, inner));
    c_proj = register_module("c_proj", Conv1D(inner, hidden));
  }
  torch::Tensor forward(const torch::Tensor& x) { return c_proj(torch::gelu(c_fc(x), "tanh")); }
  Conv1D c_fc{nullptr}, c_proj{nullptr};
};
TORCH_MODULE(Gpt2Mlp);

struct Gpt2BlockImpl : torch::nn::Module {
  explicit Gpt2BlockImpl(const config::DecoderConfig& cfg) {
    const auto ln = torch::nn::LayerNormOptions({cfg.hidden_size}).eps(cfg.layer_norm_eps);
    ln_1 = register_module("ln_1", LayerNorm(ln));
    attn = register_module("attn", Gpt2Attention(cfg.hidden_size, cfg.num_attention_heads));
    ln_2 = register_module("ln_2", LayerNorm(ln));
    mlp = register_module("mlp", Gpt2Mlp(cfg.hidden_size, cfg.intermediate_size));
  }
  torch::Tensor forward(torch::Tensor h, const torch::Tensor& bias, KvCache* cache, size_t layer) {
    h = h + attn(ln_1(h), bias, cache, layer);
    return h + mlp(ln_2(h));
  }
  LayerNorm ln_1{nullptr}, ln_2{nullptr};
  Gpt2Attention attn{nullptr};
  Gpt2Mlp mlp{nullptr};
};
TORCH_MODULE(Gpt2Block);

struct Gpt2ModelImpl : torch::nn::Module {
  explicit Gpt2ModelImpl(const config::DecoderConfig& cfg) {
    wte = register_module("wte", Embedding(cfg.vocab_size, cfg.hidden_size));
    wpe = register_module("wpe", Embedding(cfg.max_position_embeddings, cfg.hidden_size));
    h = register_module("h", torch::nn::ModuleList());
    for (int64_t i = 0; i < cfg.num_hidden_layers; ++i) h->push_back(Gpt2Block(cfg));
    ln_f = register_module("ln_f", LayerNorm(torch::nn::LayerNormOptions({cfg.hidden_size}).eps(cfg.layer_norm_eps)));
  }
  Embedding wte{nullptr}, wpe{nullptr};
  torch::nn::ModuleList h{nullptr};
  LayerNorm ln_f{nullptr};
};
TORCH_MODULE(Gpt2Model);

class Gpt2LMHeadModel : public CausalLmBase {
 public:
  explicit Gpt2LMHeadModel(const config::DecoderConfig& cfg) : CausalLmBase(cfg) {
    transformer = register_module("transformer", Gpt2Model(cfg));
    add_lm_head(cfg.hidden_size);
  }
  torch::Tensor embed(const torch::Tensor& ids) override { return transformer->wte(ids); }
  const torch::Tensor& token_table() const override { return transformer->wte->weight; }
  int64_t input_width() const override { return cfg_.hidden_size; }
  torch::Tensor forward(const torch::Tensor& embeds, const torch::Tensor& mask_in, const torch::Tensor& positions,
                        KvCache* cache, int64_t logits_last) override {
    const auto step = prepare(embeds, mask_in, positions, cache);
    auto h = embeds + transformer->wpe(step.positions);
    size_t i = 0;
    for (const auto& block : *transformer->h) h = block->as<Gpt2Block>()->forward(h, step.bias, cache, i++);
    return vocab_logits(transformer->ln_f(last_positions(h, logits_last)), transformer->wte->weight);
  }
  Gpt2Model transformer{nullptr};
};

}  // namespace

std::shared_ptr<DecoderLM> build_decoder(const config::DecoderConfig& cfg) {
  if (cfg.arch == "opt") return std::make_shared<OptForCausalLM>(cfg);
  if (cfg.arch == "llama") return std::make_shared<LlamaForCausalLM>(cfg);
  if (cfg.arch == "gpt2") return std::make_shared<Gpt2LMHeadModel>(cfg);
  MSMEDCAP_FAIL("model.decoder.arch: unknown decoder '", cfg.arch, "' (expected opt, llama or gpt2)");
}

}  // namespace msmedcap::models
