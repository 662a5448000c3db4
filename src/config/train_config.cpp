#include "msmedcap/config/train_config.h"

#include <cmath>

namespace msmedcap::config {

void OptimizerConfig::validate(const std::string& path) const {
  MSMEDCAP_CHECK(lr > 0 && std::isfinite(lr), path, ".lr: must be > 0, got ", lr);
  MSMEDCAP_CHECK(min_lr >= 0 && min_lr <= lr, path, ".min_lr: must be in [0, lr], got ", min_lr);
  MSMEDCAP_CHECK(warmup_lr >= 0 && warmup_lr <= lr, path, ".warmup_lr: must be in [0, lr], got ", warmup_lr);
  MSMEDCAP_CHECK(warmup_steps >= 0, path, ".warmup_steps: must be >= 0, got ", warmup_steps);
  MSMEDCAP_CHECK(weight_decay >= 0, path, ".weight_decay: must be >= 0, got ", weight_decay);
  MSMEDCAP_CHECK(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1, path, ".beta1/beta2: must be in [0, 1)");
  MSMEDCAP_CHECK(eps > 0, path, ".eps: must be > 0, got ", eps);
  MSMEDCAP_CHECK(schedule == "lavis" || schedule == "cosine", path, ".schedule: expected lavis or cosine, got '",
                 schedule, "'");
}

namespace {

/// A turn's bit in losses::turn_square's code (0 for an unknown name).
int turn_bit(const std::string& name) {
  if (name == "left_right") return 1;
  if (name == "up_down") return 2;
  if (name == "transpose") return 4;
  return 0;
}

}  // namespace

int StageConfig::mask_turn_bits() const {
  if (!mask_symmetries) return 0;
  int bits = 0;
  for (const auto& name : mask_turns) bits |= turn_bit(name);
  return bits;
}

void StageConfig::validate(const std::string& path) const {
  const Stage stage = parse_stage(name, path + ".name");
  MSMEDCAP_CHECK(!train_vision || stage == Stage::kCaption, path,
                 ".train_vision: only the caption stage trains the vision encoder");
  MSMEDCAP_CHECK(!train_llm || stage == Stage::kCaption, path,
                 ".train_llm: only the caption stage trains the LLM (decoder_lm trains it alone)");
  MSMEDCAP_CHECK(!mask_symmetries || stage == Stage::kSamPretrain, path,
                 ".mask_symmetries: only sam_pretrain turns its images with their masks (stage is ", name, ")");
  MSMEDCAP_CHECK(mask_symmetries || mask_turns == StageConfig{}.mask_turns, path,
                 ".mask_turns: needs mask_symmetries true (without it no image is turned)");
  MSMEDCAP_CHECK(mask_symmetries_until > 0 && mask_symmetries_until <= 1, path,
                 ".mask_symmetries_until: must be in (0, 1], got ", mask_symmetries_until);
  MSMEDCAP_CHECK(mask_symmetries || mask_symmetries_until == 1, path,
                 ".mask_symmetries_until: needs mask_symmetries true (without it no image is turned)");
  MSMEDCAP_CHECK(!mask_turns.empty(), path, ".mask_turns: name at least one of left_right, up_down, transpose");
  for (size_t i = 0; i < mask_turns.size(); ++i) {
    MSMEDCAP_CHECK(turn_bit(mask_turns[i]) != 0, path, ".mask_turns[", i, "]: expected left_right, up_down or ",
                   "transpose, got '", mask_turns[i], "'");
    for (size_t j = 0; j < i; ++j)
      MSMEDCAP_CHECK(mask_turns[j] != mask_turns[i], path, ".mask_turns: '", mask_turns[i], "' named twice");
  }
  if (!mask_classes.enabled()) {
    // Without a rule file there is no class head: its other keys would be ignored.
    const MaskClassesConfig defaults;
    MSMEDCAP_CHECK(
        mask_classes.attribute == defaults.attribute && mask_classes.also.empty() &&
            mask_classes.first_id == defaults.first_id && mask_classes.weight == defaults.weight &&
            mask_classes.places.empty() && mask_classes.place_weight == defaults.place_weight,
        path,
        ".mask_classes: attribute, also, first_id, weight, places and place_weight need mask_classes.rules (a rule "
        "file)");
    return;
  }
  MSMEDCAP_CHECK(stage == Stage::kSamPretrain, path,
                 ".mask_classes.rules: only sam_pretrain has a class head (stage is ", name, ")");
  MSMEDCAP_CHECK(mask_classes.first_id >= 1 && mask_classes.first_id <= 255, path,
                 ".mask_classes.first_id: must be 1..255 (mask ids are 8-bit, 0 is background), got ",
                 mask_classes.first_id);
  MSMEDCAP_CHECK(mask_classes.weight > 0 && std::isfinite(mask_classes.weight), path,
                 ".mask_classes.weight: must be > 0, got ", mask_classes.weight);
  const auto& places = mask_classes.places;
  MSMEDCAP_CHECK(places.empty() || (places.size() == 2 && places[0] >= 1 && places[0] <= 16 && places[1] >= 1 &&
                                    places[1] <= 16 && places[0] * places[1] >= 2),
                 path, ".mask_classes.places: expected [columns, rows], each 1..16 and at least 2 cells");
  const double pw = mask_classes.place_weight;
  MSMEDCAP_CHECK(pw == MaskClassesConfig().place_weight || (pw > 0 && std::isfinite(pw)), path,
                 ".mask_classes.place_weight: must be > 0, or -1 for the class weight, got ", pw);
  MSMEDCAP_CHECK(pw == MaskClassesConfig().place_weight || !places.empty(), path,
                 ".mask_classes.place_weight: needs mask_classes.places (there is no place head)");
}

void TrainConfig::validate(const std::string& path) const {
  stage.validate(path + ".stage");
  optimizer.validate(path + ".optimizer");
  MSMEDCAP_CHECK(epochs >= 1, path, ".epochs: must be >= 1, got ", epochs);
  MSMEDCAP_CHECK(max_steps >= 0, path, ".max_steps: must be >= 0, got ", max_steps);
  MSMEDCAP_CHECK(val_caption_images >= -1, path, ".val_caption_images: must be -1 (all), 0 (off) or a count, got ",
                 val_caption_images);
  MSMEDCAP_CHECK(val_caption_images == 0 || stage.id() == Stage::kStage2 || stage.id() == Stage::kCaption, path,
                 ".val_caption_images: only stage2 and caption write captions (stage is ", stage.name, ")");
  MSMEDCAP_CHECK(word_dropout >= 0 && word_dropout < 1, path, ".word_dropout: must be in [0, 1), got ", word_dropout);
  MSMEDCAP_CHECK(mirror_unscored_words.empty() || stage.id() == Stage::kStage2 || stage.id() == Stage::kCaption, path,
                 ".mirror_unscored_words: only stage2 and caption read captions after a visual prefix (stage is ",
                 stage.name, ")");
  for (const auto& w : mirror_unscored_words)
    MSMEDCAP_CHECK(!w.empty() && w.find_first_of(" \t\n") == std::string::npos, path,
                   ".mirror_unscored_words: expected single words, got '", w, "'");
  MSMEDCAP_CHECK(word_dropout == 0 || stage.id() == Stage::kStage2 || stage.id() == Stage::kCaption, path,
                 ".word_dropout: only stage2 and caption read captions after a visual prefix (stage is ", stage.name,
                 ")");
  MSMEDCAP_CHECK(grad_accum >= 1, path, ".grad_accum: must be >= 1, got ", grad_accum);
  MSMEDCAP_CHECK(clip_grad_norm >= 0 && std::isfinite(clip_grad_norm), path, ".clip_grad_norm: must be >= 0, got ",
                 clip_grad_norm);
  MSMEDCAP_CHECK(precision == "fp32" || precision == "bf16" || precision == "fp16", path,
                 ".precision: expected fp32, bf16 or fp16, got '", precision, "'");
  MSMEDCAP_CHECK(frozen_dtype == "fp32" || frozen_dtype == "bf16" || frozen_dtype == "fp16", path,
                 ".frozen_dtype: expected fp32, bf16 or fp16, got '", frozen_dtype, "'");
  MSMEDCAP_CHECK(qformer_max_len >= 2, path, ".qformer_max_len: must be >= 2, got ", qformer_max_len);
  MSMEDCAP_CHECK(decoder_max_len >= 2, path, ".decoder_max_len: must be >= 2, got ", decoder_max_len);
  MSMEDCAP_CHECK(log_every >= 1, path, ".log_every: must be >= 1, got ", log_every);
  MSMEDCAP_CHECK(val_every >= 0 && val_batches >= 0 && save_every >= 0, path,
                 ".val_every, val_batches, save_every: must be >= 0");
  MSMEDCAP_CHECK(keep >= 1, path, ".keep: must be >= 1, got ", keep);
  MSMEDCAP_CHECK(nan_action == "skip" || nan_action == "stop", path, ".nan_action: expected skip or stop, got '",
                 nan_action, "'");
  MSMEDCAP_CHECK(max_skipped_steps >= 0, path, ".max_skipped_steps: must be >= 0, got ", max_skipped_steps);
  MSMEDCAP_CHECK(bucket_mb >= 1, path, ".bucket_mb: must be >= 1, got ", bucket_mb);
}

}  // namespace msmedcap::config
