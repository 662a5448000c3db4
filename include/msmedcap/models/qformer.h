#pragma once
/// The Q-Former; mirrors transformers Blip2QFormerModel (query path) and LAVIS Qformer.bert +
/// Qformer.cls (stage-1 text path): post-LN BERT layers whose learned query tokens self-attend,
/// cross-attend to image features every `cross_attention_frequency` layers and pass through
/// their own feed-forward (intermediate_query / output_query); text tokens use the text
/// feed-forward (intermediate / output). Attention modes (docs/MODEL.md, "Q-Former attention
/// modes"):
///   queries only      forward()               stage 2, captioning, ITC image side
///   text only         encode_text()           ITC text side (unimodal, padding-masked)
///   bidirectional     forward_multimodal()    ITM: queries and text see each other
///   multimodal causal decode_text()           ITG: text sees every query (keys/values cached
///                                             from the query pass, not recomputed) and the
///                                             text before it
/// Registered names equal HF's under `qformer.` (and `sam_qformer.` for the SAM branch); the
/// text path adds `embeddings.{word,position}_embeddings`, `encoder.layer.N.{intermediate,
/// output}` and `cls.predictions.{transform.dense, transform.LayerNorm, bias}` (decoder weight
/// tied to the word embeddings).

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/normalization.h>

#include <vector>

#include "msmedcap/config/model_config.h"
#include "msmedcap/models/dropout.h"
#include "msmedcap/models/layers.h"

namespace msmedcap::models {

/// Keys and values of one attention, split into heads: [B, H, M, Dh] each.
struct AttentionKv {
  torch::Tensor keys, values;
  bool defined() const { return keys.defined(); }
};

/// Self-attention keys and values of the query tokens, one per layer.
struct QFormerCache {
  std::vector<AttentionKv> layers;
};

/// The image side of every cross-attention layer: keys and values of the image tokens, one per
/// layer (undefined in layers without cross-attention). They depend on the image alone, so
/// passes that read the same images (stage 1's ITC and ITM, whose rows repeat each image three
/// times) compute them once (QFormerModel::image_keys_values) and gather rows.
struct QFormerImageKv {
  std::vector<AttentionKv> layers;
  /// The given batch rows, in that order (gradients flow back to the shared rows).
  QFormerImageKv select(const torch::Tensor& rows) const;
  /// Batch rows of several, concatenated in order.
  static QFormerImageKv cat(const std::vector<QFormerImageKv>& parts);
};

/// Cross-attention probabilities averaged over heads, [B, Nq, M], one per cross-attention layer
/// in layer order: what attention maps are made of (inference/captioner.h).
using CrossAttentionProbs = std::vector<torch::Tensor>;

/// Multi-head attention with separate query/key/value (Blip2QFormerMultiHeadAttention); while
/// training, `probs_dropout` drops attention probabilities.
class QFormerMultiHeadAttentionImpl : public torch::nn::Module {
 public:
  QFormerMultiHeadAttentionImpl(const config::QFormerConfig& cfg, bool is_cross, DropoutSite probs_dropout = {});
  /// x: [B, N, D]; context: [B, M, Dc] (x itself for self attention), projected to keys and
  /// values here, or undefined to attend to `past` alone (e.g. precomputed image keys/values);
  /// mask: additive, broadcastable to [B, H, N, past + M]; past: keys/values put before this
  /// call's. `record` receives this call's keys/values, `probs` the attention probabilities
  /// averaged over heads ([B, N, past + M], float32, detached). Returns [B, N, D].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context, const torch::Tensor& mask = {},
                        const AttentionKv& past = {}, AttentionKv* record = nullptr, torch::Tensor* probs = nullptr);
  Linear query{nullptr}, key{nullptr}, value{nullptr};
  /// key(context) and value(context) split into heads: [B, H, M, Dh] each.
  std::pair<torch::Tensor, torch::Tensor> project_context(const torch::Tensor& context);

  bool is_cross() const { return is_cross_; }

 private:
  DropoutSite probs_dropout_;
  int64_t num_heads_;
  bool is_cross_ = false;
};
TORCH_MODULE(QFormerMultiHeadAttention);

/// dense -> dropout -> LayerNorm(x + input) (Blip2QFormerSelfOutput / Blip2QFormerOutput).
class QFormerOutputImpl : public torch::nn::Module {
 public:
  QFormerOutputImpl(int64_t in, int64_t out, double eps, DropoutSite dropout = {});
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& residual);
  Linear dense{nullptr};
  models::LayerNorm LayerNorm{nullptr};

 private:
  DropoutSite dropout_;
};
TORCH_MODULE(QFormerOutput);

/// attention + output (Blip2QFormerAttention), registered as `attention` and `output`.
class QFormerAttentionImpl : public torch::nn::Module {
 public:
  /// Dropout sites `site` (probabilities) and `site + 1` (output) of `keys`.
  QFormerAttentionImpl(const config::QFormerConfig& cfg, bool is_cross, const std::shared_ptr<DropoutKeys>& keys = {},
                       uint64_t site = 0);
  QFormerMultiHeadAttention attention{nullptr};
  QFormerOutput output{nullptr};
};
TORCH_MODULE(QFormerAttention);

/// dense -> GELU (Blip2QFormerIntermediate).
class QFormerIntermediateImpl : public torch::nn::Module {
 public:
  QFormerIntermediateImpl(int64_t hidden, int64_t intermediate);
  torch::Tensor forward(const torch::Tensor& x);
  Linear dense{nullptr};
};
TORCH_MODULE(QFormerIntermediate);

/// What one layer call reads and records besides its hidden states.
struct QFormerLayerCall {
  int64_t num_queries = 0;        ///< the first rows of x are queries: they cross-attend, with their own feed-forward
  torch::Tensor mask;             ///< additive self-attention mask
  AttentionKv past;               ///< self-attention keys/values before this call's (ITG: the cached queries')
  AttentionKv* record = nullptr;  ///< receives this call's self-attention keys/values
  AttentionKv image;              ///< this layer's image keys/values (QFormerImageKv; cross-attention layers)
  torch::Tensor* cross_probs = nullptr;  ///< receives the cross-attention probabilities (CrossAttentionProbs)
};

/// One post-LN layer (Blip2QFormerLayer / LAVIS BertLayer).
class QFormerLayerImpl : public torch::nn::Module {
 public:
  QFormerLayerImpl(const config::QFormerConfig& cfg, int64_t index, const std::shared_ptr<DropoutKeys>& keys = {});
  /// x: [B, Nq + T, D] -> [B, Nq + T, D].
  torch::Tensor forward(const torch::Tensor& x, const QFormerLayerCall& call);
  QFormerAttention attention{nullptr};
  QFormerAttention crossattention{nullptr};  // null on layers without cross-attention
  QFormerIntermediate intermediate_query{nullptr};
  QFormerOutput output_query{nullptr};
  QFormerIntermediate intermediate{nullptr};  // text path only
  QFormerOutput output{nullptr};              // text path only
};
TORCH_MODULE(QFormerLayer);

/// `encoder.layer.N`.
class QFormerEncoderImpl : public torch::nn::Module {
 public:
  QFormerEncoderImpl(const config::QFormerConfig& cfg, const std::shared_ptr<DropoutKeys>& keys);
  torch::nn::ModuleList layer{nullptr};
};
TORCH_MODULE(QFormerEncoder);

/// Word and position embeddings of the text path.
class QFormerEmbeddingsImpl : public torch::nn::Module {
 public:
  explicit QFormerEmbeddingsImpl(const config::QFormerConfig& cfg);
  /// ids: [B, T] -> [B, T, D] (positions 0..T-1; not yet layer-normed).
  torch::Tensor forward(const torch::Tensor& ids);
  Embedding word_embeddings{nullptr}, position_embeddings{nullptr};
};
TORCH_MODULE(QFormerEmbeddings);

/// cls.predictions.transform: dense -> GELU -> LayerNorm.
class QFormerPredictionTransformImpl : public torch::nn::Module {
 public:
  explicit QFormerPredictionTransformImpl(const config::QFormerConfig& cfg);
  torch::Tensor forward(const torch::Tensor& x);
  Linear dense{nullptr};
  models::LayerNorm LayerNorm{nullptr};
};
TORCH_MODULE(QFormerPredictionTransform);

/// cls.predictions: transform, then the word-embedding matrix (tied) plus `bias`.
class QFormerPredictionsImpl : public torch::nn::Module {
 public:
  explicit QFormerPredictionsImpl(const config::QFormerConfig& cfg);
  QFormerPredictionTransform transform{nullptr};
  torch::Tensor bias;
};
TORCH_MODULE(QFormerPredictions);

/// `cls` (LAVIS BertOnlyMLMHead).
class QFormerLmHeadImpl : public torch::nn::Module {
 public:
  explicit QFormerLmHeadImpl(const config::QFormerConfig& cfg);
  QFormerPredictions predictions{nullptr};
};
TORCH_MODULE(QFormerLmHead);

/// Blip2QFormerModel (+ the LAVIS text path when cfg.text_path).
class QFormerModelImpl : public torch::nn::Module {
 public:
  explicit QFormerModelImpl(const config::QFormerConfig& cfg);
  /// Queries only. query_embeds: [B, Nq, D]; image: [B, M, Dc] -> [B, Nq, D]. With `cache`,
  /// records every layer's query keys/values for decode_text(); with `cross_probs`, every
  /// cross-attention layer's probabilities.
  torch::Tensor forward(const torch::Tensor& query_embeds, const torch::Tensor& image, QFormerCache* cache = nullptr,
                        CrossAttentionProbs* cross_probs = nullptr);
  /// The same from the image keys/values of image_keys_values().
  torch::Tensor forward_kv(const torch::Tensor& query_embeds, const QFormerImageKv& image,
                           QFormerCache* cache = nullptr, CrossAttentionProbs* cross_probs = nullptr);
  /// Every cross-attention layer's keys/values of image [B, M, Dc].
  QFormerImageKv image_keys_values(const torch::Tensor& image);
  /// Text only, bidirectional over non-padding tokens. ids, mask: [B, T] -> [B, T, D].
  torch::Tensor encode_text(const torch::Tensor& ids, const torch::Tensor& mask);
  /// Queries and text attending to each other (ITM). -> [B, Nq + T, D].
  torch::Tensor forward_multimodal(const torch::Tensor& query_embeds, const torch::Tensor& ids,
                                   const torch::Tensor& mask, const torch::Tensor& image);
  torch::Tensor forward_multimodal(const torch::Tensor& query_embeds, const torch::Tensor& ids,
                                   const torch::Tensor& mask, const QFormerImageKv& image);
  /// Text with causal self-attention that also sees every query through `cache` (ITG).
  /// -> [B, T, D].
  torch::Tensor decode_text(const torch::Tensor& ids, const torch::Tensor& mask, const QFormerCache& cache);
  /// ITG language-model logits of text hidden states: [B, T, D] -> [B, T, V].
  torch::Tensor lm_logits(const torch::Tensor& text_hidden);
  bool has_text_path() const { return !embeddings.is_empty(); }
  /// The keys of this model's dropout masks (DropoutKeyScope installs them for a training step).
  const std::shared_ptr<DropoutKeys>& dropout_keys() const { return dropout_keys_; }

  models::LayerNorm layernorm{nullptr};
  QFormerEncoder encoder{nullptr};
  QFormerEmbeddings embeddings{nullptr};  // text path only
  QFormerLmHead cls{nullptr};             // text path only

 private:
  void require_text_path(const char* what) const;
  /// Layer i of the encoder.
  QFormerLayerImpl* layer(size_t i) const;
  void check_layers(const QFormerImageKv& image) const;
  /// Starts a top-level pass: layernorm(x), then the embeddings' dropout.
  torch::Tensor embed(const torch::Tensor& x);
  int64_t encoder_hidden_size_;
  std::shared_ptr<DropoutKeys> dropout_keys_;
  DropoutSite embeddings_dropout_;
};
TORCH_MODULE(QFormerModel);

/// LAVIS's additive mask value for masked positions ((1 - mask) * -10000).
constexpr double kQFormerMaskValue = -10000.0;

}  // namespace msmedcap::models
