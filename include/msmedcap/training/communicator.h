#pragma once
/// What the training step needs from the other processes of a job, behind one interface: the
/// local one (a single process: sums and minima are the values themselves, no gradient moves)
/// and one over a c10d process group (training/distributed.h). The trainer and the step never
/// ask whether they run alone.

#include <cstdint>
#include <memory>
#include <vector>

#include <ATen/core/Tensor.h>

#include "msmedcap/losses/stage1.h"

namespace msmedcap::training {

class Distributed;

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int64_t rank() const = 0;
  virtual int64_t world_size() const = 0;
  /// Rank 0: the process that writes the run folder and logs.
  bool leader() const { return rank() == 0; }

  /// Sums `values` over ranks in place (in float64).
  virtual void sum(std::vector<double>& values) = 0;
  /// The smallest `value` of all ranks.
  virtual int64_t min(int64_t value) = 0;
  /// Averages the gradients of `params` over ranks (buckets of at most `bucket_bytes`).
  virtual void average_gradients(const std::vector<at::Tensor>& params, int64_t bucket_bytes) = 0;
  /// Rank 0's values into every rank's `params`.
  virtual void broadcast_parameters(const std::vector<at::Tensor>& params) = 0;
  virtual void barrier() = 0;
  /// The gathers stage 1's losses use (identity for one process).
  virtual losses::Collectives collectives() = 0;
};

/// This process alone.
std::unique_ptr<Communicator> local_communicator();
/// Every rank of `group` (which must outlive the communicator).
std::unique_ptr<Communicator> group_communicator(Distributed& group);

}  // namespace msmedcap::training
