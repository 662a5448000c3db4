#pragma once
/// Training settings: the stage (which parts train), the optimiser and its schedule.

#include <cstdint>
#include <string>

#include "msmedcap/config/fields.h"

namespace msmedcap::config {

/// AdamW as LAVIS builds it (MODEL_REFERENCE.md §1.5): betas (0.9, 0.999), weight decay 0.05
/// except on biases and 1-D parameters.
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

/// Which parts of the model train (MODEL_REFERENCE.md §1.4).
struct StageConfig {
  /// stage1_clip, stage1_sam (ITC+ITM+ITG on that branch), stage2 (both Q-Formers and
  /// projections, LM loss), caption (stage 2's parts, optionally the vision encoder).
  std::string name = "stage2";
  /// caption: also train the CLIP vision encoder (LAVIS caption fine-tuning: freeze_vit false).
  bool train_vision = false;

  template <class V>
  void visit(V& v) {
    v("name", name, "stage1_clip, stage1_sam, stage2 or caption");
    v("train_vision", train_vision, "caption stage: also train the CLIP vision encoder");
  }
  void validate(const std::string& path) const;
};

}  // namespace msmedcap::config
