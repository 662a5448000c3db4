#pragma once
/// `msmedcap extract-features`: run the frozen encoders once over a dataset and store their
/// outputs in a feature cache (data/feature_cache.h) with their provenance.

#include <c10/core/Device.h>

#include <cstdint>
#include <string>
#include <vector>

#include "msmedcap/config/data_config.h"
#include "msmedcap/data/loader.h"
#include "msmedcap/models/msmedcap.h"

namespace msmedcap::inference {

struct ExtractOptions {
  std::string out;
  /// Branches to cache (at least one).
  std::vector<config::Branch> branches = {config::Branch::kSam};
  int64_t batch_size = 4;
  int64_t workers = 2;
  uint64_t shard_bytes = 1ull << 30;
  c10::Device device = c10::Device(c10::kCPU);
};

struct ExtractReport {
  int64_t images = 0;
  int64_t skipped = 0;
  double seconds = 0;
};

/// Every distinct image of `data`'s sources, through the model's frozen encoders, into
/// `options.out`. Augmentation is never applied. Throws on a bad-sample budget overrun.
ExtractReport extract_features(models::MsMedCapModelImpl& model, const config::DatasetConfig& data,
                               double max_bad_fraction, const ExtractOptions& options);

/// What the loader should produce for `model` under `data`: pixels per enabled branch, or, when
/// `data.feature_cache` is set, the cached features of the branches it holds (one branch's cache
/// folder, or `clip/` and `sam/` under it), each checked against the model's provenance. A
/// non-empty `branches` limits both to those (a stage that reads one branch neither decodes for
/// nor checks the other, whose encoder it may not have loaded).
data::ExampleOptions example_options(models::MsMedCapModelImpl& model, const config::DatasetConfig& data,
                                     const std::vector<config::Branch>& branches = {});

}  // namespace msmedcap::inference
