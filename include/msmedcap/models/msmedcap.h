#pragma once
/// The MSMedCap composite captioner. CLIP branch: vision_model -> qformer (query_tokens) ->
/// language_projection; SAM branch: sam_model.vision_encoder -> [B, C, h, w] -> tokens
/// (C channels of h*w features, or h*w spatial tokens of C) -> sam_qformer (sam_query_tokens)
/// -> sam_language_projection; decoder language_model reads [clip, sam, text] embeddings.
/// Either branch may be off: clip only = BLIP-2, sam only = SAM-BLIP-2, both = MSMedCap.
/// Names equal HF Blip2ForConditionalGeneration's, plus the sam_* branch.

#include <torch/nn/module.h>

#include <memory>
#include <utility>

#include "msmedcap/config/model_config.h"
#include "msmedcap/config/stage.h"
#include "msmedcap/models/decoder.h"
#include "msmedcap/models/layers.h"
#include "msmedcap/models/mask_decoder.h"
#include "msmedcap/models/qformer.h"
#include "msmedcap/models/sam_encoder.h"
#include "msmedcap/models/vit.h"

namespace msmedcap::models {

/// Everything a forward pass computes; undefined where a branch is off or labels absent.
struct CaptionerOutput {
  torch::Tensor vision_embeddings_output;       // [B, N, Dv]
  torch::Tensor vision_last_hidden_state;       // [B, N, Dv]
  torch::Tensor vision_pooler_output;           // [B, Dv]
  torch::Tensor qformer_last_hidden_state;      // [B, Nq, Dq]
  torch::Tensor language_projection;            // [B, Nq, E]
  torch::Tensor sam_image_embeddings;           // [B, C, h, w]
  torch::Tensor sam_qformer_last_hidden_state;  // [B, Nq, Dq]
  torch::Tensor sam_language_projection;        // [B, Nq, E]
  torch::Tensor logits;                         // [B, P + T, V]
  torch::Tensor loss;                           // () when labels were given
};

/// The visual prefix of a batch: embeddings [B, P, E] and their branch outputs.
struct VisualPrefix {
  torch::Tensor embeds;
  CaptionerOutput parts;
};

/// Image inputs of the two branches: pixels, or the frozen encoders' cached outputs
/// (`msmedcap extract-features`), which skip the encoders.
struct ImageInputs {
  torch::Tensor clip_pixels;     // [B, 3, S, S]
  torch::Tensor sam_pixels;      // [B, 3, 1024, 1024]
  torch::Tensor clip_features;   // [B, N, Dv]: VisionOutput.features (what the Q-Former reads)
  torch::Tensor sam_embeddings;  // [B, C, h, w]: the SAM encoder's output
};

/// The cross-attention probabilities of each branch's Q-Former (attention maps).
struct PrefixAttention {
  CrossAttentionProbs clip, sam;
};

/// The composite captioner.
class MsMedCapModelImpl : public torch::nn::Module {
 public:
  explicit MsMedCapModelImpl(const config::ModelConfig& cfg);

  /// pixel_values: [B, 3, S, S] for the CLIP branch; sam_pixel_values: [B, 3, 1024, 1024]
  /// (pixel_values are used for SAM when sam_pixel_values is undefined).
  VisualPrefix encode_images(const torch::Tensor& pixel_values, const torch::Tensor& sam_pixel_values);
  /// The same from pixels or cached encoder outputs (features win over pixels per branch). With
  /// `attention`, each branch's Q-Former cross-attention probabilities are recorded there.
  VisualPrefix encode(const ImageInputs& inputs, PrefixAttention* attention = nullptr);
  /// The frozen encoders alone: CLIP VisionOutput.features [B, N, Dv] and SAM embeddings
  /// [B, C, h, w] (what extract-features stores); undefined where a branch is off.
  torch::Tensor clip_features(const torch::Tensor& pixel_values);
  torch::Tensor sam_embeddings(const torch::Tensor& sam_pixel_values);
  /// What a branch's Q-Former cross-attends to, [B, M, Dc]: CLIP features, or the SAM
  /// embeddings viewed as tokens (model.sam_tokens), from pixels or cached outputs.
  torch::Tensor image_tokens(config::Branch branch, const ImageInputs& inputs);
  /// A branch's Q-Former (`qformer` or `sam_qformer`; a holder sharing the module) and its
  /// query tokens [1, Nq, Dq].
  QFormerModel qformer_of(config::Branch branch) const;
  const torch::Tensor& query_tokens_of(config::Branch branch) const;

  /// Full forward as HF Blip2ForConditionalGeneration: forward_inputs on the encoded images.
  CaptionerOutput forward(const torch::Tensor& pixel_values, const torch::Tensor& sam_pixel_values,
                          const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                          const torch::Tensor& labels = {});

  /// The text half of forward() on an already encoded prefix, as the config places the prefix
  /// (HF's contract): with model.image_token_index, input_ids [B, T] carry P placeholders that
  /// receive the prefix and the logits cover T positions; without, the prefix goes before the
  /// T tokens and the logits cover P + T. With labels ([B, T], -100 ignored) the loss is cross
  /// entropy of logits[:, -T:][:, :-1] against labels[:, 1:]. The prefix's branch outputs are
  /// copied into the result.
  CaptionerOutput forward_inputs(const VisualPrefix& prefix, const torch::Tensor& input_ids,
                                 const torch::Tensor& attention_mask, const torch::Tensor& labels = {});

  /// The decoder's input embeddings [B, L, E] and mask [B, L] for a prefix and token ids:
  /// placeholders replaced (placeholders = true; the config's image_token_index) or the prefix
  /// before the ids.
  std::pair<torch::Tensor, torch::Tensor> decoder_inputs(const VisualPrefix& prefix, const torch::Tensor& input_ids,
                                                         const torch::Tensor& attention_mask, bool placeholders);

  /// The prefix before text-only ids, whatever the config's placement (training and
  /// captioning build text without placeholders; the embeddings equal those of placeholders
  /// put before the text, as HF's processor puts them). Callers that also decode from the same
  /// images encode them once. logits_last: logits of the last n positions only (0 = all P + T;
  /// a loss over the text needs T, or T + 1 when the last query predicts the first token).
  CaptionerOutput forward_text(const VisualPrefix& prefix, const torch::Tensor& input_ids,
                               const torch::Tensor& attention_mask, const torch::Tensor& labels = {},
                               int64_t logits_last = 0);

  /// The decoder (registered as `language_model`).
  DecoderLM& decoder() { return *language_model; }
  const config::ModelConfig& config() const { return cfg_; }

  /// The stage-1 heads of one branch (present when its Q-Former has the text path):
  /// ITC projections to embed_dim, the ITM head and the learnable temperature.
  struct Stage1Heads {
    Linear vision_projection{nullptr}, text_projection{nullptr}, itm_head{nullptr};
    torch::Tensor temp;
  };
  /// The heads of the CLIP branch (`vision_projection`, `text_projection`, `itm_head`, `temp`)
  /// or the SAM branch (the same names with `sam_`); throws when the branch has none.
  const Stage1Heads& heads(config::Branch branch) const;

  /// The encoder-pretraining stages' heads (training/stage_plan.h), registered on the encoder's
  /// device: clip_pretrain's `clip_pretrain_projection` (the mean of the CLIP features [B, Dv]
  /// to embed_dim), sam_pretrain's `sam_pretrain_decoder` (a point-prompted mask decoder) and,
  /// with `mask_classes` > 0, `sam_pretrain_classes` (a per-pixel linear head, the SAM embeddings'
  /// channels to that many class logits) and, with `mask_places` > 0, `sam_pretrain_places` (the
  /// same to that many grid cells). Only those stages have them: a later stage that loads their
  /// checkpoints ignores these tensors (load.allow_unexpected).
  void add_encoder_pretrain_head(config::Branch branch, int64_t mask_classes = 0, int64_t mask_places = 0);
  Linear clip_pretrain_projection{nullptr};
  PointMaskDecoder sam_pretrain_decoder{nullptr};
  Linear sam_pretrain_classes{nullptr};
  Linear sam_pretrain_places{nullptr};

  VisionModel vision_model{nullptr};
  torch::Tensor query_tokens;
  QFormerModel qformer{nullptr};
  Linear language_projection{nullptr};
  SamModel sam_model{nullptr};
  torch::Tensor sam_query_tokens;
  QFormerModel sam_qformer{nullptr};
  Linear sam_language_projection{nullptr};
  std::shared_ptr<DecoderLM> language_model;

 private:
  CaptionerOutput decode(const VisualPrefix& prefix, const torch::Tensor& input_ids,
                         const torch::Tensor& attention_mask, const torch::Tensor& labels, int64_t logits_last,
                         bool placeholders);
  Stage1Heads make_heads(const std::string& prefix, int64_t width);
  torch::Tensor sam_tokens_of(const torch::Tensor& image) const;
  config::ModelConfig cfg_;
  Stage1Heads clip_heads_, sam_heads_;
  /// grid_sine_positions as [h, w, C] for the last grid, device and dtype seen (made once, not
  /// per step).
  mutable torch::Tensor sam_positions_;
};
TORCH_MODULE(MsMedCapModel);

/// model.sam_positions "sine": each cell of an h x w grid coded in `channels` values (a multiple
/// of 4), row-major [h*w, channels] float: sin and cos of u = (x + 0.5) / w at channels / 4
/// frequencies from pi to pi * max(h, w) / 2 (geometric), then the same of v = (y + 0.5) / h.
torch::Tensor grid_sine_positions(int64_t h, int64_t w, int64_t channels);

}  // namespace msmedcap::models
