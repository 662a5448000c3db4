#pragma once
/// A mixture of dataset sources sampled by weight, with a deterministic order per (seed, epoch).

#include <cstdint>
#include <vector>

#include "msmedcap/config/data_config.h"
#include "msmedcap/core/hash.h"
#include "msmedcap/data/datasets.h"

namespace msmedcap::data {

using core::mix_seed;

class Mixture {
 public:
  /// Reads every source of `cfg` (errors name the source's file and line).
  explicit Mixture(const config::DatasetConfig& cfg, std::vector<ReadReport>* reports = nullptr);
  /// From samples already read, one vector per source.
  Mixture(std::vector<std::vector<Sample>> sources, std::vector<double> weights, int64_t samples_per_epoch = 0);

  /// All samples, source after source; epoch_order indexes into it.
  const std::vector<Sample>& samples() const { return samples_; }
  /// Samples each source contributes per epoch (largest-remainder rounding of the weights).
  const std::vector<int64_t>& per_epoch() const { return per_epoch_; }
  int64_t epoch_size() const { return epoch_size_; }

  /// Indices of one epoch. Each source is read as an endless stream of shuffled passes (pass k
  /// shuffled by (seed, source, k)); epoch e takes the source's next per_epoch() samples of it.
  /// The epoch's list is then shuffled by (seed, epoch). Without `shuffle`, passes are in file
  /// order and sources follow each other.
  std::vector<int64_t> epoch_order(uint64_t seed, int64_t epoch, bool shuffle) const;

 private:
  void build(std::vector<std::vector<Sample>> sources, std::vector<double> weights, int64_t samples_per_epoch);

  std::vector<Sample> samples_;
  std::vector<int64_t> offset_, size_, per_epoch_;
  int64_t epoch_size_ = 0;
};

}  // namespace msmedcap::data
