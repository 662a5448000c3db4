#include "msmedcap/losses/itm.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "msmedcap/core/check.h"

namespace msmedcap::losses {
namespace {

/// One draw per row of softmax(logits) with `positives` excluded; uniform over the negatives
/// where the softmax is not a distribution.
torch::Tensor draw(const torch::Tensor& logits, const torch::Tensor& positives, at::Generator& gen) {
  torch::NoGradGuard no_grad;
  const auto neg = positives.logical_not().to(torch::kCPU);
  MSMEDCAP_CHECK(neg.any(1).all().item<bool>(), "itm: a row has no negative (every pair is a positive)");
  auto w = torch::softmax(logits.detach().to(torch::kCPU, torch::kFloat32).masked_fill(positives.to(torch::kCPU), -INFINITY), 1);
  const auto sums = w.sum(1);
  const auto bad = torch::isfinite(w).all(1).logical_not().logical_or(sums <= 0).logical_or(torch::isfinite(sums).logical_not());
  if (bad.any().item<bool>()) {
    const auto uniform = neg.to(torch::kFloat32) / neg.sum(1, true).to(torch::kFloat32);
    w = torch::where(bad.view({-1, 1}), uniform, w);
  }
  w = w * neg.to(torch::kFloat32);  // exact zeros on the positives
  return torch::multinomial(w, 1, false, gen).view({-1});
}

}  // namespace

HardNegatives sample_hard_negatives(const torch::Tensor& sim_i2t, const torch::Tensor& sim_t2i, const torch::Tensor& positives,
                                    uint64_t seed) {
  MSMEDCAP_CHECK(sim_i2t.sizes() == sim_t2i.sizes() && sim_i2t.sizes() == positives.sizes(),
                 "itm: similarities and positives must share [B, B*W], got ", sim_i2t.sizes(), ", ", sim_t2i.sizes(),
                 " and ", positives.sizes());
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  HardNegatives out;
  out.image_index = draw(sim_t2i, positives, gen).to(sim_t2i.device());  // a hard image for each text
  out.text_index = draw(sim_i2t, positives, gen).to(sim_i2t.device());   // a hard text for each image
  return out;
}

torch::Tensor itm_loss(const torch::Tensor& logits) {
  MSMEDCAP_CHECK(logits.dim() == 2 && logits.size(1) == 2 && logits.size(0) % 3 == 0,
                 "itm: logits must be [3B, 2], got ", logits.sizes());
  const int64_t b = logits.size(0) / 3;
  auto labels = torch::zeros({3 * b}, torch::TensorOptions().dtype(torch::kLong).device(logits.device()));
  labels.narrow(0, 0, b).fill_(1);
  return torch::nn::functional::cross_entropy(logits, labels);
}

}  // namespace msmedcap::losses
