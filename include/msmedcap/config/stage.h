#pragma once
/// The training stages and the two image branches as types (docs/ARCHITECTURE.md, "The stage
/// plan"). The stage's name is parsed here and nowhere else; code that needs to know what a stage
/// does asks training::StagePlan, code below training (models, losses, flops) takes a Branch.
/// Torch-free.

#include <optional>
#include <string>

namespace msmedcap::config {

/// train.stage.name.
enum class Stage {
  kStage1Clip,  ///< "stage1_clip": ITC + ITM + ITG on the CLIP branch's Q-Former
  kStage1Sam,   ///< "stage1_sam": the same on the SAM branch
  kStage2,      ///< "stage2": both branches' Q-Formers and projections under the LM loss
  kCaption,     ///< "caption": stage 2's parts, optionally the CLIP ViT and the LLM
  kDecoderLm,   ///< "decoder_lm": the decoder alone as a language model on the captions
  /// "clip_pretrain": the CLIP-branch ViT trained CLIP-style, image-text contrastive against the
  /// Q-Former's text path (for domains without fitting pretrained encoder weights)
  kClipPretrain,
  /// "sam_pretrain": the SAM-branch ViT trained SAM-style, a light mask decoder predicting the
  /// mask of the structure under a point prompt (the data's structure masks)
  kSamPretrain,
};

/// The CLIP/EVA branch (registered names without prefix) or the SAM branch ("sam_" prefix).
enum class Branch { kClip, kSam };

/// The stage a name means; throws "PATH: expected stage1_clip, ..., got 'NAME'".
Stage parse_stage(const std::string& name, const std::string& path = "train.stage.name");
/// The config name of a stage ("stage1_clip", ...).
const char* stage_name(Stage stage);
/// The branch whose stage-1 losses a stage trains; none for the other stages.
std::optional<Branch> stage1_branch(Stage stage);
/// The branch whose frozen-later encoder a stage pretrains (clip_pretrain, sam_pretrain); none for
/// the others.
std::optional<Branch> encoder_pretrain_branch(Stage stage);

/// "clip" or "sam" (feature caches, provenance, --branch).
const char* branch_name(Branch branch);
/// "CLIP" or "SAM" (messages).
const char* branch_title(Branch branch);
/// The prefix of the branch's registered names: "" or "sam_".
const char* branch_prefix(Branch branch);
/// The branch "clip" or "sam" names; throws "WHAT: expected clip or sam, got 'NAME'".
Branch parse_branch(const std::string& name, const std::string& what);

}  // namespace msmedcap::config
