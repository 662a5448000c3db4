#include "msmedcap/config/model_config.h"

namespace msmedcap::config {

namespace {
void positive(int64_t value, const std::string& path) { MSMEDCAP_CHECK(value > 0, path, ": must be > 0, got ", value); }
void divisible(int64_t width, int64_t heads, const std::string& path) {
  MSMEDCAP_CHECK(width % heads == 0, path, ": hidden_size ", width, " is not divisible by num_attention_heads ", heads);
}
}  // namespace

void VisionConfig::validate(const std::string& path) const {
  for (const auto& [v, name] : {std::pair{hidden_size, "hidden_size"},
                                {intermediate_size, "intermediate_size"},
                                {num_hidden_layers, "num_hidden_layers"},
                                {num_attention_heads, "num_attention_heads"},
                                {image_size, "image_size"},
                                {patch_size, "patch_size"}}) {
    positive(v, path + "." + name);
  }
  divisible(hidden_size, num_attention_heads, path);
  MSMEDCAP_CHECK(type == "blip2" || type == "clip", path, ".type: expected blip2 or clip, got '", type, "'");
  MSMEDCAP_CHECK(image_size % patch_size == 0, path, ".image_size: ", image_size, " is not a multiple of patch_size ",
                 patch_size);
}

void SamEncoderConfig::validate(const std::string& path) const {
  for (const auto& [v, name] : {std::pair{hidden_size, "hidden_size"},
                                {mlp_dim, "mlp_dim"},
                                {num_hidden_layers, "num_hidden_layers"},
                                {num_attention_heads, "num_attention_heads"},
                                {image_size, "image_size"},
                                {patch_size, "patch_size"},
                                {window_size, "window_size"},
                                {output_channels, "output_channels"}}) {
    positive(v, path + "." + name);
  }
  divisible(hidden_size, num_attention_heads, path);
  for (const auto i : global_attn_indexes) {
    MSMEDCAP_CHECK(i >= 0 && i < num_hidden_layers, path, ".global_attn_indexes: ", i, " is not a layer index (0..",
                   num_hidden_layers - 1, ")");
  }
}

void QFormerConfig::validate(const std::string& path) const {
  for (const auto& [v, name] : {std::pair{hidden_size, "hidden_size"},
                                {intermediate_size, "intermediate_size"},
                                {num_hidden_layers, "num_hidden_layers"},
                                {num_attention_heads, "num_attention_heads"},
                                {cross_attention_frequency, "cross_attention_frequency"},
                                {encoder_hidden_size, "encoder_hidden_size"},
                                {num_query_tokens, "num_query_tokens"}}) {
    positive(v, path + "." + name);
  }
  divisible(hidden_size, num_attention_heads, path);
  for (const auto& [p, name] : {std::pair{hidden_dropout_prob, "hidden_dropout_prob"},
                                {attention_probs_dropout_prob, "attention_probs_dropout_prob"}}) {
    MSMEDCAP_CHECK(p >= 0.0 && p < 1.0, path, ".", name, ": expected a probability in [0, 1), got ", p);
  }
}

void DecoderConfig::validate(const std::string& path) const {
  MSMEDCAP_CHECK(arch == "opt" || arch == "llama" || arch == "gpt2", path, ".arch: expected opt, llama or gpt2, got '",
                 arch, "'");
  for (const auto& [v, name] : {std::pair{vocab_size, "vocab_size"},
                                {hidden_size, "hidden_size"},
                                {num_hidden_layers, "num_hidden_layers"},
                                {num_attention_heads, "num_attention_heads"},
                                {intermediate_size, "intermediate_size"},
                                {max_position_embeddings, "max_position_embeddings"}}) {
    positive(v, path + "." + name);
  }
  divisible(hidden_size, num_attention_heads, path);
  MSMEDCAP_CHECK(num_attention_heads % kv_heads() == 0, path, ".num_key_value_heads: ", kv_heads(),
                 " does not divide num_attention_heads ", num_attention_heads);
}

void ModelConfig::validate() const {
  MSMEDCAP_CHECK(use_clip || use_sam, "model: at least one of use_clip and use_sam must be true");
  MSMEDCAP_CHECK(embed_dim > 0, "model.embed_dim: must be > 0, got ", embed_dim);
  MSMEDCAP_CHECK(sam_tokens == "channels" || sam_tokens == "spatial",
                 "model.sam_tokens: expected channels or spatial, got '", sam_tokens, "'");
  MSMEDCAP_CHECK(sam_positions == "none" || sam_positions == "sine",
                 "model.sam_positions: expected none or sine, got '", sam_positions, "'");
  MSMEDCAP_CHECK(sam_positions == "none" || (sam_tokens == "spatial" && sam.output_channels % 4 == 0),
                 "model.sam_positions sine: needs sam_tokens spatial and sam.output_channels divisible by 4 (got ",
                 sam_tokens, " and ", sam.output_channels, ")");
  if (use_clip) {
    vision.validate("model.vision");
    qformer.validate("model.qformer");
  }
  if (use_sam) {
    sam.validate("model.sam");
    sam_qformer.validate("model.sam_qformer");
  }
  // Each Q-Former's cross-attention reads its encoder's features: the CLIP ViT's tokens, or SAM's
  // neck output as tokens (channels: one per output channel, grid x grid wide; spatial: one per
  // grid cell, output_channels wide).
  if (use_clip)
    MSMEDCAP_CHECK(qformer.encoder_hidden_size == vision.hidden_size,
                   "model.qformer.encoder_hidden_size: ", qformer.encoder_hidden_size,
                   " does not match model.vision.hidden_size (", vision.hidden_size,
                   "), the width of the features it reads");
  if (use_sam) {
    const int64_t grid = sam.image_size / sam.patch_size;
    const int64_t width = sam_tokens == "channels" ? grid * grid : sam.output_channels;
    MSMEDCAP_CHECK(sam_qformer.encoder_hidden_size == width,
                   "model.sam_qformer.encoder_hidden_size: ", sam_qformer.encoder_hidden_size,
                   " does not match the SAM features' width ", width, " (",
                   sam_tokens == "channels" ? "model.sam_tokens channels: (sam.image_size / sam.patch_size)^2"
                                            : "model.sam_tokens spatial: sam.output_channels",
                   ")");
  }
  decoder.validate("model.decoder");
  MSMEDCAP_CHECK(image_token_index == -1 || (image_token_index >= 0 && image_token_index < decoder.vocab_size),
                 "model.image_token_index: expected -1 or an id below decoder.vocab_size (", decoder.vocab_size,
                 "), got ", image_token_index);
}

}  // namespace msmedcap::config
