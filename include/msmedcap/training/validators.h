#pragma once
/// Validators the trainer runs at each validation (trainer.h): the validation loss, which picks
/// the best checkpoint, then those the caller adds (TrainerOptions::validators).

#include <map>
#include <string>
#include <vector>

#include "msmedcap/config/run_config.h"
#include "msmedcap/data/datasets.h"
#include "msmedcap/data/loader.h"
#include "msmedcap/inference/run_setup.h"
#include "msmedcap/models/msmedcap.h"
#include "msmedcap/training/step.h"
#include "msmedcap/training/trainer.h"

namespace msmedcap::training {

/// The stage's losses on val_data: the first `max_batches` batches of `loader` (0: all), from
/// its start each time, through the training step's own `StepRunner::losses` with gradients off,
/// averaged over images and ranks. Stage 1 skips a lone-image batch (it has no ITM negative).
/// Its fields are LossBreakdown::to_json's; `last().total` picks the best checkpoint.
class LossValidator final : public Validator {
 public:
  LossValidator(StepRunner& runner, data::DataLoader& loader, data::ExampleOptions examples, const StagePlan& plan,
                Communicator& comm, uint64_t seed, int64_t max_batches);
  config::Json validate(int64_t step) override;
  const LossBreakdown& last() const { return last_; }

 private:
  StepRunner& runner_;
  data::DataLoader& loader_;
  data::ExampleOptions examples_;
  const StagePlan& plan_;
  Communicator& comm_;
  uint64_t seed_;
  int64_t max_batches_;
  LossBreakdown last_;
};

/// train.val_caption_images: captions the first images of val_data as the run captions
/// (inference::run_captioning) and returns their corpus scores (metrics::metric_names() without
/// METEOR, which is slow and needs WordNet), from val_data.feature_cache when it is set.
class CaptionMetricsValidator final : public Validator {
 public:
  CaptionMetricsValidator(const config::RunConfig& run, models::MsMedCapModel model);
  config::Json validate(int64_t step) override;

 private:
  models::MsMedCapModel model_;
  inference::RunCaptioning setup_;
  std::vector<data::Sample> samples_;
  std::map<std::string, std::vector<std::string>> references_;
};

}  // namespace msmedcap::training
