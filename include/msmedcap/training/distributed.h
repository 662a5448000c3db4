#pragma once
/// Several processes through torch.distributed's c10d: Gloo on CPU, NCCL on CUDA (when LibTorch
/// was built with it). The rendezvous comes from torchrun's environment (RANK, WORLD_SIZE,
/// LOCAL_RANK, MASTER_ADDR, MASTER_PORT) or Slurm's (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID,
/// with MASTER_ADDR/MASTER_PORT or the first host of SLURM_JOB_NODELIST and port 29500).
/// Gradients are averaged with all-reduce in buckets, as DistributedDataParallel does.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "msmedcap/losses/stage1.h"

namespace msmedcap::training {

/// Where this process sits in the job.
struct DistEnv {
  int64_t rank = 0;
  int64_t world_size = 1;
  int64_t local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int64_t master_port = 29500;
  /// "single", "torchrun" or "slurm".
  std::string source = "single";

  /// Reads `env` (name -> value; the process environment when empty): torchrun's variables win,
  /// then Slurm's, else one process. Throws naming the variable when one is malformed.
  static DistEnv from_environment(const std::map<std::string, std::string>& env = {});
};

/// The first host of a Slurm node list ("gpu[03-05,9],cpu1" -> "gpu03").
std::string first_slurm_host(const std::string& nodelist);

/// A process group over every rank of the job.
class Distributed {
 public:
  /// Joins the group (rank 0 hosts the TCP store); Gloo for a CPU device, NCCL for CUDA.
  Distributed(const DistEnv& env, const c10::Device& device, int64_t timeout_s = 300);
  ~Distributed();
  Distributed(const Distributed&) = delete;
  Distributed& operator=(const Distributed&) = delete;

  int64_t rank() const { return env_.rank; }
  int64_t world_size() const { return env_.world_size; }
  /// "gloo" or "nccl".
  const std::string& backend() const { return backend_; }

  /// Sums `t` over ranks in place.
  void all_reduce_sum(at::Tensor& t);
  /// Element-wise maximum over ranks in place.
  void all_reduce_max(at::Tensor& t);
  /// Every rank's `t` concatenated along dim 0 (rank order); equal shapes on every rank.
  at::Tensor all_gather(const at::Tensor& t);
  /// Rank `root`'s `t` copied into every rank's `t`.
  void broadcast(at::Tensor& t, int64_t root = 0);
  void barrier();

  /// Averages the gradients of `params` over ranks, flattened into buckets of at most
  /// `bucket_bytes` (a parameter without a gradient contributes zeros).
  void average_gradients(const std::vector<at::Tensor>& params, int64_t bucket_bytes);
  /// Rank 0's values into every rank's `params` (start-up, as DDP does).
  void broadcast_parameters(const std::vector<at::Tensor>& params);

  /// The stage-1 collectives over this group: gather without gradient, and gather whose
  /// backward sums gradients over ranks and keeps this rank's slice (LAVIS's GatherLayer).
  losses::Collectives collectives();

 private:
  struct Impl;
  DistEnv env_;
  std::string backend_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace msmedcap::training
