#include "msmedcap/training/validators.h"

#include "msmedcap/core/check.h"
#include "msmedcap/inference/captioner.h"
#include "msmedcap/metrics/evaluate.h"

namespace msmedcap::training {

CaptionMetricsValidator::CaptionMetricsValidator(const config::RunConfig& run, models::MsMedCapModel model)
    : model_(std::move(model)), setup_(inference::run_captioning(run)) {
  const int64_t n = run.train.val_caption_images;
  MSMEDCAP_CHECK(!run.val_data.sources.empty(), "train.val_caption_images: needs val_data");
  MSMEDCAP_CHECK(run.data.feature_cache.empty(), "train.val_caption_images: captions are made from pixels; ",
                 "turn it off with data.feature_cache");
  samples_ = data::read_datasets(run.val_data, "val_data");
  if (n > 0 && static_cast<int64_t>(samples_.size()) > n) samples_.resize(static_cast<size_t>(n));
  for (const auto& s : samples_) references_[s.id] = s.captions;
}

config::Json CaptionMetricsValidator::validate(int64_t) {
  inference::Captioner captioner(model_, setup_.tokenizer, setup_.options);
  std::map<std::string, std::string> predictions;
  inference::caption_samples(captioner, samples_, setup_.batch, [&](const inference::CaptionRecord& r) {
    MSMEDCAP_CHECK(r.error.empty(), "train.val_caption_images: ", r.image, ": ", r.error);
    predictions[r.id] = r.caption;
  });
  const auto ev = metrics::evaluate(predictions, references_);
  config::Json out;
  for (const auto& [name, value] : ev.corpus) out[name] = value;
  return out;
}

}  // namespace msmedcap::training
