#pragma once
/// Keyed dropout. A training step's masks are a function of (step seed, pass, site, the batch
/// row's sample key, element) and of nothing else: not of the process that holds the row, its
/// place in the local batch, or how many draws came before. So N processes train exactly as one
/// does on the same global batch, and a resumed run draws the masks the uninterrupted run drew.
/// (torch's dropout draws from one generator in call order, which gives neither.)
///
/// Elements are counted from a per-row 31-bit seed through an invertible integer hash computed
/// with tensor ops on the tensor's own device, or on the CPU by one loop over the elements that
/// gives the same bits (docs/TRAINING.md, "Dropout"). Without keys a
/// module in training mode falls back to torch's dropout (tests, ad hoc use); in eval mode or at
/// p = 0 nothing is drawn.

#include <cstdint>
#include <memory>
#include <vector>

#include <ATen/core/Tensor.h>

namespace msmedcap::models {

/// The keys of the pass in progress, shared by one Q-Former's dropout sites.
class DropoutKeys {
 public:
  /// Installs keys: `row_keys` name the B rows of the batch (dataset positions); a pass over k*B
  /// rows (ITM's positives and two kinds of negatives) gives row r the key (row_keys[r % B], r / B).
  void begin(uint64_t seed, std::vector<int64_t> row_keys);
  void end();
  bool keyed() const { return keyed_; }
  /// Marks the start of a top-level pass (queries, text, multimodal, decode): passes are counted
  /// from begin(), in the order the step makes them, which every process and every resume shares.
  void next_pass() { ++pass_; }
  /// x with each element zeroed with probability p and the rest scaled by 1 / (1 - p); `site`
  /// names the place in the model. Unkeyed: torch's dropout.
  at::Tensor apply(const at::Tensor& x, double p, uint64_t site) const;

 private:
  bool keyed_ = false;
  uint64_t seed_ = 0;
  uint64_t pass_ = 0;
  std::vector<int64_t> keys_;
};

/// Installs keys on several models' DropoutKeys for a scope (a training step's forward);
/// model i's masks are salted with i, so two Q-Formers never share a mask.
class DropoutKeyScope {
 public:
  DropoutKeyScope(std::vector<std::shared_ptr<DropoutKeys>> keys, uint64_t seed, const std::vector<int64_t>& row_keys);
  ~DropoutKeyScope();
  DropoutKeyScope(const DropoutKeyScope&) = delete;
  DropoutKeyScope& operator=(const DropoutKeyScope&) = delete;

 private:
  std::vector<std::shared_ptr<DropoutKeys>> keys_;
};

namespace detail {
/// The keep mask [rows, per_row] (bool) of rows whose 31-bit seeds are `seeds` [rows] (int64):
/// element j of row r is kept when hash(hash(j) + seeds[r]) >= threshold. `loop`: computed by a
/// plain loop (CPU tensors only), else by tensor ops on the seeds' device; both give equal masks.
at::Tensor keyed_keep_mask(const at::Tensor& seeds, int64_t per_row, int64_t threshold, bool loop);
}  // namespace detail

/// One dropout site of a module: its probability and place, and the model's shared keys.
struct DropoutSite {
  std::shared_ptr<DropoutKeys> keys;
  double p = 0.0;
  uint64_t site = 0;
  /// x unchanged unless `training` and p > 0.
  at::Tensor operator()(const at::Tensor& x, bool training) const {
    return training && p > 0.0 && keys ? keys->apply(x, p, site) : x;
  }
};

}  // namespace msmedcap::models
