#include "msmedcap/training/merge.h"

#include "msmedcap/config/stage.h"
#include "msmedcap/core/check.h"

namespace msmedcap::training {
namespace {

bool has_prefix(const io::StateDict& d, const std::string& prefix) {
  const auto it = d.lower_bound(prefix);
  return it != d.end() && it->first.rfind(prefix, 0) == 0;
}

/// A SAM-branch tensor the stage-1 SAM run trained: the branch prefix, not the frozen encoder.
bool trained_in_sam_branch(const std::string& name) {
  return name.rfind(config::branch_prefix(config::Branch::kSam), 0) == 0 && name.rfind("sam_model.", 0) != 0;
}

}  // namespace

io::StateDict merge_stage1(const io::StateDict& clip, const io::StateDict& sam, const std::string& clip_name,
                           const std::string& sam_name) {
  MSMEDCAP_CHECK(has_prefix(clip, "qformer."), clip_name, ": no qformer.* tensor; is it a CLIP-branch stage-1 result?");
  MSMEDCAP_CHECK(has_prefix(sam, "sam_qformer."), sam_name,
                 ": no sam_qformer.* tensor; is it a SAM-branch stage-1 result?");
  io::StateDict out;
  for (const auto& [name, t] : clip) {
    if (!trained_in_sam_branch(name)) out.emplace(name, t);
  }
  // The SAM encoder itself (sam_model.*) is frozen and comes from its own weights file.
  for (const auto& [name, t] : sam) {
    if (trained_in_sam_branch(name)) out[name] = t;
  }
  return out;
}

}  // namespace msmedcap::training
