#include "msmedcap/losses/itm.h"

#include <cmath>
#include <limits>

#include <torch/torch.h>

#include "msmedcap/core/check.h"
#include "msmedcap/core/compat.h"
#include "msmedcap/core/hash.h"

namespace msmedcap::losses {
namespace {

/// One draw per row of softmax(logits) with `positives` excluded, by the Gumbel-max trick: the
/// argmax over columns of logit + Gumbel noise keyed by (row key, column key). Rows that are not
/// finite (NaN, overflow) draw uniformly over the negatives.
torch::Tensor draw(const torch::Tensor& logits, const torch::Tensor& positives, const torch::Tensor& row_keys,
                   const torch::Tensor& col_keys, uint64_t seed, uint64_t direction) {
  torch::NoGradGuard no_grad;
  const auto pos = positives.to(torch::kCPU).contiguous();
  const auto neg = pos.logical_not();
  MSMEDCAP_CHECK(neg.any(1).all().item<bool>(), "itm: a row has no negative (every pair is a positive)");
  const auto w = logits.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  const int64_t rows = w.size(0), cols = w.size(1);
  const auto rk = row_keys.to(torch::kCPU, torch::kLong).contiguous();
  const auto ck = col_keys.to(torch::kCPU, torch::kLong).contiguous();
  const double* wp = w.data_ptr<double>();
  const bool* pp = pos.data_ptr<bool>();
  const int64_t* rkp = rk.data_ptr<int64_t>();
  const int64_t* ckp = ck.data_ptr<int64_t>();
  auto out = torch::empty({rows}, torch::kLong);
  int64_t* op = out.data_ptr<int64_t>();
  for (int64_t i = 0; i < rows; ++i) {
    const double* row = wp + i * cols;
    bool finite = true;
    for (int64_t j = 0; j < cols && finite; ++j) finite = pp[i * cols + j] || std::isfinite(row[j]);
    double best = -std::numeric_limits<double>::infinity();
    int64_t pick = -1;
    for (int64_t j = 0; j < cols; ++j) {
      if (pp[i * cols + j]) continue;
      const double g = -std::log(-std::log(
          core::keyed_uniform(seed, direction, static_cast<uint64_t>(rkp[i]), static_cast<uint64_t>(ckp[j]))));
      const double score = (finite ? row[j] : 0.0) + g;
      if (pick < 0 || score > best) {
        best = score;
        pick = j;
      }
    }
    op[i] = pick;
  }
  return out;
}

}  // namespace

HardNegatives sample_hard_negatives(const torch::Tensor& sim_i2t, const torch::Tensor& sim_t2i,
                                    const torch::Tensor& positives, uint64_t seed, const torch::Tensor& row_keys,
                                    const torch::Tensor& col_keys) {
  MSMEDCAP_CHECK(sim_i2t.sizes() == sim_t2i.sizes() && sim_i2t.sizes() == positives.sizes() && sim_i2t.dim() == 2,
                 "itm: similarities and positives must share [B, B*W], got ", sim_i2t.sizes(), ", ", sim_t2i.sizes(),
                 " and ", positives.sizes());
  const auto rows = row_keys.defined() ? row_keys : torch::arange(sim_i2t.size(0), torch::kLong);
  const auto cols = col_keys.defined() ? col_keys : torch::arange(sim_i2t.size(1), torch::kLong);
  MSMEDCAP_CHECK(rows.numel() == sim_i2t.size(0) && cols.numel() == sim_i2t.size(1), "itm: keys ", rows.sizes(),
                 " and ", cols.sizes(), " do not match similarities ", sim_i2t.sizes());
  HardNegatives out;
  out.image_index = draw(sim_t2i, positives, rows, cols, seed, 1).to(sim_t2i.device());  // a hard image for each text
  out.text_index = draw(sim_i2t, positives, rows, cols, seed, 2).to(sim_i2t.device());   // a hard text for each image
  return out;
}

torch::Tensor itm_loss(const torch::Tensor& logits) {
  MSMEDCAP_CHECK(logits.dim() == 2 && logits.size(1) == 2 && logits.size(0) % 3 == 0,
                 "itm: logits must be [3B, 2], got ", logits.sizes());
  const int64_t b = logits.size(0) / 3;
  auto labels = torch::zeros({3 * b}, torch::TensorOptions().dtype(torch::kLong).device(logits.device()));
  labels.narrow(0, 0, b).fill_(1);
  return torch::nn::functional::cross_entropy(core::at_least_float(logits), labels);  // float32 logits, as ITC's
}

}  // namespace msmedcap::losses
