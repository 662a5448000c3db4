#pragma once
/// Cached encoder outputs (`msmedcap extract-features`): the frozen encoders run once and their
/// outputs are stored as sharded float16 safetensors (`features-0000k.safetensors` plus a
/// `model.safetensors.index.json` written last), so training does not rerun the 1024-pixel SAM
/// encoder every step. The index's metadata holds the provenance (encoder config, weight
/// fingerprint, preprocessing); opening a cache with a different provenance is an error that
/// names the first differing key.

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "msmedcap/config/fields.h"
#include "msmedcap/config/stage.h"
#include "msmedcap/data/datasets.h"

namespace msmedcap::io {
class TensorStore;
}

namespace msmedcap::data {

/// The name a sample's feature has in a cache: "<branch>/<image path>".
std::string feature_key(config::Branch branch, const Sample& sample);

/// Writes a cache: add() features one by one; finish() writes the last shard and the index.
/// Without finish() no index exists and the folder is not a cache.
class FeatureCacheWriter {
 public:
  FeatureCacheWriter(std::string dir, config::Json provenance, uint64_t shard_bytes = 1ull << 30);
  /// Stores `feature` (any float dtype, any shape) as float16 under `key`.
  void add(const std::string& key, const at::Tensor& feature);
  /// Writes the pending shard and the index; returns the number of features.
  int64_t finish();

 private:
  void flush();
  std::string dir_;
  config::Json provenance_;
  uint64_t shard_bytes_, pending_bytes_ = 0;
  std::vector<std::pair<std::string, at::Tensor>> pending_;
  std::vector<std::pair<std::string, std::string>> written_;  // (key, shard file)
  std::set<std::string> keys_;
  int shard_ = 0;
};

class FeatureCache {
 public:
  /// Opens `dir` and checks its provenance against `expected` (skipped when `expected` is null).
  FeatureCache(const std::string& dir, const config::Json& expected);
  /// Throws naming the first key where the cache's provenance differs from `expected`.
  void check_provenance(const config::Json& expected) const;
  ~FeatureCache();
  bool contains(const std::string& key) const;
  /// The feature as float32 (a copy); throws naming the key and the cache when absent.
  at::Tensor get(const std::string& key) const;
  const config::Json& provenance() const { return provenance_; }
  int64_t size() const;

 private:
  std::string dir_;
  std::unique_ptr<io::TensorStore> store_;
  config::Json provenance_;
};

/// The first JSON path where `a` and `b` differ ("" when equal).
std::string first_difference(const config::Json& a, const config::Json& b, const std::string& path = "");

}  // namespace msmedcap::data
