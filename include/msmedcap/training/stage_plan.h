#pragma once
/// What a training stage does, decided once from the config (docs/ARCHITECTURE.md, "The stage
/// plan"): which parameters train, which branches are fed images (pixels or cached features, as
/// the data's feature cache says), which tokenizer makes the text and which losses are computed.
/// The trainer, the step, the stage's parameter freezing and `bench train-step` all ask the plan;
/// nothing else reads train.stage.name. Torch-free.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "msmedcap/config/model_config.h"
#include "msmedcap/config/stage.h"
#include "msmedcap/config/train_config.h"
#include "msmedcap/metrics/attributes.h"

namespace msmedcap::training {

using config::Branch;
using config::Stage;

/// The text a stage reads: WordPiece for a Q-Former (stage 1, clip_pretrain), none (sam_pretrain
/// learns from masks), the decoder's tokenizer otherwise.
enum class TextTokenizer { kQFormer, kDecoder, kNone };

/// The loss terms a stage computes (its total is their sum: stage 1 ITC + ITM + ITG,
/// clip_pretrain ITC, sam_pretrain the mask loss, else LM).
struct LossTerms {
  bool itc = false, itm = false, itg = false, lm = false, mask = false;
  bool mask_class = false;  ///< sam_pretrain with train.stage.mask_classes
  bool mask_place = false;  ///< ... and mask_classes.places
};

class StagePlan {
 public:
  /// Validates `stage` (unknown name, options of another stage) and that `model` has what the
  /// stage needs (stage1_sam needs model.use_sam, ...); throws naming the key.
  StagePlan(const config::StageConfig& stage, const config::ModelConfig& model);

  Stage stage() const { return stage_; }
  /// The config name ("stage2", ...).
  const char* name() const { return config::stage_name(stage_); }
  /// Stage 1: the branch whose Q-Former learns ITC + ITM + ITG.
  std::optional<Branch> stage1_branch() const { return stage1_branch_; }
  bool stage1() const { return stage1_branch_.has_value(); }
  /// clip_pretrain, sam_pretrain: the branch whose encoder trains.
  std::optional<Branch> encoder_pretrain_branch() const { return config::encoder_pretrain_branch(stage_); }
  /// The branch whose Q-Former text path reads the captions (stage 1, clip_pretrain); none when
  /// the decoder's tokenizer makes the text.
  std::optional<Branch> qformer_text_branch() const {
    return stage1_branch_                   ? stage1_branch_
           : stage_ == Stage::kClipPretrain ? std::optional(Branch::kClip)
                                            : std::nullopt;
  }
  /// sam_pretrain: batches carry the samples' structure masks.
  bool reads_masks() const { return stage_ == Stage::kSamPretrain; }
  /// sam_pretrain with train.stage.mask_classes: the per-pixel head's classes, 0 without.
  /// Background, then one class per value of the attribute (the rule file's order), each split
  /// by every combination of the `also` attributes' values (their absent value first).
  int64_t mask_classes() const { return class_count_; }
  /// sam_pretrain with train.stage.mask_classes.places: the place head's cells, 0 without.
  int64_t mask_places() const { return place_count_; }
  /// The class a caption gives its study's masked structures: 0 (background) where the attribute
  /// is absent, else 1 + the index of (attribute value, also values...) in that order.
  int64_t mask_class(const std::string& caption) const;
  /// The stage reads the captions (every stage but sam_pretrain without mask_classes).
  bool reads_captions() const { return !reads_masks() || mask_classes() > 0; }
  /// decoder_lm: captions only, no image is read and the decoder sees no visual prefix.
  bool text_only() const { return stage_ == Stage::kDecoderLm; }
  /// The branch is fed images (its pixels or its cached encoder outputs).
  bool reads(Branch branch) const { return branch == Branch::kClip ? reads_clip_ : reads_sam_; }
  TextTokenizer tokenizer() const {
    if (reads_masks()) return TextTokenizer::kNone;
    return qformer_text_branch() ? TextTokenizer::kQFormer : TextTokenizer::kDecoder;
  }
  const LossTerms& losses() const { return losses_; }

  /// Parameter-name prefixes that train ("qformer.", ...; a prefix without a final dot names one
  /// tensor, "query_tokens"):
  ///   stage1_clip: qformer., query_tokens, vision_projection., text_projection., itm_head., temp
  ///   stage1_sam:  the same with the sam_ prefix
  ///   stage2:      qformer., query_tokens, language_projection. and their sam_ twins (the
  ///                branches the model has)
  ///   caption:     stage2's, plus vision_model. with train_vision, language_model. with train_llm
  ///   decoder_lm:  language_model.
  ///   clip_pretrain: vision_model., qformer. (its text path), text_projection., temp and the
  ///                stage's own head clip_pretrain_projection. (models::MsMedCapModelImpl::
  ///                add_encoder_pretrain_head)
  ///   sam_pretrain: sam_model. and its heads sam_pretrain_decoder. and (mask_classes)
  ///                sam_pretrain_classes.
  const std::vector<std::string>& trainable_prefixes() const { return prefixes_; }
  /// The parameter `name` (a registered path) trains in this stage.
  bool trains(const std::string& name) const;
  /// The model's child module `child` ("qformer", "vision_model") holds parameters that train, so
  /// it runs in train mode (dropout on); the frozen ones run in eval mode.
  bool trains_module(const std::string& child) const;
  /// What a step reads, for logs and benchmark rows: "text", "clip", "sam" or "clip, sam".
  std::string inputs() const;

 private:
  Stage stage_;
  std::optional<Branch> stage1_branch_;
  bool reads_clip_ = false, reads_sam_ = false;
  LossTerms losses_;
  std::vector<std::string> prefixes_;
  std::shared_ptr<const metrics::AttributeRules> class_rules_;
  /// The class attributes (train.stage.mask_classes: attribute, then also) and each one's values,
  /// [0] its absent value.
  std::vector<std::pair<std::string, std::vector<std::string>>> class_attributes_;
  int64_t class_count_ = 0;
  int64_t place_count_ = 0;
};

}  // namespace msmedcap::training
