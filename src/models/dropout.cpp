#include "msmedcap/models/dropout.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cmath>

#include "msmedcap/core/check.h"
#include "msmedcap/core/hash.h"

namespace msmedcap::models {

namespace {
constexpr int64_t kLane = (int64_t{1} << 31) - 1;  // 31-bit lanes: products stay below 2^62

/// An invertible mix of 31-bit integers held in int64 (x in [0, 2^31)): xor-shift, multiply by an
/// odd constant modulo 2^31, twice, then a last xor-shift. Each step is a bijection, so a
/// uniformly counted input gives uniformly spread outputs.
at::Tensor mix31(at::Tensor x) {
  for (int round = 0; round < 2; ++round)
    x = at::bitwise_and(at::bitwise_xor(x, at::__rshift__(x, 16)) * 0x45d9f3b, kLane);
  return at::bitwise_xor(x, at::__rshift__(x, 16));
}

/// mix31 of one value, in the same int64 arithmetic (x < 2^31, so every product stays < 2^58).
inline int64_t mix31(int64_t x) {
  for (int round = 0; round < 2; ++round) x = ((x ^ (x >> 16)) * 0x45d9f3b) & kLane;
  return x ^ (x >> 16);
}
}  // namespace

namespace detail {
at::Tensor keyed_keep_mask(const at::Tensor& seeds, int64_t per_row, int64_t threshold, bool loop) {
  const int64_t rows = seeds.size(0);
  if (!loop) {
    const auto opts = at::TensorOptions().dtype(at::kLong).device(seeds.device());
    const auto counted = mix31(at::arange(per_row, opts)).view({1, per_row});
    const auto u = mix31(at::bitwise_and(counted + seeds.view({rows, 1}), kLane));  // [rows, per_row]
    return u.ge(threshold);
  }
  MSMEDCAP_CHECK(seeds.device().is_cpu(), "dropout: the loop mask is for CPU tensors");
  // A dozen tensor passes over int64 [rows, per_row] become one pass writing bytes: the masks
  // were about a fifth of a stage-2 step on the CPU (docs/PERFORMANCE.md).
  std::vector<int64_t> counted(static_cast<size_t>(per_row));
  for (int64_t j = 0; j < per_row; ++j) counted[static_cast<size_t>(j)] = mix31(j);
  auto keep = at::empty({rows, per_row}, at::kBool);
  const auto s = seeds.contiguous();
  const int64_t* sp = s.data_ptr<int64_t>();
  bool* kp = keep.data_ptr<bool>();
  at::parallel_for(0, rows, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      bool* out = kp + r * per_row;
      for (int64_t j = 0; j < per_row; ++j)
        out[j] = mix31((counted[static_cast<size_t>(j)] + sp[r]) & kLane) >= threshold;
    }
  });
  return keep;
}
}  // namespace detail

void DropoutKeys::begin(uint64_t seed, std::vector<int64_t> row_keys) {
  MSMEDCAP_CHECK(!row_keys.empty(), "dropout: keys for an empty batch");
  keyed_ = true;
  seed_ = seed;
  pass_ = 0;
  keys_ = std::move(row_keys);
}

void DropoutKeys::end() {
  keyed_ = false;
  keys_.clear();
}

at::Tensor DropoutKeys::apply(const at::Tensor& x, double p, uint64_t site) const {
  if (!keyed_) return at::dropout(x, p, /*train=*/true);
  const auto b = static_cast<int64_t>(keys_.size());
  const int64_t rows = x.size(0);
  MSMEDCAP_CHECK(rows % b == 0, "dropout: a pass over ", rows, " rows, not a multiple of the batch's ", b,
                 " keyed rows");
  std::vector<int64_t> row_seeds(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    const uint64_t h =
        core::mix_seed(seed_, pass_ * 0x10000ull + site, static_cast<uint64_t>(keys_[static_cast<size_t>(r % b)]),
                       static_cast<uint64_t>(r / b));
    row_seeds[static_cast<size_t>(r)] = static_cast<int64_t>(h & static_cast<uint64_t>(kLane));
  }
  const int64_t per_row = x.numel() / rows;
  // Element e of row r: mix31(mix31(e) + seed_r). The inner mix keeps rows whose seeds are close
  // from reading shifted copies of one stream.
  const auto threshold = static_cast<int64_t>(std::llround(p * static_cast<double>(kLane + 1)));
  const bool cpu = x.device().is_cpu();
  const auto seeds = at::tensor(row_seeds, at::kLong);
  const auto keep =
      detail::keyed_keep_mask(cpu ? seeds : seeds.to(x.device()), per_row, threshold, cpu).view(x.sizes());
  return x * keep.to(x.scalar_type()) * (1.0 / (1.0 - p));
}

DropoutKeyScope::DropoutKeyScope(std::vector<std::shared_ptr<DropoutKeys>> keys, uint64_t seed,
                                 const std::vector<int64_t>& row_keys)
    : keys_(std::move(keys)) {
  for (size_t i = 0; i < keys_.size(); ++i) {
    if (keys_[i]) keys_[i]->begin(core::mix_seed(seed, 0x64726f70ull, i), row_keys);
  }
}

DropoutKeyScope::~DropoutKeyScope() {
  for (auto& k : keys_)
    if (k) k->end();
}

}  // namespace msmedcap::models
