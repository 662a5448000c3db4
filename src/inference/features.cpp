#include "msmedcap/inference/features.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <set>

#include <torch/torch.h>

#include "msmedcap/core/check.h"
#include "msmedcap/core/logging.h"
#include "msmedcap/core/progress.h"
#include "msmedcap/data/feature_cache.h"
#include "msmedcap/data/loader.h"
#include "msmedcap/io/tensor_store.h"
#include "msmedcap/models/provenance.h"

namespace msmedcap::inference {

data::ExampleOptions example_options(models::MsMedCapModelImpl& model, const config::DatasetConfig& data,
                                     const std::vector<config::Branch>& branches) {
  auto wanted = [&](config::Branch b) {
    return branches.empty() || std::find(branches.begin(), branches.end(), b) != branches.end();
  };
  data::ExampleOptions options;
  options.clip = model.config().use_clip && wanted(config::Branch::kClip);
  options.sam = model.config().use_sam && wanted(config::Branch::kSam);
  if (data.feature_cache.empty()) return options;
  namespace fs = std::filesystem;
  const bool single = fs::exists(fs::path(data.feature_cache) / io::kIndexFileName);
  bool any = false;
  for (const config::Branch branch : {config::Branch::kClip, config::Branch::kSam}) {
    const bool clip = branch == config::Branch::kClip;
    const std::string dir =
        single ? data.feature_cache : (fs::path(data.feature_cache) / config::branch_name(branch)).string();
    if (!(clip ? model.config().use_clip : model.config().use_sam) || !fs::exists(fs::path(dir) / io::kIndexFileName))
      continue;
    auto cache = std::make_shared<data::FeatureCache>(dir, config::Json());
    if (cache->provenance().value("branch", "") != config::branch_name(branch)) continue;
    any = true;  // a cache of one of the model's branches, read or not
    if (!(clip ? options.clip : options.sam)) continue;
    cache->check_provenance(models::encoder_provenance(model, branch, data.transform));
    (clip ? options.clip_cache : options.sam_cache) = cache;
  }
  MSMEDCAP_CHECK(any, "data.feature_cache: ", data.feature_cache, " holds no feature cache of this model's branches");
  return options;
}

ExtractReport extract_features(models::MsMedCapModelImpl& model, const config::DatasetConfig& data,
                               double max_bad_fraction, const ExtractOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  bool want_clip = false, want_sam = false;
  for (const auto b : options.branches) (b == config::Branch::kClip ? want_clip : want_sam) = true;
  MSMEDCAP_CHECK(want_clip || want_sam, "extract-features: no branch to cache");
  config::ImageTransformConfig transform = data.transform;
  if (want_sam)
    MSMEDCAP_CHECK(transform.sam_size == model.config().sam.image_size, "data.transform.sam_size (", transform.sam_size,
                   ") differs from model.sam.image_size (", model.config().sam.image_size, ")");
  if (want_clip || (want_sam && transform.sam_input_from_clip_tensor))
    MSMEDCAP_CHECK(transform.clip_size == model.config().vision.image_size, "data.transform.clip_size (",
                   transform.clip_size, ") differs from model.vision.image_size (", model.config().vision.image_size,
                   ")");
  transform.augment = false;
  transform.hflip = false;

  // Each distinct image once, in file order.
  const data::Mixture all(data);
  std::vector<data::Sample> unique;
  std::set<std::string> seen;
  for (const auto& s : all.samples())
    if (seen.insert(s.image).second) unique.push_back(s);
  MSMEDCAP_CHECK(!unique.empty(), "extract-features: the dataset has no samples");
  const int64_t n = static_cast<int64_t>(unique.size());
  auto mixture = std::make_shared<data::Mixture>(std::vector<std::vector<data::Sample>>{std::move(unique)},
                                                 std::vector<double>{1.0});

  config::LoaderConfig loader_cfg;
  loader_cfg.batch_size = options.batch_size;
  loader_cfg.workers = options.workers;
  loader_cfg.shuffle = false;
  loader_cfg.drop_last = false;
  loader_cfg.max_bad_fraction = max_bad_fraction;
  data::ExampleOptions ex;
  ex.clip = want_clip || (want_sam && transform.sam_input_from_clip_tensor);
  ex.sam = want_sam;
  data::DataLoader loader(mixture, data::make_example_processor(transform, ex), loader_cfg);

  std::vector<std::unique_ptr<data::FeatureCacheWriter>> writers;
  std::vector<config::Branch> branches;
  if (want_clip) branches.push_back(config::Branch::kClip);
  if (want_sam) branches.push_back(config::Branch::kSam);
  for (const auto b : branches) {
    const std::string dir = branches.size() == 1 ? options.out : options.out + "/" + config::branch_name(b);
    writers.push_back(std::make_unique<data::FeatureCacheWriter>(dir, models::encoder_provenance(model, b, transform),
                                                                 options.shard_bytes));
  }

  model.eval();
  model.to(options.device);
  torch::InferenceMode guard;
  ExtractReport report;
  core::ProgressOptions popts;
  popts.unit = "img";
  core::Progress progress("extract", n, popts);
  while (auto batch = loader.next()) {
    for (size_t k = 0; k < branches.size(); ++k) {
      const bool sam = branches[k] == config::Branch::kSam;
      const torch::Tensor out = sam ? model.sam_embeddings(batch->sam.to(options.device))
                                    : model.clip_features(batch->clip.to(options.device));
      const torch::Tensor cpu = out.to(torch::kCPU);
      for (size_t i = 0; i < batch->samples.size(); ++i)
        writers[k]->add(data::feature_key(branches[k], batch->samples[i]), cpu[static_cast<int64_t>(i)]);
    }
    report.images += static_cast<int64_t>(batch->samples.size());
    report.skipped += batch->skipped;
    progress.advance(static_cast<int64_t>(batch->samples.size()) + batch->skipped);
  }
  for (auto& w : writers) w->finish();
  progress.finish();
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace msmedcap::inference
