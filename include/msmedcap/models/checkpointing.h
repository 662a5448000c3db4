#pragma once
/// Activation checkpointing, as torch.utils.checkpoint's reentrant form: the forward keeps only
/// the block's input; the backward runs the block again with gradient and back-propagates
/// through it (parameter gradients accumulate as usual). Memory falls to one block's
/// activations at the price of a second forward. The block must be deterministic (no dropout)
/// and its input must require gradient, or nothing inside it receives one.

#include <functional>

#include <torch/types.h>

namespace msmedcap::models {

using Block = std::function<torch::Tensor(const torch::Tensor&)>;

/// block(x), recomputed in the backward instead of kept.
torch::Tensor checkpointed(const Block& block, const torch::Tensor& x);

}  // namespace msmedcap::models
