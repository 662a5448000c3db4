#pragma once
/// Model configs: one struct per component, mirroring the HuggingFace config fields they come
/// from (Blip2VisionConfig, Blip2QFormerConfig, SamVisionConfig, OPT/Llama/GPT-2 configs), plus
/// the MSMedCap composite that switches either branch on or off.

#include <cstdint>
#include <string>
#include <vector>

#include "msmedcap/config/fields.h"

namespace msmedcap::config {

/// CLIP-branch ViT: "blip2" = HF Blip2VisionModel (EVA style, fused qkv, exact GELU,
/// post_layernorm on every token); "clip" = HF CLIPVisionModel (q/k/v/out_proj, QuickGELU,
/// pre_layrnorm; its post_layernorm, applied to every token, feeds the Q-Former).
struct VisionConfig {
  int64_t hidden_size = 1408;        ///< token width
  int64_t intermediate_size = 6144;  ///< MLP width
  int64_t num_hidden_layers = 39;
  int64_t num_attention_heads = 16;
  int64_t image_size = 224;
  int64_t patch_size = 14;
  double layer_norm_eps = 1e-6;  ///< blocks and post_layernorm (HF uses one eps)
  std::string type = "blip2";    ///< blip2 (EVA ViT-g style) or clip (HF CLIPVisionModel)

  template <class V>
  void visit(V& v) {
    v("hidden_size", hidden_size, "token width");
    v("intermediate_size", intermediate_size, "MLP width");
    v("num_hidden_layers", num_hidden_layers, "transformer blocks");
    v("num_attention_heads", num_attention_heads, "attention heads");
    v("image_size", image_size, "input side in pixels");
    v("patch_size", patch_size, "patch side in pixels");
    v("layer_norm_eps", layer_norm_eps, "LayerNorm epsilon (blocks and post_layernorm)");
    v("type", type, "encoder family: blip2 (EVA ViT-g, HF Blip2VisionModel) or clip (HF CLIPVisionModel)");
  }
  void validate(const std::string& path) const;
};

/// SAM ViT image encoder (HF SamVisionEncoder): windowed + global attention, decomposed
/// relative positions, neck to output_channels.
struct SamEncoderConfig {
  int64_t hidden_size = 768;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t mlp_dim = 3072;
  int64_t image_size = 1024;
  int64_t patch_size = 16;
  int64_t window_size = 14;
  std::vector<int64_t> global_attn_indexes = {2, 5, 8, 11};
  int64_t output_channels = 256;
  double layer_norm_eps = 1e-6;
  bool use_rel_pos = true;

  template <class V>
  void visit(V& v) {
    v("hidden_size", hidden_size, "token width (768 ViT-B, 1024 ViT-L, 1280 ViT-H)");
    v("num_hidden_layers", num_hidden_layers, "transformer blocks");
    v("num_attention_heads", num_attention_heads, "attention heads");
    v("mlp_dim", mlp_dim, "MLP width");
    v("image_size", image_size, "input side in pixels (1024)");
    v("patch_size", patch_size, "patch side in pixels");
    v("window_size", window_size, "local attention window (tokens per side)");
    v("global_attn_indexes", global_attn_indexes, "blocks with global attention");
    v("output_channels", output_channels, "neck output channels");
    v("layer_norm_eps", layer_norm_eps, "LayerNorm / LayerNorm2d epsilon");
    v("use_rel_pos", use_rel_pos, "decomposed relative positions in attention");
  }
  void validate(const std::string& path) const;
};

/// Q-Former (HF Blip2QFormerModel): post-LN BERT with cross-attention every N layers.
struct QFormerConfig {
  int64_t hidden_size = 768;
  int64_t intermediate_size = 3072;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t cross_attention_frequency = 2;
  int64_t encoder_hidden_size = 1408;  ///< width of the image features it reads
  int64_t num_query_tokens = 32;
  int64_t vocab_size = 30523;  ///< BERT vocabulary + [DEC] (stage-1 text path)
  int64_t max_position_embeddings = 512;
  double layer_norm_eps = 1e-12;
  /// Dropout while training (HF Blip2QFormerConfig / BERT: 0.1 each; off in eval): after the
  /// embeddings' LayerNorm and each attention and feed-forward dense (hidden), and on the
  /// attention probabilities (attention). Masks are keyed (models/dropout.h).
  double hidden_dropout_prob = 0.1;
  double attention_probs_dropout_prob = 0.1;
  /// Stage-1 text path: word/position embeddings, the text feed-forward of every layer and the
  /// ITG language-model head (LAVIS Qformer.bert + Qformer.cls); stage 2 and captioning drop it.
  bool text_path = false;

  template <class V>
  void visit(V& v) {
    v("hidden_size", hidden_size, "token width");
    v("intermediate_size", intermediate_size, "feed-forward width");
    v("num_hidden_layers", num_hidden_layers, "BERT layers");
    v("num_attention_heads", num_attention_heads, "attention heads");
    v("cross_attention_frequency", cross_attention_frequency, "cross-attention in layers i with i % frequency == 0");
    v("encoder_hidden_size", encoder_hidden_size, "width of the image features");
    v("num_query_tokens", num_query_tokens, "learned query tokens");
    v("vocab_size", vocab_size, "text vocabulary (BERT + [DEC])");
    v("max_position_embeddings", max_position_embeddings, "text positions");
    v("layer_norm_eps", layer_norm_eps, "LayerNorm epsilon");
    v("hidden_dropout_prob", hidden_dropout_prob, "dropout of hidden states while training, in [0, 1)");
    v("attention_probs_dropout_prob", attention_probs_dropout_prob,
      "dropout of attention probabilities while training, in [0, 1)");
    v("text_path", text_path, "stage-1 text path: embeddings, text feed-forward, ITG head");
  }
  void validate(const std::string& path) const;
};

/// Decoder LLM: OPT, LLaMA family or GPT-2, with HF's field meanings.
struct DecoderConfig {
  std::string arch = "opt";  ///< opt | llama | gpt2
  int64_t vocab_size = 50272;
  int64_t hidden_size = 2560;
  int64_t num_hidden_layers = 32;
  int64_t num_attention_heads = 32;
  int64_t num_key_value_heads = 0;    ///< LLaMA GQA; 0 = num_attention_heads
  int64_t intermediate_size = 10240;  ///< OPT ffn_dim, LLaMA intermediate, GPT-2 n_inner
  int64_t max_position_embeddings = 2048;
  int64_t word_embed_proj_dim = 0;   ///< OPT project_in/out width; 0 = hidden_size
  bool do_layer_norm_before = true;  ///< OPT pre-LN (false for opt-350m)
  bool tie_word_embeddings = true;
  double layer_norm_eps = 1e-5;  ///< LayerNorm / RMSNorm epsilon
  double rope_theta = 10000.0;
  int64_t bos_token_id = 2;
  int64_t eos_token_id = 2;
  int64_t pad_token_id = 1;

  template <class V>
  void visit(V& v) {
    v("arch", arch, "decoder family: opt, llama or gpt2");
    v("vocab_size", vocab_size, "vocabulary size");
    v("hidden_size", hidden_size, "token width");
    v("num_hidden_layers", num_hidden_layers, "decoder layers");
    v("num_attention_heads", num_attention_heads, "attention heads");
    v("num_key_value_heads", num_key_value_heads, "key/value heads (GQA); 0 = attention heads");
    v("intermediate_size", intermediate_size, "feed-forward width");
    v("max_position_embeddings", max_position_embeddings, "positions");
    v("word_embed_proj_dim", word_embed_proj_dim, "OPT embedding width; 0 = hidden_size");
    v("do_layer_norm_before", do_layer_norm_before, "OPT pre-LN (false for opt-350m)");
    v("tie_word_embeddings", tie_word_embeddings, "LM head shares the token embedding");
    v("layer_norm_eps", layer_norm_eps, "LayerNorm / RMSNorm epsilon");
    v("rope_theta", rope_theta, "LLaMA rotary base");
    v("bos_token_id", bos_token_id, "begin-of-sequence id");
    v("eos_token_id", eos_token_id, "end-of-sequence id");
    v("pad_token_id", pad_token_id, "padding id");
  }
  void validate(const std::string& path) const;
  int64_t kv_heads() const { return num_key_value_heads > 0 ? num_key_value_heads : num_attention_heads; }
  int64_t embed_dim() const { return word_embed_proj_dim > 0 ? word_embed_proj_dim : hidden_size; }
};

/// The MSMedCap composite: CLIP branch (vision + qformer + language_projection), SAM branch
/// (sam encoder + sam_qformer + sam_language_projection) and the decoder; prefix order
/// [clip, sam, text]. clip only = BLIP-2, sam only = SAM-BLIP-2, both = MSMedCap.
struct ModelConfig {
  bool use_clip = true;
  bool use_sam = true;
  /// How SAM features reach their Q-Former: "channels" (C tokens of h*w features, MSMedCap)
  /// or "spatial" (h*w tokens of C features).
  std::string sam_tokens = "channels";
  /// With spatial tokens: "none" (the features alone, whose position the Q-Former cannot see:
  /// its cross-attention is blind to the tokens' order) or "sine" (a fixed 2-D sinusoidal code of
  /// each token's grid position added to its features; models::grid_sine_positions).
  std::string sam_positions = "none";
  /// Width of the ITC projections (vision_projection / text_projection) of a branch whose
  /// Q-Former has the text path.
  int64_t embed_dim = 256;
  /// Where the visual prefix enters the decoder. -1 (legacy BLIP-2): the projected queries are
  /// concatenated before the text embeddings. A token id (today's HF BLIP-2 config.json,
  /// `image_token_index`): input_ids carry one such placeholder per prefix position (the HF
  /// processor puts them before BOS) and the model writes the prefix into those positions.
  int64_t image_token_index = -1;
  VisionConfig vision;
  QFormerConfig qformer;
  SamEncoderConfig sam;
  /// Reads SAM ViT-B's neck as channels: (1024 / 16)^2 = 4096 features wide.
  QFormerConfig sam_qformer = [] {
    QFormerConfig q;
    q.encoder_hidden_size = 4096;
    return q;
  }();
  DecoderConfig decoder;

  template <class V>
  void visit(V& v) {
    v("use_clip", use_clip, "CLIP branch on (vision_model, qformer, language_projection)");
    v("use_sam", use_sam, "SAM branch on (sam_model, sam_qformer, sam_language_projection)");
    v("sam_tokens", sam_tokens, "SAM features as 'channels' (MSMedCap) or 'spatial' tokens");
    v("sam_positions", sam_positions, "spatial SAM tokens: 'none' or 'sine' (their grid position added)");
    v("embed_dim", embed_dim, "ITC projection width (stage-1 heads)");
    v("image_token_index", image_token_index,
      "-1: prefix concatenated before the text; else the placeholder id the prefix replaces in input_ids");
    v("vision", vision, "CLIP-branch ViT");
    v("qformer", qformer, "CLIP-branch Q-Former");
    v("sam", sam, "SAM image encoder");
    v("sam_qformer", sam_qformer, "SAM-branch Q-Former");
    v("decoder", decoder, "decoder LLM");
  }
  void validate() const;
  /// Visual prefix length: the query tokens of every branch that is on.
  int64_t prefix_tokens() const {
    return (use_clip ? qformer.num_query_tokens : 0) + (use_sam ? sam_qformer.num_query_tokens : 0);
  }
};

}  // namespace msmedcap::config
