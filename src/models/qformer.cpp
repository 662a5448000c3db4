#include "msmedcap/models/qformer.h"

#include <ATen/ATen.h>

#include <cmath>
#include <torch/nn/functional/activation.h>

#include "msmedcap/core/check.h"
#include "msmedcap/core/compat.h"

namespace msmedcap::models {

namespace F = torch::nn::functional;

namespace {
/// (1 - keep) * -10000, as a float mask of `like`'s dtype.
torch::Tensor additive(const torch::Tensor& keep, const torch::Tensor& like) {
  return (1.0 - keep.to(like.scalar_type())) * kQFormerMaskValue;
}
}  // namespace

/// Dropout sites: 8 per layer (self/cross attention probabilities and outputs, the two
/// feed-forward outputs), then the embeddings'.
enum : uint64_t { kSelfSite = 0, kCrossSite = 2, kQueryOutputSite = 4, kTextOutputSite = 5, kSitesPerLayer = 8 };
constexpr uint64_t kEmbeddingsSite = 0xE0000;

QFormerMultiHeadAttentionImpl::QFormerMultiHeadAttentionImpl(const config::QFormerConfig& cfg, bool is_cross,
                                                             DropoutSite probs_dropout)
    : probs_dropout_(std::move(probs_dropout)), num_heads_(cfg.num_attention_heads), is_cross_(is_cross) {
  const int64_t context_width = is_cross ? cfg.encoder_hidden_size : cfg.hidden_size;
  query = register_module("query", Linear(cfg.hidden_size, cfg.hidden_size));
  key = register_module("key", Linear(context_width, cfg.hidden_size));
  value = register_module("value", Linear(context_width, cfg.hidden_size));
}

torch::Tensor QFormerMultiHeadAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& context,
                                                     const torch::Tensor& mask, const AttentionKv& past,
                                                     AttentionKv* record, torch::Tensor* probs) {
  const int64_t b = x.size(0), n = x.size(1), d = query->weight.size(0), dh = d / num_heads_;
  auto q = query(x).view({b, n, num_heads_, dh}).transpose(1, 2);  // [B, H, N, Dh]
  torch::Tensor k = past.keys, v = past.values;
  if (context.defined()) {
    std::tie(k, v) = project_context(context);  // [B, H, M, Dh]
    if (record != nullptr) *record = {k, v};
    if (past.defined()) {
      k = torch::cat({past.keys, k}, 2);
      v = torch::cat({past.values, v}, 2);
    }
  }
  MSMEDCAP_CHECK(k.defined() && v.defined(), "qformer attention: no context and no keys/values");
  // Training with dropout: the math path, its probabilities dropped before they weigh v.
  const bool drop = is_training() && probs_dropout_.p > 0.0;
  auto out = drop ? core::attention_math(q, k, v, mask, false, c10::nullopt,
                                         [this](const at::Tensor& p) { return probs_dropout_(p, true); })
                  : core::scaled_dot_product_attention(q, k, v, mask);
  if (probs != nullptr) {
    auto scores = at::matmul(q, k.transpose(-1, -2)) / std::sqrt(static_cast<double>(dh));
    if (mask.defined()) scores = scores + mask;
    *probs = at::softmax(scores.to(at::kFloat), -1).mean(1).detach();
  }
  return out.transpose(1, 2).reshape({b, n, d});
}

std::pair<torch::Tensor, torch::Tensor> QFormerMultiHeadAttentionImpl::project_context(const torch::Tensor& context) {
  const int64_t b = context.size(0), m = context.size(1), d = key->weight.size(0), dh = d / num_heads_;
  return {key(context).view({b, m, num_heads_, dh}).transpose(1, 2),
          value(context).view({b, m, num_heads_, dh}).transpose(1, 2)};
}

QFormerImageKv QFormerImageKv::select(const torch::Tensor& rows) const {
  QFormerImageKv out;
  for (const auto& kv : layers)
    out.layers.push_back(kv.defined() ? AttentionKv{kv.keys.index_select(0, rows), kv.values.index_select(0, rows)}
                                      : kv);
  return out;
}

QFormerImageKv QFormerImageKv::cat(const std::vector<QFormerImageKv>& parts) {
  QFormerImageKv out;
  if (parts.empty()) return out;
  for (size_t l = 0; l < parts[0].layers.size(); ++l) {
    if (!parts[0].layers[l].defined()) {
      out.layers.emplace_back();
      continue;
    }
    std::vector<torch::Tensor> ks, vs;
    for (const auto& p : parts) {
      ks.push_back(p.layers[l].keys);
      vs.push_back(p.layers[l].values);
    }
    out.layers.push_back({torch::cat(ks, 0), torch::cat(vs, 0)});
  }
  return out;
}

QFormerOutputImpl::QFormerOutputImpl(int64_t in, int64_t out, double eps, DropoutSite dropout)
    : dropout_(std::move(dropout)) {
  dense = register_module("dense", Linear(in, out));
  LayerNorm = register_module("LayerNorm", models::LayerNorm(torch::nn::LayerNormOptions({out}).eps(eps)));
}

torch::Tensor QFormerOutputImpl::forward(const torch::Tensor& x, const torch::Tensor& residual) {
  return LayerNorm(dropout_(dense(x), is_training()) + residual);
}

QFormerAttentionImpl::QFormerAttentionImpl(const config::QFormerConfig& cfg, bool is_cross,
                                           const std::shared_ptr<DropoutKeys>& keys, uint64_t site) {
  attention = register_module(
      "attention", QFormerMultiHeadAttention(cfg, is_cross, DropoutSite{keys, cfg.attention_probs_dropout_prob, site}));
  output = register_module("output", QFormerOutput(cfg.hidden_size, cfg.hidden_size, cfg.layer_norm_eps,
                                                   DropoutSite{keys, cfg.hidden_dropout_prob, site + 1}));
}

QFormerIntermediateImpl::QFormerIntermediateImpl(int64_t hidden, int64_t intermediate) {
  dense = register_module("dense", Linear(hidden, intermediate));
}

torch::Tensor QFormerIntermediateImpl::forward(const torch::Tensor& x) { return F::gelu(dense(x)); }

QFormerLayerImpl::QFormerLayerImpl(const config::QFormerConfig& cfg, int64_t index,
                                   const std::shared_ptr<DropoutKeys>& keys) {
  const uint64_t site = static_cast<uint64_t>(index) * kSitesPerLayer;
  attention = register_module("attention", QFormerAttention(cfg, /*is_cross=*/false, keys, site + kSelfSite));
  if (index % cfg.cross_attention_frequency == 0) {
    crossattention =
        register_module("crossattention", QFormerAttention(cfg, /*is_cross=*/true, keys, site + kCrossSite));
  }
  if (cfg.text_path) {
    intermediate = register_module("intermediate", QFormerIntermediate(cfg.hidden_size, cfg.intermediate_size));
    output =
        register_module("output", QFormerOutput(cfg.intermediate_size, cfg.hidden_size, cfg.layer_norm_eps,
                                                DropoutSite{keys, cfg.hidden_dropout_prob, site + kTextOutputSite}));
  }
  intermediate_query =
      register_module("intermediate_query", QFormerIntermediate(cfg.hidden_size, cfg.intermediate_size));
  output_query = register_module("output_query",
                                 QFormerOutput(cfg.intermediate_size, cfg.hidden_size, cfg.layer_norm_eps,
                                               DropoutSite{keys, cfg.hidden_dropout_prob, site + kQueryOutputSite}));
}

torch::Tensor QFormerLayerImpl::forward(const torch::Tensor& x, const QFormerLayerCall& call) {
  const int64_t num_queries = call.num_queries;
  const auto a = attention->output(attention->attention(x, x, call.mask, call.past, call.record), x);
  const int64_t total = a.size(1);
  std::vector<torch::Tensor> parts;
  if (num_queries > 0) {
    auto q = a.slice(1, 0, num_queries);
    if (!crossattention.is_empty()) {
      MSMEDCAP_CHECK(call.image.defined(), "qformer: a cross-attention layer got no image keys/values");
      q = crossattention->output(crossattention->attention->forward(q, {}, {}, call.image, nullptr, call.cross_probs),
                                 q);
    }
    parts.push_back(output_query(intermediate_query(q), q));
  }
  if (total > num_queries) {
    MSMEDCAP_CHECK(!intermediate.is_empty(), "qformer: text tokens need the text path (qformer.text_path)");
    const auto t = a.slice(1, num_queries);
    parts.push_back(output(intermediate(t), t));
  }
  return parts.size() == 1 ? parts[0] : torch::cat(parts, 1);
}

QFormerEncoderImpl::QFormerEncoderImpl(const config::QFormerConfig& cfg, const std::shared_ptr<DropoutKeys>& keys) {
  layer = register_module("layer", torch::nn::ModuleList());
  for (int64_t i = 0; i < cfg.num_hidden_layers; ++i) layer->push_back(QFormerLayer(cfg, i, keys));
}

QFormerEmbeddingsImpl::QFormerEmbeddingsImpl(const config::QFormerConfig& cfg) {
  word_embeddings = register_module("word_embeddings", Embedding(cfg.vocab_size, cfg.hidden_size));
  position_embeddings = register_module("position_embeddings", Embedding(cfg.max_position_embeddings, cfg.hidden_size));
}

torch::Tensor QFormerEmbeddingsImpl::forward(const torch::Tensor& ids) {
  const int64_t t = ids.size(1);
  MSMEDCAP_CHECK(t <= position_embeddings->weight.size(0), "qformer: ", t, " text tokens exceed the ",
                 position_embeddings->weight.size(0), " positions");
  const auto positions = torch::arange(t, ids.options().dtype(torch::kLong));
  return word_embeddings(ids) + position_embeddings(positions).unsqueeze(0);
}

QFormerPredictionTransformImpl::QFormerPredictionTransformImpl(const config::QFormerConfig& cfg) {
  dense = register_module("dense", Linear(cfg.hidden_size, cfg.hidden_size));
  LayerNorm = register_module(
      "LayerNorm", models::LayerNorm(torch::nn::LayerNormOptions({cfg.hidden_size}).eps(cfg.layer_norm_eps)));
}

torch::Tensor QFormerPredictionTransformImpl::forward(const torch::Tensor& x) { return LayerNorm(F::gelu(dense(x))); }

QFormerPredictionsImpl::QFormerPredictionsImpl(const config::QFormerConfig& cfg) {
  transform = register_module("transform", QFormerPredictionTransform(cfg));
  bias = register_parameter("bias", torch::zeros({cfg.vocab_size}));
}

QFormerLmHeadImpl::QFormerLmHeadImpl(const config::QFormerConfig& cfg) {
  predictions = register_module("predictions", QFormerPredictions(cfg));
}

QFormerModelImpl::QFormerModelImpl(const config::QFormerConfig& cfg)
    : encoder_hidden_size_(cfg.encoder_hidden_size),
      dropout_keys_(std::make_shared<DropoutKeys>()),
      embeddings_dropout_{dropout_keys_, cfg.hidden_dropout_prob, kEmbeddingsSite} {
  layernorm = register_module(
      "layernorm", models::LayerNorm(torch::nn::LayerNormOptions({cfg.hidden_size}).eps(cfg.layer_norm_eps)));
  encoder = register_module("encoder", QFormerEncoder(cfg, dropout_keys_));
  if (cfg.text_path) {
    embeddings = register_module("embeddings", QFormerEmbeddings(cfg));
    cls = register_module("cls", QFormerLmHead(cfg));
  }
}

torch::Tensor QFormerModelImpl::embed(const torch::Tensor& x) {
  dropout_keys_->next_pass();
  return embeddings_dropout_(layernorm(x), is_training());
}

QFormerLayerImpl* QFormerModelImpl::layer(size_t i) const { return encoder->layer->ptr<QFormerLayerImpl>(i).get(); }

void QFormerModelImpl::check_layers(const QFormerImageKv& image) const {
  MSMEDCAP_CHECK(image.layers.size() == encoder->layer->size(), "qformer: image keys/values for ", image.layers.size(),
                 " layers, the model has ", encoder->layer->size());
}

void QFormerModelImpl::require_text_path(const char* what) const {
  MSMEDCAP_CHECK(has_text_path(), "qformer: ", what, " needs the text path (set qformer.text_path)");
}

torch::Tensor QFormerModelImpl::forward(const torch::Tensor& query_embeds, const torch::Tensor& image,
                                        QFormerCache* cache, CrossAttentionProbs* cross_probs) {
  return forward_kv(query_embeds, image_keys_values(image), cache, cross_probs);
}

QFormerImageKv QFormerModelImpl::image_keys_values(const torch::Tensor& image) {
  MSMEDCAP_CHECK(image.dim() == 3 && image.size(2) == encoder_hidden_size_, "qformer: image features must be [B, M, ",
                 encoder_hidden_size_, "], got ", image.sizes());
  QFormerImageKv kv;
  for (const auto& layer : *encoder->layer) {
    auto& cross = layer->as<QFormerLayer>()->crossattention;
    AttentionKv layer_kv;
    if (!cross.is_empty()) std::tie(layer_kv.keys, layer_kv.values) = cross->attention->project_context(image);
    kv.layers.push_back(layer_kv);
  }
  return kv;
}

torch::Tensor QFormerModelImpl::forward_kv(const torch::Tensor& query_embeds, const QFormerImageKv& image,
                                           QFormerCache* cache, CrossAttentionProbs* cross_probs) {
  check_layers(image);
  auto h = embed(query_embeds);
  if (cache != nullptr) cache->layers.assign(encoder->layer->size(), {});
  if (cross_probs != nullptr) cross_probs->clear();
  for (size_t i = 0; i < encoder->layer->size(); ++i) {
    QFormerLayerCall call;
    call.num_queries = query_embeds.size(1);
    call.record = cache ? &cache->layers[i] : nullptr;
    call.image = image.layers[i];
    torch::Tensor probs;
    if (cross_probs != nullptr && image.layers[i].defined()) call.cross_probs = &probs;
    h = layer(i)->forward(h, call);
    if (probs.defined()) cross_probs->push_back(probs);
  }
  return h;
}

torch::Tensor QFormerModelImpl::encode_text(const torch::Tensor& ids, const torch::Tensor& mask) {
  require_text_path("encode_text");
  auto h = embed(embeddings(ids));
  const auto bias = additive(mask, h).view({mask.size(0), 1, 1, mask.size(1)});  // [B, 1, 1, T]
  QFormerLayerCall call;
  call.mask = bias;
  for (size_t i = 0; i < encoder->layer->size(); ++i) h = layer(i)->forward(h, call);
  return h;
}

torch::Tensor QFormerModelImpl::forward_multimodal(const torch::Tensor& query_embeds, const torch::Tensor& ids,
                                                   const torch::Tensor& mask, const torch::Tensor& image) {
  return forward_multimodal(query_embeds, ids, mask, image_keys_values(image));
}

torch::Tensor QFormerModelImpl::forward_multimodal(const torch::Tensor& query_embeds, const torch::Tensor& ids,
                                                   const torch::Tensor& mask, const QFormerImageKv& image) {
  require_text_path("forward_multimodal");
  check_layers(image);
  const int64_t b = ids.size(0), nq = query_embeds.size(1);
  auto h = embed(torch::cat({query_embeds, embeddings(ids)}, 1));
  const auto keep = torch::cat({torch::ones({b, nq}, mask.options()), mask}, 1);
  const auto bias = additive(keep, h).view({b, 1, 1, keep.size(1)});  // [B, 1, 1, Nq + T]
  for (size_t i = 0; i < encoder->layer->size(); ++i) {
    QFormerLayerCall call;
    call.num_queries = nq;
    call.mask = bias;
    call.image = image.layers[i];
    h = layer(i)->forward(h, call);
  }
  return h;
}

torch::Tensor QFormerModelImpl::decode_text(const torch::Tensor& ids, const torch::Tensor& mask,
                                            const QFormerCache& cache) {
  require_text_path("decode_text");
  MSMEDCAP_CHECK(cache.layers.size() == encoder->layer->size() && cache.layers[0].defined(),
                 "qformer: decode_text needs the query keys/values of forward(..., &cache)");
  const int64_t b = ids.size(0), t = ids.size(1), nq = cache.layers[0].keys.size(2);
  auto h = embed(embeddings(ids));
  // Text row i sees every query and text columns j <= i that are not padding.
  const auto causal = torch::ones({t, t}, mask.options()).tril().unsqueeze(0) * mask.unsqueeze(1);  // [B, T, T]
  const auto keep = torch::cat({torch::ones({b, t, nq}, mask.options()), causal}, 2);               // [B, T, Nq+T]
  const auto bias = additive(keep, h).unsqueeze(1);
  for (size_t i = 0; i < encoder->layer->size(); ++i) {
    QFormerLayerCall call;
    call.mask = bias;
    call.past = cache.layers[i];
    h = layer(i)->forward(h, call);
  }
  return h;
}

torch::Tensor QFormerModelImpl::lm_logits(const torch::Tensor& text_hidden) {
  require_text_path("lm_logits");
  auto& p = cls->predictions;
  return torch::matmul(p->transform(text_hidden), embeddings->word_embeddings->weight.t()) + p->bias;
}

}  // namespace msmedcap::models
