#include "msmedcap/training/validators.h"

#include <torch/torch.h>

#include "msmedcap/core/check.h"
#include "msmedcap/inference/captioner.h"
#include "msmedcap/inference/features.h"
#include "msmedcap/metrics/evaluate.h"

namespace msmedcap::training {

LossValidator::LossValidator(StepRunner& runner, data::DataLoader& loader, data::ExampleOptions examples,
                             const StagePlan& plan, Communicator& comm, uint64_t seed, int64_t max_batches)
    : runner_(runner),
      loader_(loader),
      examples_(std::move(examples)),
      plan_(plan),
      comm_(comm),
      seed_(seed),
      max_batches_(max_batches) {}

config::Json LossValidator::validate(int64_t) {
  torch::NoGradGuard no_grad;
  loader_.restore(data::LoaderState{});
  std::vector<double> sums(LossBreakdown::kValues + 1, 0.0);
  int64_t batches = 0;
  while (max_batches_ == 0 || batches < max_batches_) {
    auto batch = loader_.next();
    if (!batch) break;
    const int64_t size = agree_batch_size(*batch, comm_);
    if (size == 0 || (plan_.stage1() && size < 2)) continue;
    const auto n = static_cast<double>(batch->samples.size());
    const uint64_t seed = data::mix_seed(seed_, 0x76616cull, static_cast<uint64_t>(batches));
    const auto values = runner_.losses(runner_.inputs(*batch, examples_), seed, false).second.values();
    for (size_t k = 0; k < LossBreakdown::kValues; ++k) sums[k] += values[k] * n;
    sums.back() += n;
    ++batches;
  }
  comm_.sum(sums);
  std::vector<double> means(LossBreakdown::kValues);
  for (size_t k = 0; k < LossBreakdown::kValues; ++k) means[k] = sums.back() > 0 ? sums[k] / sums.back() : 0.0;
  last_ = LossBreakdown{};
  last_.terms = plan_.losses();
  last_.set_values(means);
  return last_.to_json();
}

CaptionMetricsValidator::CaptionMetricsValidator(const config::RunConfig& run, models::MsMedCapModel model)
    : model_(std::move(model)), setup_(inference::run_captioning(run)) {
  const int64_t n = run.train.val_caption_images;
  MSMEDCAP_CHECK(!run.val_data.sources.empty(), "train.val_caption_images: needs val_data");
  // From val_data's cached encoder outputs when it has them, as the validation loss reads them;
  // from pixels otherwise. Either way through the same encoders: a cache only opens for a model
  // whose encoder weights it was made with.
  if (!run.val_data.feature_cache.empty()) {
    config::DatasetConfig val = run.val_data;
    val.transform = run.data.transform;  // validation sees the training transform (Trainer::make_loader)
    const auto cached = inference::example_options(*model_, val);
    setup_.batch.clip_cache = cached.clip_cache;
    setup_.batch.sam_cache = cached.sam_cache;
  }
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
