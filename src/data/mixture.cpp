#include "msmedcap/data/mixture.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "msmedcap/core/check.h"

namespace msmedcap::data {

namespace {
/// Fisher-Yates with our own draws (std::shuffle's use of the engine is not specified).
void shuffle_with(std::vector<int64_t>& v, uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (size_t i = v.size(); i > 1; --i) {
    const size_t j = static_cast<size_t>(rng() % i);
    std::swap(v[i - 1], v[j]);
  }
}
}  // namespace

Mixture::Mixture(const config::DatasetConfig& cfg, std::vector<ReadReport>* reports) {
  std::vector<std::vector<Sample>> sources;
  std::vector<double> weights;
  for (const auto& s : cfg.sources) {
    ReadReport report;
    sources.push_back(read_dataset(s, &report));
    MSMEDCAP_CHECK(!sources.back().empty() || s.weight == 0, describe_source(s), ": no samples (", report.skipped,
                   " rows skipped)", report.problems.empty() ? "" : "; first: " + report.problems[0]);
    weights.push_back(s.weight);
    if (reports != nullptr) reports->push_back(report);
  }
  build(std::move(sources), std::move(weights), cfg.samples_per_epoch);
}

Mixture::Mixture(std::vector<std::vector<Sample>> sources, std::vector<double> weights, int64_t samples_per_epoch) {
  build(std::move(sources), std::move(weights), samples_per_epoch);
}

void Mixture::build(std::vector<std::vector<Sample>> sources, std::vector<double> weights, int64_t samples_per_epoch) {
  MSMEDCAP_CHECK(!sources.empty(), "data.sources: the dataset has no sources");
  MSMEDCAP_CHECK(sources.size() == weights.size(), "mixture: one weight per source is needed");
  double total_weight = 0;
  int64_t total_size = 0;
  for (size_t i = 0; i < sources.size(); ++i) {
    MSMEDCAP_CHECK(weights[i] >= 0, "mixture: source ", i, " has a negative weight");
    MSMEDCAP_CHECK(!sources[i].empty() || weights[i] == 0, "mixture: source ", i, " has no samples but weight ",
                   weights[i]);
    offset_.push_back(static_cast<int64_t>(samples_.size()));
    size_.push_back(static_cast<int64_t>(sources[i].size()));
    total_size += size_.back();
    total_weight += weights[i];
    for (auto& s : sources[i]) samples_.push_back(std::move(s));
  }
  MSMEDCAP_CHECK(total_weight > 0, "mixture: the weights sum to 0");
  epoch_size_ = samples_per_epoch > 0 ? samples_per_epoch : total_size;
  // Largest remainder: floors first, then the biggest fractional parts get one more.
  std::vector<double> exact(sources.size());
  int64_t assigned = 0;
  per_epoch_.assign(sources.size(), 0);
  for (size_t i = 0; i < sources.size(); ++i) {
    exact[i] = static_cast<double>(epoch_size_) * weights[i] / total_weight;
    per_epoch_[i] = static_cast<int64_t>(std::floor(exact[i]));
    assigned += per_epoch_[i];
  }
  std::vector<size_t> by_fraction(sources.size());
  std::iota(by_fraction.begin(), by_fraction.end(), size_t{0});
  std::stable_sort(by_fraction.begin(), by_fraction.end(), [&](size_t a, size_t b) {
    return exact[a] - std::floor(exact[a]) > exact[b] - std::floor(exact[b]);
  });
  for (size_t k = 0; assigned < epoch_size_ && k < by_fraction.size(); ++k) {
    if (weights[by_fraction[k]] == 0) continue;
    ++per_epoch_[by_fraction[k]];
    ++assigned;
  }
}

std::vector<int64_t> Mixture::epoch_order(uint64_t seed, int64_t epoch, bool shuffle) const {
  std::vector<int64_t> order;
  order.reserve(static_cast<size_t>(epoch_size_));
  for (size_t i = 0; i < size_.size(); ++i) {
    const int64_t n = size_[i], take = per_epoch_[i];
    if (n == 0 || take == 0) continue;
    int64_t pos = epoch * take;  // where this epoch starts in the source's endless stream
    int64_t pass = -1;
    std::vector<int64_t> perm;
    for (int64_t k = 0; k < take; ++k, ++pos) {
      if (pos / n != pass) {
        pass = pos / n;
        perm.resize(static_cast<size_t>(n));
        std::iota(perm.begin(), perm.end(), int64_t{0});
        if (shuffle) shuffle_with(perm, mix_seed(seed, 1, i, static_cast<uint64_t>(pass)));
      }
      order.push_back(offset_[i] + perm[static_cast<size_t>(pos % n)]);
    }
  }
  if (shuffle) shuffle_with(order, mix_seed(seed, 2, static_cast<uint64_t>(epoch)));
  return order;
}

}  // namespace msmedcap::data
