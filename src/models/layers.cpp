#include "msmedcap/models/layers.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>

#include "msmedcap/core/check.h"

namespace msmedcap::models {

namespace {
thread_local bool defer_init = false;
}  // namespace

DeferInit::DeferInit() : previous_(defer_init) { defer_init = true; }
DeferInit::~DeferInit() { defer_init = previous_; }
bool DeferInit::active() { return defer_init; }

torch::Tensor init_normal(const std::vector<int64_t>& shape, double std) {
  auto t = at::empty(shape, at::kFloat);
  if (!defer_init) {
    torch::NoGradGuard no_grad;
    t.normal_(0.0, std);
  }
  return t;
}

namespace {
torch::Tensor init_zeros(int64_t n) {
  auto t = at::empty({n}, at::kFloat);
  if (!defer_init) t.zero_();
  return t;
}
}  // namespace

LinearImpl::LinearImpl(int64_t in_features, int64_t out_features, bool with_bias) {
  weight = register_parameter("weight", init_normal({out_features, in_features}));
  if (with_bias) bias = register_parameter("bias", init_zeros(out_features));
}

namespace {
/// Whether a product may read the packed copy: only where autograd records nothing through it.
bool use_packed(const PackedWeight& packed, const torch::Tensor& x, const torch::Tensor& weight) {
  return packed.defined() && (!at::GradMode::is_enabled() || (!x.requires_grad() && !weight.requires_grad()));
}
}  // namespace

torch::Tensor LinearImpl::forward(const torch::Tensor& x) {
  return use_packed(packed, x, weight) ? packed_linear(x, packed, bias) : at::linear(x, weight, bias);
}

void LinearImpl::pack(WeightFormat format) { packed = pack_weight(weight, format); }

void FusedLinear::pack(const std::vector<LinearImpl*>& parts, WeightFormat format) {
  MSMEDCAP_CHECK(!parts.empty(), "FusedLinear: no layers to fuse");
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> weights, biases;
  bool any_bias = false;
  for (auto* part : parts) any_bias = any_bias || part->bias.defined();
  widths_.clear();
  for (auto* part : parts) {
    MSMEDCAP_CHECK(part->weight.size(1) == parts.front()->weight.size(1), "FusedLinear: the layers read widths ",
                   parts.front()->weight.size(1), " and ", part->weight.size(1));
    weights.push_back(part->weight);
    widths_.push_back(part->weight.size(0));
    if (any_bias) {
      biases.push_back(part->bias.defined()
                           ? part->bias.to(at::kFloat)
                           : at::zeros({part->weight.size(0)}, part->weight.options().dtype(at::kFloat)));
    }
  }
  packed_ = pack_weight(at::cat(weights, 0), format);
  bias_ = any_bias ? at::cat(biases, 0) : torch::Tensor();
  for (auto* part : parts) part->packed = PackedWeight();  // the fused copy replaces theirs
  parts_ = parts;
}

bool FusedLinear::applies(const torch::Tensor& x) const {
  return !parts_.empty() && use_packed(packed_, x, parts_.front()->weight);
}

std::vector<torch::Tensor> FusedLinear::forward(const torch::Tensor& x) const {
  return packed_linear(x, packed_, bias_).split_with_sizes(widths_, -1);
}

void LinearImpl::reset_parameters(double std) {
  torch::NoGradGuard no_grad;
  weight.normal_(0.0, std);
  if (bias.defined()) bias.zero_();
}

torch::Tensor LayerNormImpl::forward(const torch::Tensor& x) {
  return torch::nn::LayerNormImpl::forward(x.scalar_type() == weight.scalar_type() ? x : x.to(weight.scalar_type()));
}

EmbeddingImpl::EmbeddingImpl(int64_t num_embeddings, int64_t embedding_dim) {
  weight = register_parameter("weight", init_normal({num_embeddings, embedding_dim}));
}

torch::Tensor EmbeddingImpl::forward(const torch::Tensor& ids) { return at::embedding(weight, ids); }

void EmbeddingImpl::reset_parameters(double std) {
  torch::NoGradGuard no_grad;
  weight.normal_(0.0, std);
}

Conv1DImpl::Conv1DImpl(int64_t in_features, int64_t out_features) {
  weight = register_parameter("weight", init_normal({in_features, out_features}));
  bias = register_parameter("bias", init_zeros(out_features));
}

torch::Tensor Conv1DImpl::forward(const torch::Tensor& x) {
  return use_packed(packed, x, weight) ? packed_linear(x, packed, bias) : at::matmul(x, weight) + bias;
}

void Conv1DImpl::pack(WeightFormat format) { packed = pack_weight(weight.t().contiguous(), format); }

void Conv1DImpl::reset_parameters(double std) {
  torch::NoGradGuard no_grad;
  weight.normal_(0.0, std);
  bias.zero_();
}

}  // namespace msmedcap::models
