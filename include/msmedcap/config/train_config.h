#pragma once
/// Training settings: the stage (which parts train), the optimiser and its schedule.

#include <cstdint>
#include <string>
#include <vector>

#include "msmedcap/config/fields.h"
#include "msmedcap/config/stage.h"

namespace msmedcap::config {

/// AdamW as LAVIS builds it (docs/MODEL.md, "Optimiser and learning-rate schedule"): betas (0.9,
/// 0.999), weight decay 0.05 except on biases and 1-D parameters.
struct OptimizerConfig {
  double lr = 1e-4;
  double min_lr = 1e-5;
  double warmup_lr = 1e-6;
  int64_t warmup_steps = 5000;
  double weight_decay = 0.05;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  /// "lavis": warm-up per step in epoch 0, then cosine per epoch; "cosine": warm-up, then
  /// cosine per step over the run's steps.
  std::string schedule = "lavis";

  template <class V>
  void visit(V& v) {
    v("lr", lr, "peak learning rate (after warm-up)");
    v("min_lr", min_lr, "learning rate at the end of the cosine");
    v("warmup_lr", warmup_lr, "learning rate at step 0");
    v("warmup_steps", warmup_steps, "linear warm-up steps");
    v("weight_decay", weight_decay, "AdamW weight decay (none on biases and 1-D parameters)");
    v("beta1", beta1, "AdamW beta1");
    v("beta2", beta2, "AdamW beta2");
    v("eps", eps, "AdamW epsilon");
    v("schedule", schedule, "lavis (cosine per epoch) or cosine (per step)");
  }
  void validate(const std::string& path) const;
};

/// sam_pretrain's second target (docs/MODEL.md, "Encoder pretraining"): each pixel's class, as
/// G2D (seed 001) ties pseudo masks to the report's words. A structure whose mask id is at least
/// `first_id` (the synthetic benchmark's lesions: 10 and up) takes the class its study's caption
/// names for `attribute`, read with the rule file; every other pixel is background (class 0). A
/// per-pixel linear head on the SAM embeddings learns it, so the encoder's features come to tell
/// one finding type from another wherever it is. `also` splits each class further by other
/// attributes' values (["size"]: a small and a large nodule are two classes).
struct MaskClassesConfig {
  /// Attribute rule file (evaluate --attributes); empty = off.
  std::string rules;
  std::string attribute = "finding";
  std::vector<std::string> also;
  int64_t first_id = 1;
  /// The class loss's weight beside the point-prompted mask loss.
  double weight = 1.0;
  /// The place loss's weight; -1 (the default) = `weight`.
  double place_weight = -1.0;
  /// [columns, rows]: also a per-pixel head that says in which cell of this grid over the image
  /// (as turned by mask_symmetries) each marked position lies ([2, 3]: the side, and the top,
  /// middle or bottom third), so the features keep where a finding is; empty: none.
  std::vector<int64_t> places;

  template <class V>
  void visit(V& v) {
    v("rules", rules, "sam_pretrain: attribute rule file whose attribute names the class of each masked structure");
    v("attribute", attribute, "the attribute of the rule file that gives the class");
    v("also", also, "further attributes of the rule file whose values split each class (e.g. [\"size\"])");
    v("first_id", first_id, "mask ids >= first_id take the caption's class; lower ids are background");
    v("weight", weight, "the class loss's weight beside the mask loss");
    v("places", places, "[columns, rows]: a head that says which cell of that grid each marked position lies in");
    v("place_weight", place_weight, "the place loss's weight; -1 = weight");
  }
  bool enabled() const { return !rules.empty(); }
};

/// Which parts of the model train (docs/MODEL.md, "Training stages").
struct StageConfig {
  /// stage1_clip, stage1_sam (ITC+ITM+ITG on that branch), stage2 (both Q-Formers and
  /// projections, LM loss), caption (stage 2's parts, optionally the vision encoder),
  /// decoder_lm (the decoder alone as a language model on the captions, no images: gives a
  /// model without pretrained LLM weights a decoder that knows the captions' language).
  std::string name = "stage2";
  /// caption: also train the CLIP vision encoder (LAVIS caption fine-tuning: freeze_vit false).
  bool train_vision = false;
  /// caption: also train the decoder LLM (the paper keeps it frozen; useful when the LLM is
  /// small or has not seen the captions' language).
  bool train_llm = false;
  /// sam_pretrain: also a per-pixel class head, the class read from the caption.
  MaskClassesConfig mask_classes;
  /// sam_pretrain: each image turned with its mask by a random one of the square's 8 symmetries
  /// (flips, transpose), so no structure's class is learnt from where it lies.
  bool mask_symmetries = false;
  /// sam_pretrain with mask_symmetries: the turns drawn, each applied with probability 1/2:
  /// "left_right" and "up_down" flips, "transpose" (all three: the square's 8 symmetries). Without
  /// "left_right" and "transpose" an image's left side stays on the left.
  std::vector<std::string> mask_turns = {"left_right", "up_down", "transpose"};
  /// sam_pretrain with mask_symmetries: the share of the stage's steps during which images are
  /// turned; the steps after it read them as they are (1: every step).
  double mask_symmetries_until = 1.0;

  template <class V>
  void visit(V& v) {
    v("name", name, "stage1_clip, stage1_sam, stage2, caption or decoder_lm");
    v("train_vision", train_vision, "caption stage: also train the CLIP vision encoder");
    v("train_llm", train_llm, "caption stage: also train the decoder LLM");
    v("mask_classes", mask_classes,
      "sam_pretrain: a per-pixel class head, each structure's class read from the caption");
    v("mask_symmetries", mask_symmetries,
      "sam_pretrain: turn each image with its mask by a random flip or transpose of the square");
    v("mask_turns", mask_turns,
      "sam_pretrain with mask_symmetries: the turns drawn (left_right, up_down, transpose; default all three)");
    v("mask_symmetries_until", mask_symmetries_until,
      "sam_pretrain with mask_symmetries: the share of the steps that turn images (default 1: all)");
  }
  void validate(const std::string& path) const;
  /// mask_turns as losses::SamPretrainOptions::turns' bits (0 without mask_symmetries).
  int mask_turn_bits() const;
  /// The stage `name` means (throws on an unknown name, as validate does).
  Stage id() const { return parse_stage(name); }
};

/// A training run: the stage, the optimiser, how long, and how the loop logs, validates, saves
/// and reacts to a non-finite loss (docs/MODEL.md, "Optimiser and learning-rate schedule", for
/// LAVIS's values).
struct TrainConfig {
  StageConfig stage;
  OptimizerConfig optimizer;
  /// Epochs of the data mixture; a step is one optimiser update.
  int64_t epochs = 1;
  /// Stop after this many steps; 0 = epochs * steps per epoch.
  int64_t max_steps = 0;
  /// Micro-batches accumulated per step (LAVIS accum_grad_iters).
  int64_t grad_accum = 1;
  /// Clip the global gradient norm to this value; 0 = off (LAVIS does not clip).
  double clip_grad_norm = 0.0;
  /// fp32, or on CUDA bf16 (autocast) or fp16 (autocast + dynamic loss scaling); master weights
  /// stay fp32.
  std::string precision = "fp32";
  /// Storage of the parts a stage does not train (encoders, a frozen LLM): fp32, bf16, or fp16
  /// (CUDA only). Trained parts keep float32 master weights.
  std::string frozen_dtype = "fp32";
  /// Recompute the CLIP ViT's layers in the backward (caption stage with train_vision; LAVIS
  /// use_grad_checkpoint): less memory, one more forward of the ViT.
  bool grad_checkpointing = false;
  /// Q-Former text length in WordPiece tokens (stage 1), with [CLS] and [SEP].
  int64_t qformer_max_len = 32;
  /// Decoder text length in tokens (stage 2, caption): prompt + caption + eos text.
  int64_t decoder_max_len = 320;
  /// Text before each caption in the decoder's input (masked in the loss), e.g. "a photo of ".
  std::string prompt;
  /// Appended to each caption as the decoder's end of text (LAVIS trains OPT with "\n").
  std::string eos_text = "\n";
  /// LAVIS pre_caption on captions (lowercase, punctuation to spaces, at most 50 words).
  bool clean_captions = true;
  /// Stage 2 and caption: the share of the decoder's caption input tokens replaced by the
  /// unknown token while training (word dropout); the targets stay the real tokens, so the
  /// decoder must read each word more from the visual prefix and less from the words before it.
  double word_dropout = 0.0;
  /// Stage 2 and caption: half of the training images, drawn per sample and step, are mirrored
  /// left-right (their pixels, or the grids of their cached encoder features), and the caption
  /// tokens of these words, which a mirror makes wrong ("left", "right"), are left out of their
  /// loss; empty = off.
  std::vector<std::string> mirror_unscored_words;
  /// Stage 1: pairs of the same image file in a batch are all ITC positives.
  bool itc_image_ids = true;
  /// Log a metrics line every N steps.
  int64_t log_every = 10;
  /// Validate on `val_data` every N steps; 0 = at the end of each epoch.
  int64_t val_every = 0;
  /// Validation batches per evaluation; 0 = the whole validation set.
  int64_t val_batches = 0;
  /// Stage 2 and caption: at each validation, caption the first N images of `val_data` (greedy,
  /// `prompt`, ending at `eos_text`) and log their BLEU-1..4, ROUGE-L and CIDEr (LAVIS's caption
  /// task reports these as it trains); 0 = off, -1 = every image.
  int64_t val_caption_images = 0;
  /// Save a checkpoint every N steps; 0 = at the end of each epoch. The last step always saves.
  int64_t save_every = 0;
  /// Step checkpoints kept besides the best.
  int64_t keep = 3;
  /// On a NaN or infinite loss: "skip" the step (no update) or "stop" after saving.
  std::string nan_action = "stop";
  /// With nan_action skip: stop after this many skipped steps in the run.
  int64_t max_skipped_steps = 20;
  /// Gradient all-reduce bucket size in MiB (several processes).
  int64_t bucket_mb = 25;

  template <class V>
  void visit(V& v) {
    v("stage", stage, "which parts of the model train");
    v("optimizer", optimizer, "AdamW and its learning-rate schedule");
    v("epochs", epochs, "epochs of the data mixture");
    v("max_steps", max_steps, "stop after this many steps; 0 = epochs * steps per epoch");
    v("grad_accum", grad_accum, "micro-batches accumulated per optimiser step");
    v("clip_grad_norm", clip_grad_norm, "clip the global gradient norm; 0 = off");
    v("precision", precision, "fp32, or on CUDA bf16 / fp16 (autocast, fp32 master weights)");
    v("frozen_dtype", frozen_dtype, "storage of the frozen parts: fp32, bf16, or fp16 (CUDA only)");
    v("grad_checkpointing", grad_checkpointing, "recompute the CLIP ViT's layers in the backward (caption stage)");
    v("qformer_max_len", qformer_max_len, "stage-1 WordPiece tokens per caption");
    v("decoder_max_len", decoder_max_len, "decoder tokens per prompt + caption");
    v("prompt", prompt, "text before each caption in the decoder input (masked in the loss)");
    v("eos_text", eos_text, "text appended to each caption as the decoder's end (\\n for OPT)");
    v("clean_captions", clean_captions, "LAVIS pre_caption on training captions");
    v("word_dropout", word_dropout,
      "stage2/caption: share of the decoder's caption input tokens replaced by the unknown token (targets kept)");
    v("mirror_unscored_words", mirror_unscored_words,
      "stage2/caption: mirror half the training images left-right and leave these words unscored in their captions");
    v("itc_image_ids", itc_image_ids, "stage 1: pairs of the same image are all ITC positives");
    v("log_every", log_every, "steps between metrics lines");
    v("val_every", val_every, "steps between validations; 0 = each epoch end");
    v("val_batches", val_batches, "validation batches per evaluation; 0 = all");
    v("val_caption_images", val_caption_images,
      "stage2/caption: val_data images captioned and scored (BLEU, ROUGE-L, CIDEr) at each validation; 0 = off, -1 = "
      "all");
    v("save_every", save_every, "steps between checkpoints; 0 = each epoch end");
    v("keep", keep, "step checkpoints kept besides the best");
    v("nan_action", nan_action, "non-finite loss: skip (no update) or stop (after saving)");
    v("max_skipped_steps", max_skipped_steps, "nan_action skip: stop after this many skipped steps");
    v("bucket_mb", bucket_mb, "gradient all-reduce bucket size in MiB");
  }
  void validate(const std::string& path) const;
};

}  // namespace msmedcap::config
