#include "msmedcap/losses/itg.h"

#include <torch/torch.h>

#include "msmedcap/core/check.h"

namespace msmedcap::losses {

torch::Tensor next_token_loss(const torch::Tensor& logits, const torch::Tensor& labels, double label_smoothing) {
  MSMEDCAP_CHECK(
      logits.dim() == 3 && labels.dim() == 2 && logits.size(0) == labels.size(0) && logits.size(1) == labels.size(1),
      "next-token loss: logits [B, T, V] and labels [B, T] disagree: ", logits.sizes(), " vs ", labels.sizes());
  const int64_t v = logits.size(2), t = logits.size(1);
  const auto shifted = logits.narrow(1, 0, t - 1).reshape({-1, v});
  const auto target = labels.narrow(1, 1, t - 1).reshape({-1});
  MSMEDCAP_CHECK(target.ne(kIgnoreIndex).any().item<bool>(), "next-token loss: every label is ignored");
  return torch::nn::functional::cross_entropy(
      shifted.to(torch::kFloat32), target,
      torch::nn::functional::CrossEntropyFuncOptions().ignore_index(kIgnoreIndex).label_smoothing(label_smoothing));
}

std::pair<torch::Tensor, torch::Tensor> itg_inputs(const torch::Tensor& ids, const torch::Tensor& mask,
                                                   int64_t dec_id) {
  MSMEDCAP_CHECK(ids.dim() == 2 && ids.sizes() == mask.sizes(), "itg: ids and mask must be [B, T], got ", ids.sizes(),
                 " and ", mask.sizes());
  auto input = ids.clone();
  input.select(1, 0).fill_(dec_id);
  auto labels = input.masked_fill(mask.eq(0), kIgnoreIndex);
  return {input, labels};
}

}  // namespace msmedcap::losses
