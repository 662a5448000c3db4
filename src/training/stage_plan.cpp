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
    if (!stage.mask_classes.enabled()) return;
    const auto& mc = stage.mask_classes;
    class_rules_ = std::make_shared<const metrics::AttributeRules>(metrics::read_attribute_rules(mc.rules));
    std::vector<std::string> names = {mc.attribute};
    names.insert(names.end(), mc.also.begin(), mc.also.end());
    class_count_ = 1;
    for (size_t i = 0; i < names.size(); ++i) {
      std::vector<std::string> values;
      for (const auto& rule : class_rules_->attributes) {
        if (rule.name != names[i]) continue;
        values.push_back(rule.absent);
        for (const auto& value : rule.values) values.push_back(value.first);
      }
      MSMEDCAP_CHECK(!values.empty(), "train.stage.mask_classes.", i == 0 ? "attribute" : "also", ": ", mc.rules,
                     " has no attribute '", names[i], "'");
      for (size_t j = 0; j < i; ++j)
        MSMEDCAP_CHECK(names[j] != names[i], "train.stage.mask_classes: attribute '", names[i], "' named twice");
      // The first attribute's absent value is the background; the others' absent values split too.
      class_count_ *= static_cast<int64_t>(i == 0 ? values.size() - 1 : values.size());
      class_attributes_.emplace_back(names[i], std::move(values));
    }
    class_count_ += 1;
    losses_.mask_class = true;
    prefixes_.push_back("sam_pretrain_classes.");
    if (!mc.places.empty()) {
      place_count_ = mc.places[0] * mc.places[1];
      losses_.mask_place = true;
      prefixes_.push_back("sam_pretrain_places.");
    }
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

int64_t StagePlan::mask_class(const std::string& caption) const {
  MSMEDCAP_CHECK(class_rules_ != nullptr, "stage ", name(), ": no train.stage.mask_classes");
  const auto read = metrics::read_attributes(*class_rules_, caption);
  int64_t index = 0;  // among the non-background classes
  for (size_t i = 0; i < class_attributes_.size(); ++i) {
    const auto& [attribute, values] = class_attributes_[i];
    const auto value = read.at(attribute);
    int64_t k = 0;  // the absent value
    for (size_t j = 1; j < values.size(); ++j)
      if (values[j] == value) k = static_cast<int64_t>(j);
    if (i == 0) {
      if (k == 0) return 0;
      index = k - 1;
    } else {
      index = index * static_cast<int64_t>(values.size()) + k;
    }
  }
  return 1 + index;
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
