#include "msmedcap/models/dropout.h"

#include <ATen/ATen.h>

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
}  // namespace

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
  const auto opts = at::TensorOptions().dtype(at::kLong).device(x.device());
  std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
  shape[0] = rows;
  // Element e of row r: mix31(mix31(e) + seed_r). The inner mix keeps rows whose seeds are close
  // from reading shifted copies of one stream.
  const auto seeds = at::tensor(row_seeds, at::kLong).to(x.device()).view({rows, 1});
  const auto counted = mix31(at::arange(per_row, opts)).view({1, per_row});
  const auto u = mix31(at::bitwise_and(counted + seeds, kLane));  // [rows, per_row]
  const auto threshold = static_cast<int64_t>(std::llround(p * static_cast<double>(kLane + 1)));
  const auto keep = u.ge(threshold).view(x.sizes());
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
