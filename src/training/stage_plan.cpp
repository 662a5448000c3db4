#include "msmedcap/training/stage_plan.h"

#include "msmedcap/core/check.h"

namespace msmedcap::training {

StagePlan::StagePlan(const config::StageConfig& stage, const config::ModelConfig& model) : stage_(stage.id()) {
  stage.validate("train.stage");
  stage1_branch_ = config::stage1_branch(stage_);
  if (stage1_branch_) {
    const Branch b = *stage1_branch_;
    const bool present = b == Branch::kClip ? model.use_clip : model.use_sam;
    MSMEDCAP_CHECK(present, "train.stage.name: ", name(), " needs the ", config::branch_title(b),
                   " branch, which model.", b == Branch::kClip ? "use_clip" : "use_sam", " turns off");
    (b == Branch::kClip ? reads_clip_ : reads_sam_) = true;
    losses_.itc = losses_.itm = losses_.itg = true;
    const std::string p = config::branch_prefix(b);
    prefixes_ = {p + "qformer.",         p + "query_tokens", p + "vision_projection.",
                 p + "text_projection.", p + "itm_head.",    p + "temp"};
    return;
  }
  if (stage_ == Stage::kClipPretrain) {
    MSMEDCAP_CHECK(model.use_clip,
                   "train.stage.name: clip_pretrain needs the CLIP branch, which model.use_clip turns off");
    reads_clip_ = true;
    losses_.itc = true;
    prefixes_ = {"vision_model.", "qformer.", "text_projection.", "temp", "clip_pretrain_projection."};
    return;
  }
  if (stage_ == Stage::kSamPretrain) {
    MSMEDCAP_CHECK(model.use_sam, "train.stage.name: sam_pretrain needs the SAM branch, which model.use_sam turns off");
    reads_sam_ = true;
    losses_.mask = true;
    prefixes_ = {"sam_model.", "sam_pretrain_decoder."};
    return;
  }
  losses_.lm = true;
  if (stage_ == Stage::kDecoderLm) {
    prefixes_ = {"language_model."};
    return;
  }
  reads_clip_ = model.use_clip;
  reads_sam_ = model.use_sam;
  for (const Branch b : {Branch::kClip, Branch::kSam}) {
    if (!reads(b)) continue;
    const std::string p = config::branch_prefix(b);
    prefixes_.insert(prefixes_.end(), {p + "qformer.", p + "query_tokens", p + "language_projection."});
  }
  if (stage.train_vision) prefixes_.push_back("vision_model.");  // validate: caption only
  if (stage.train_llm) prefixes_.push_back("language_model.");
}

bool StagePlan::trains(const std::string& name) const {
  for (const auto& p : prefixes_) {
    const bool whole = p.back() != '.';
    if (whole ? name == p : name.rfind(p, 0) == 0) return true;
  }
  return false;
}

bool StagePlan::trains_module(const std::string& child) const {
  for (const auto& p : prefixes_)
    if (p == child + ".") return true;
  return false;
}

std::string StagePlan::inputs() const {
  if (text_only()) return "text";
  if (reads_clip_ && reads_sam_) return "clip, sam";
  return reads_clip_ ? "clip" : "sam";
}

}  // namespace msmedcap::training
