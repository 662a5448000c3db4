#include "msmedcap/config/stage.h"

#include "msmedcap/core/check.h"

namespace msmedcap::config {
namespace {

constexpr Stage kStages[] = {Stage::kStage1Clip, Stage::kStage1Sam,    Stage::kStage2,     Stage::kCaption,
                             Stage::kDecoderLm,  Stage::kClipPretrain, Stage::kSamPretrain};

}  // namespace

const char* stage_name(Stage stage) {
  switch (stage) {
    case Stage::kStage1Clip:
      return "stage1_clip";
    case Stage::kStage1Sam:
      return "stage1_sam";
    case Stage::kStage2:
      return "stage2";
    case Stage::kCaption:
      return "caption";
    case Stage::kDecoderLm:
      return "decoder_lm";
    case Stage::kClipPretrain:
      return "clip_pretrain";
    case Stage::kSamPretrain:
      return "sam_pretrain";
  }
  MSMEDCAP_FAIL("stage_name: not a stage (", static_cast<int>(stage), ")");
}

Stage parse_stage(const std::string& name, const std::string& path) {
  for (const Stage s : kStages)
    if (name == stage_name(s)) return s;
  MSMEDCAP_FAIL(path,
                ": expected stage1_clip, stage1_sam, stage2, caption, decoder_lm, clip_pretrain or sam_pretrain, got '",
                name, "'");
}

std::optional<Branch> stage1_branch(Stage stage) {
  if (stage == Stage::kStage1Clip) return Branch::kClip;
  if (stage == Stage::kStage1Sam) return Branch::kSam;
  return std::nullopt;
}

std::optional<Branch> encoder_pretrain_branch(Stage stage) {
  if (stage == Stage::kClipPretrain) return Branch::kClip;
  if (stage == Stage::kSamPretrain) return Branch::kSam;
  return std::nullopt;
}

const char* branch_name(Branch branch) { return branch == Branch::kSam ? "sam" : "clip"; }
const char* branch_title(Branch branch) { return branch == Branch::kSam ? "SAM" : "CLIP"; }
const char* branch_prefix(Branch branch) { return branch == Branch::kSam ? "sam_" : ""; }

Branch parse_branch(const std::string& name, const std::string& what) {
  if (name == "clip") return Branch::kClip;
  if (name == "sam") return Branch::kSam;
  MSMEDCAP_FAIL(what, ": expected clip or sam, got '", name, "'");
}

}  // namespace msmedcap::config
