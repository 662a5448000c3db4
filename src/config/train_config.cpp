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
  MSMEDCAP_CHECK(schedule == "lavis" || schedule == "cosine", path, ".schedule: expected lavis or cosine, got '", schedule, "'");
}

void StageConfig::validate(const std::string& path) const {
  MSMEDCAP_CHECK(name == "stage1_clip" || name == "stage1_sam" || name == "stage2" || name == "caption", path,
                 ".name: expected stage1_clip, stage1_sam, stage2 or caption, got '", name, "'");
  MSMEDCAP_CHECK(!train_vision || name == "caption", path, ".train_vision: only the caption stage trains the vision encoder");
}

}  // namespace msmedcap::config
