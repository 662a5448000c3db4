#pragma once
/// Validators the trainer runs at each validation besides the validation loss (trainer.h).

#include <map>
#include <string>
#include <vector>

#include "msmedcap/config/run_config.h"
#include "msmedcap/data/datasets.h"
#include "msmedcap/inference/run_setup.h"
#include "msmedcap/models/msmedcap.h"
#include "msmedcap/training/trainer.h"

namespace msmedcap::training {

/// train.val_caption_images: captions the first images of val_data as the run captions
/// (inference::run_captioning) and returns their corpus scores (metrics::metric_names() without
/// METEOR, which is slow and needs WordNet). Needs pixels, so not with data.feature_cache.
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
