#include "msmedcap/losses/itc.h"

#include <torch/torch.h>

#include "msmedcap/core/check.h"
#include "msmedcap/core/compat.h"

namespace msmedcap::losses {

torch::Tensor itc_positives(int64_t batch, int64_t total, int64_t rank, const torch::Tensor& image_ids,
                            const torch::Tensor& image_ids_all, const c10::Device& device) {
  if (image_ids.defined()) {
    MSMEDCAP_CHECK(image_ids_all.defined() && image_ids.size(0) == batch && image_ids_all.size(0) == total,
                   "itc: image ids must be [B] and [B*W], got ", image_ids.sizes(), " and ",
                   image_ids_all.defined() ? image_ids_all.sizes() : c10::IntArrayRef{});
    return image_ids.to(device).view({batch, 1}).eq(image_ids_all.to(device).view({1, total}));  // [B, B*W]
  }
  auto pos = torch::zeros({batch, total}, torch::TensorOptions().dtype(torch::kBool).device(device));
  pos.narrow(1, rank * batch, batch).fill_diagonal_(true);
  return pos;
}

ItcResult itc_loss(const torch::Tensor& image_feats, const torch::Tensor& text_feat,
                   const torch::Tensor& image_feats_all, const torch::Tensor& text_feat_all, const torch::Tensor& temp,
                   int64_t rank, double label_smoothing, const torch::Tensor& image_ids,
                   const torch::Tensor& image_ids_all) {
  MSMEDCAP_CHECK(image_feats.dim() == 3 && text_feat.dim() == 2 && image_feats.size(0) == text_feat.size(0) &&
                     image_feats.size(2) == text_feat.size(1),
                 "itc: expected image_feats [B, Nq, E] and text_feat [B, E], got ", image_feats.sizes(), " and ",
                 text_feat.sizes());
  const int64_t b = image_feats.size(0), total = text_feat_all.size(0);
  MSMEDCAP_CHECK(image_feats_all.size(0) == total && (rank + 1) * b <= total, "itc: gathered features hold ", total,
                 " rows, rank ", rank, " needs rows ", rank * b, "..", (rank + 1) * b);
  ItcResult out;
  // sim_q2t[i, j, q] = <image_feats[i, q], text_feat_all[j]>; max over the queries.
  const auto sim_q2t = torch::einsum("iqe,je->ijq", {image_feats, text_feat_all});  // [B, B*W, Nq]
  // Float32 logits, as the LM losses take: under bf16 autocast the products come out in bf16,
  // and a softmax and mean over the batch in bf16 keep two or three digits of the loss.
  out.sim_i2t = core::at_least_float(std::get<0>(sim_q2t.max(-1))) / temp;
  const auto sim_t2q = torch::einsum("ie,jqe->ijq", {text_feat, image_feats_all});  // [B, B*W, Nq]
  out.sim_t2i = core::at_least_float(std::get<0>(sim_t2q.max(-1))) / temp;
  if (!image_ids.defined()) {
    const auto targets =
        torch::arange(rank * b, rank * b + b, torch::TensorOptions().dtype(torch::kLong).device(image_feats.device()));
    const auto opts = torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(label_smoothing);
    out.loss = (torch::nn::functional::cross_entropy(out.sim_i2t, targets, opts) +
                torch::nn::functional::cross_entropy(out.sim_t2i, targets, opts)) /
               2;
    return out;
  }
  const auto pos =
      itc_positives(b, total, rank, image_ids, image_ids_all, image_feats.device()).to(out.sim_i2t.dtype());
  const auto soft = (1.0 - label_smoothing) * pos / pos.sum(1, true) + label_smoothing / static_cast<double>(total);
  const auto ce = [&](const torch::Tensor& logits) { return -(torch::log_softmax(logits, 1) * soft).sum(1).mean(); };
  out.loss = (ce(out.sim_i2t) + ce(out.sim_t2i)) / 2;
  return out;
}

}  // namespace msmedcap::losses
