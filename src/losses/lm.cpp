#include "msmedcap/losses/lm.h"

#include <torch/torch.h>

#include "msmedcap/core/check.h"
#include "msmedcap/losses/itg.h"

namespace msmedcap::losses {

torch::Tensor lm_targets(const torch::Tensor& ids, const torch::Tensor& mask, int64_t prefix,
                         const std::vector<int64_t>& prompt_lengths) {
  MSMEDCAP_CHECK(ids.dim() == 2 && ids.sizes() == mask.sizes(), "lm: ids and mask must be [B, T], got ", ids.sizes(),
                 " and ", mask.sizes());
  MSMEDCAP_CHECK(prompt_lengths.empty() || static_cast<int64_t>(prompt_lengths.size()) == ids.size(0),
                 "lm: ", prompt_lengths.size(), " prompt lengths for ", ids.size(0), " rows");
  auto text = ids.masked_fill(mask.eq(0), kIgnoreIndex);
  for (size_t b = 0; b < prompt_lengths.size(); ++b) {
    const int64_t n = std::min<int64_t>(prompt_lengths[b], ids.size(1));
    if (n > 0) text[static_cast<int64_t>(b)].narrow(0, 0, n).fill_(kIgnoreIndex);
  }
  return torch::cat({torch::full({ids.size(0), prefix}, kIgnoreIndex, text.options()), text}, 1);
}

torch::Tensor lm_loss(const torch::Tensor& logits, const torch::Tensor& targets) {
  return next_token_loss(logits, targets, 0.0);
}

torch::Tensor caption_loss(models::MsMedCapModelImpl& model, const models::VisualPrefix* prefix,
                           const torch::Tensor& ids, const torch::Tensor& mask,
                           const std::vector<int64_t>& prompt_lengths) {
  if (prefix == nullptr) {
    auto& lm = *model.language_model;
    return lm_loss(lm.forward(lm.embed(ids), mask).to(torch::kFloat32), lm_targets(ids, mask, 0, prompt_lengths));
  }
  // Logits at [last prefix position, text]: targets are one ignored position, then the text's.
  const auto logits = model.forward_text(*prefix, ids, mask, {}, ids.size(1) + 1).logits;
  return lm_loss(logits.to(torch::kFloat32), lm_targets(ids, mask, 1, prompt_lengths));
}

}  // namespace msmedcap::losses
