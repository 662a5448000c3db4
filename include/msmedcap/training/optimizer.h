#pragma once
/// AdamW with LAVIS's parameter groups (weight decay on matrices, none on biases and 1-D
/// parameters), and its state as named tensors so that checkpoints stay safetensors (no pickle).

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/optim/adamw.h>

#include "msmedcap/config/train_config.h"
#include "msmedcap/io/tensor_store.h"

namespace msmedcap::training {

class Optimizer {
 public:
  /// `params`: the stage's trainable (name, parameter) pairs.
  Optimizer(const std::vector<std::pair<std::string, torch::Tensor>>& params, const config::OptimizerConfig& cfg);
  void set_lr(double lr);
  void zero_grad();
  void step();
  torch::optim::AdamW& adamw() { return *adamw_; }
  /// Names with weight decay, and without.
  const std::vector<std::string>& decayed() const { return decayed_; }
  const std::vector<std::string>& undecayed() const { return undecayed_; }

  /// Moments and step counts: "exp_avg.<name>", "exp_avg_sq.<name>", "step.<name>" (int64 [1]).
  io::StateDict state() const;
  /// Restores state(); throws naming the tensor when one is missing or has another shape.
  void load_state(const io::TensorSource& source);

 private:
  std::unique_ptr<torch::optim::AdamW> adamw_;
  std::vector<std::pair<std::string, torch::Tensor>> params_;
  std::vector<std::string> decayed_, undecayed_;
};

}  // namespace msmedcap::training
