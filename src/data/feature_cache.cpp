#include "msmedcap/data/feature_cache.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include <torch/torch.h>

#include "msmedcap/core/atomic_file.h"
#include "msmedcap/core/check.h"
#include "msmedcap/io/tensor_store.h"

namespace msmedcap::data {
namespace {
namespace fs = std::filesystem;
constexpr const char* kProvenanceKey = "msmedcap_feature_cache";
}  // namespace

std::string feature_key(config::Branch branch, const Sample& sample) {
  return std::string(config::branch_name(branch)) + "/" + sample.image;
}

std::string first_difference(const config::Json& a, const config::Json& b, const std::string& path) {
  if (a.is_object() && b.is_object()) {
    for (auto it = a.begin(); it != a.end(); ++it) {
      const std::string p = path.empty() ? it.key() : path + "." + it.key();
      if (!b.contains(it.key())) return p;
      const std::string d = first_difference(it.value(), b.at(it.key()), p);
      if (!d.empty()) return d;
    }
    for (auto it = b.begin(); it != b.end(); ++it)
      if (!a.contains(it.key())) return path.empty() ? it.key() : path + "." + it.key();
    return "";
  }
  return a == b ? "" : (path.empty() ? "(root)" : path);
}

FeatureCacheWriter::FeatureCacheWriter(std::string dir, config::Json provenance, uint64_t shard_bytes)
    : dir_(std::move(dir)), provenance_(std::move(provenance)), shard_bytes_(shard_bytes) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  MSMEDCAP_CHECK(!ec, dir_, ": cannot create the feature cache folder: ", ec.message());
  MSMEDCAP_CHECK(!fs::exists(fs::path(dir_) / io::kIndexFileName), dir_,
                 ": already holds a feature cache (remove it or choose another --out)");
}

void FeatureCacheWriter::add(const std::string& key, const at::Tensor& feature) {
  MSMEDCAP_CHECK(feature.is_floating_point(), "feature cache: ", key, " is not a floating-point tensor");
  MSMEDCAP_CHECK(keys_.insert(key).second, "feature cache: duplicate key ", key);
  at::Tensor half = feature.detach().to(torch::kCPU, torch::kFloat16).contiguous();
  MSMEDCAP_CHECK(torch::isfinite(half).all().item<bool>(), "feature cache: ", key,
                 " does not fit float16 (NaN, infinite or beyond 65504)");
  pending_bytes_ += static_cast<uint64_t>(half.numel()) * 2;
  pending_.emplace_back(key, std::move(half));
  if (pending_bytes_ >= shard_bytes_) flush();
}

void FeatureCacheWriter::flush() {
  if (pending_.empty()) return;
  char name[64];
  std::snprintf(name, sizeof(name), "features-%05d.safetensors", ++shard_);
  io::StateDict dict;
  for (auto& [k, t] : pending_) {
    dict.emplace(k, t);
    written_.emplace_back(k, name);
  }
  io::save_safetensors((fs::path(dir_) / name).string(), dict);
  pending_.clear();
  pending_bytes_ = 0;
}

int64_t FeatureCacheWriter::finish() {
  flush();
  config::Json index;
  index["metadata"] = {{kProvenanceKey, provenance_.dump()}, {"format", "pt"}};
  config::Json map = config::Json::object();
  for (const auto& [k, f] : written_) map[k] = f;
  index["weight_map"] = map;
  core::write_file_atomic((fs::path(dir_) / io::kIndexFileName).string(), index.dump(1));
  return static_cast<int64_t>(written_.size());
}

FeatureCache::FeatureCache(const std::string& dir, const config::Json& expected) : dir_(dir) {
  const fs::path index = fs::path(dir) / io::kIndexFileName;
  MSMEDCAP_CHECK(fs::exists(index), dir, ": not a feature cache (no ", io::kIndexFileName,
                 "; was `msmedcap extract-features` interrupted?)");
  store_ = std::make_unique<io::TensorStore>(io::TensorStore::open(index.string()));
  const auto& meta = store_->metadata();
  const auto it = std::find_if(meta.begin(), meta.end(), [](const auto& kv) { return kv.first == kProvenanceKey; });
  MSMEDCAP_CHECK(it != meta.end(), index.string(), ": no ", kProvenanceKey, " metadata: not a msmedcap feature cache");
  try {
    provenance_ = config::Json::parse(it->second);
  } catch (const std::exception& e) {
    MSMEDCAP_FAIL(index.string(), ": malformed provenance: ", e.what());
  }
  if (!expected.is_null()) check_provenance(expected);
}

void FeatureCache::check_provenance(const config::Json& expected) const {
  const std::string diff = first_difference(expected, provenance_);
  MSMEDCAP_CHECK(diff.empty(), dir_, ": the feature cache was made with a different ", diff,
                 " than this run uses (rerun `msmedcap extract-features` or fix the config)");
}

FeatureCache::~FeatureCache() = default;

bool FeatureCache::contains(const std::string& key) const { return store_->contains(key); }

int64_t FeatureCache::size() const { return static_cast<int64_t>(store_->names().size()); }

at::Tensor FeatureCache::get(const std::string& key) const {
  MSMEDCAP_CHECK(store_->contains(key), dir_, ": the feature cache has no ", key);
  at::Tensor features = store_->view(key).to(torch::kFloat32);
  // A NaN here would poison every loss of its batch (ITC compares all rows): a bad sample.
  MSMEDCAP_CHECK(torch::isfinite(features).all().item<bool>(), dir_, ": the cached features of ", key,
                 " hold NaN or infinite values");
  return features;
}

}  // namespace msmedcap::data
