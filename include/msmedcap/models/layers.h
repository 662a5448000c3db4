#pragma once
/// The layers that hold almost all of a model's weights (Linear, Embedding, GPT-2's Conv1D),
/// written so that a model whose weights will be loaded is built without initialising them.
/// LibTorch's own torch::nn::Linear and Embedding draw random values in their constructors; at
/// full size that writes every byte of a float32 model (15 GB for BLIP-2 OPT-2.7b) only for the
/// loader to overwrite it. Here, while a DeferInit guard is alive on the thread, these layers
/// allocate their parameters with at::empty and write nothing: the pages are never touched, so
/// they cost no memory until the loader replaces them (docs/LOADING.md).
/// Without the guard they are initialised as HuggingFace's `_init_weights` does: weights
/// N(0, 0.02), biases 0.

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <vector>

#include "msmedcap/models/packed_linear.h"

namespace msmedcap::models {

/// While alive, Linear, Embedding, Conv1D and init_param() leave parameters uninitialised on
/// this thread. Whoever holds it must then load or initialise every parameter (load_model does).
class DeferInit {
 public:
  DeferInit();
  ~DeferInit();
  DeferInit(const DeferInit&) = delete;
  DeferInit& operator=(const DeferInit&) = delete;
  /// True while a guard is alive on this thread.
  static bool active();

 private:
  bool previous_;
};

/// The standard deviation of HF's initialisation of these layers (initializer_range).
inline constexpr double kInitStd = 0.02;

/// A float32 tensor of `shape` drawn from N(0, std), or left unwritten under DeferInit.
torch::Tensor init_normal(const std::vector<int64_t>& shape, double std = kInitStd);

/// y = x W^T + b with W [out, in] (the layout of torch.nn.Linear and of HF checkpoints).
class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(int64_t in_features, int64_t out_features, bool bias = true);
  torch::Tensor forward(const torch::Tensor& x);
  /// HF's initialisation: weight N(0, std), bias 0.
  void reset_parameters(double std = kInitStd);
  /// From now on products read a copy of the weight in `format` (packed_linear.h) whenever no
  /// gradient is recorded; `weight` stays as it is (for saving, and for training). Inference only:
  /// a later change of `weight` is not seen by the packed copy.
  void pack(WeightFormat format);
  torch::Tensor weight, bias;  ///< bias undefined without one
  PackedWeight packed;         ///< undefined until pack()
};
TORCH_MODULE(Linear);

/// Linear layers that read the same input, packed as one product (a decoder's q, k and v; LLaMA's
/// gate and up): one pass over the input and one call where there were several. Inference only,
/// as LinearImpl::pack; the parts keep their weights and give up their own packed copies.
class FusedLinear {
 public:
  /// Packs the parts' weights [sum of outs, in] (and biases: zeros for a part without one) in
  /// `format`; the parts must read the same width and outlive this.
  void pack(const std::vector<LinearImpl*>& parts, WeightFormat format);
  /// Whether forward may take the fused product for x: packed, and no gradient recorded.
  bool applies(const torch::Tensor& x) const;
  /// The parts' outputs for x, in their order (views of one product's columns).
  std::vector<torch::Tensor> forward(const torch::Tensor& x) const;

 private:
  PackedWeight packed_;
  torch::Tensor bias_;
  std::vector<int64_t> widths_;
  std::vector<LinearImpl*> parts_;
};

/// torch.nn.LayerNorm that first brings its input to its weights' dtype. Under CPU autocast
/// (train.precision bf16 on the CPU) a product hands it bf16 while its weights stay float32, which
/// LibTorch's CPU kernel refuses; CUDA autocast runs layer_norm in float32 itself. Either way the
/// normalised output is then float32, and without autocast nothing changes.
class LayerNormImpl : public torch::nn::LayerNormImpl {
 public:
  using torch::nn::LayerNormImpl::LayerNormImpl;
  torch::Tensor forward(const torch::Tensor& x);
};
TORCH_MODULE(LayerNorm);

/// Rows of a [num, dim] table by id.
class EmbeddingImpl : public torch::nn::Module {
 public:
  EmbeddingImpl(int64_t num_embeddings, int64_t embedding_dim);
  torch::Tensor forward(const torch::Tensor& ids);
  void reset_parameters(double std = kInitStd);
  torch::Tensor weight;
};
TORCH_MODULE(Embedding);

/// HF's GPT-2 Conv1D: a linear layer whose weight is stored [in, out].
class Conv1DImpl : public torch::nn::Module {
 public:
  Conv1DImpl(int64_t in_features, int64_t out_features);
  torch::Tensor forward(const torch::Tensor& x);
  void reset_parameters(double std = kInitStd);
  /// As LinearImpl::pack (the packed copy is stored [out, in]).
  void pack(WeightFormat format);
  torch::Tensor weight, bias;
  PackedWeight packed;
};
TORCH_MODULE(Conv1D);

}  // namespace msmedcap::models
