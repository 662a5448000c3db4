#include "msmedcap/losses/lm.h"

#include <torch/torch.h>

#include "msmedcap/core/check.h"
#include "msmedcap/core/hash.h"
#include "msmedcap/losses/itg.h"

namespace msmedcap::losses {

torch::Tensor lm_targets(const torch::Tensor& ids, const torch::Tensor& mask, int64_t prefix,
                         const std::vector<int64_t>& prompt_lengths, const torch::Tensor& unscored) {
  MSMEDCAP_CHECK(ids.dim() == 2 && ids.sizes() == mask.sizes(), "lm: ids and mask must be [B, T], got ", ids.sizes(),
                 " and ", mask.sizes());
  MSMEDCAP_CHECK(prompt_lengths.empty() || static_cast<int64_t>(prompt_lengths.size()) == ids.size(0),
                 "lm: ", prompt_lengths.size(), " prompt lengths for ", ids.size(0), " rows");
  auto text = ids.masked_fill(mask.eq(0), kIgnoreIndex);
  if (unscored.defined()) {
    MSMEDCAP_CHECK(unscored.sizes() == ids.sizes() && unscored.scalar_type() == torch::kBool,
                   "lm: unscored must be bool [B, T] as ids ", ids.sizes(), ", got ", unscored.sizes());
    text.masked_fill_(unscored.to(text.device()), kIgnoreIndex);
  }
  for (size_t b = 0; b < prompt_lengths.size(); ++b) {
    const int64_t n = std::min<int64_t>(prompt_lengths[b], ids.size(1));
    if (n > 0) text[static_cast<int64_t>(b)].narrow(0, 0, n).fill_(kIgnoreIndex);
  }
  return torch::cat({torch::full({ids.size(0), prefix}, kIgnoreIndex, text.options()), text}, 1);
}

torch::Tensor lm_loss(const torch::Tensor& logits, const torch::Tensor& targets) {
  return next_token_loss(logits, targets, 0.0);
}

torch::Tensor drop_words(const torch::Tensor& ids, const torch::Tensor& mask,
                         const std::vector<int64_t>& prompt_lengths, double p, int64_t replacement, uint64_t seed,
                         const std::vector<int64_t>& keys) {
  MSMEDCAP_CHECK(ids.dim() == 2 && ids.sizes() == mask.sizes(), "word dropout: ids and mask must be [B, T], got ",
                 ids.sizes(), " and ", mask.sizes());
  MSMEDCAP_CHECK(p >= 0 && p < 1, "word dropout: p must be in [0, 1), got ", p);
  MSMEDCAP_CHECK(static_cast<int64_t>(keys.size()) == ids.size(0) &&
                     (prompt_lengths.empty() || static_cast<int64_t>(prompt_lengths.size()) == ids.size(0)),
                 "word dropout: ", keys.size(), " keys and ", prompt_lengths.size(), " prompt lengths for ",
                 ids.size(0), " rows");
  if (p == 0) return ids;
  const auto m = mask.to(torch::kCPU, torch::kLong).contiguous();
  const auto* mp = m.data_ptr<int64_t>();
  const int64_t rows = ids.size(0), cols = ids.size(1);
  auto drop = torch::zeros({rows, cols}, torch::kBool);
  auto* dp = drop.data_ptr<bool>();
  for (int64_t b = 0; b < rows; ++b) {
    const int64_t first = std::max<int64_t>(1, prompt_lengths.empty() ? 0 : prompt_lengths[static_cast<size_t>(b)]);
    for (int64_t t = first; t < cols; ++t) {
      if (mp[b * cols + t] == 0) continue;
      dp[b * cols + t] = core::keyed_uniform(seed, 0x776f7264ULL, static_cast<uint64_t>(keys[static_cast<size_t>(b)]),
                                             static_cast<uint64_t>(t)) < p;
    }
  }
  return ids.masked_fill(drop.to(ids.device()), replacement);
}

torch::Tensor caption_loss(models::MsMedCapModelImpl& model, const models::VisualPrefix* prefix,
                           const torch::Tensor& ids, const torch::Tensor& mask,
                           const std::vector<int64_t>& prompt_lengths, const torch::Tensor& inputs,
                           const torch::Tensor& unscored) {
  const auto& read = inputs.defined() ? inputs : ids;
  MSMEDCAP_CHECK(read.sizes() == ids.sizes(), "lm: inputs ", read.sizes(), " do not match ids ", ids.sizes());
  if (prefix == nullptr) {
    auto& lm = *model.language_model;
    return lm_loss(lm.forward(lm.embed(read), mask).to(torch::kFloat32),
                   lm_targets(ids, mask, 0, prompt_lengths, unscored));
  }
  // Logits at [last prefix position, text]: targets are one ignored position, then the text's.
  const auto logits = model.forward_text(*prefix, read, mask, {}, ids.size(1) + 1).logits;
  return lm_loss(logits.to(torch::kFloat32), lm_targets(ids, mask, 1, prompt_lengths, unscored));
}

}  // namespace msmedcap::losses
