#pragma once
/// Image-grounded text generation (docs/MODEL.md, "Stage-1 losses"): the Q-Former's next-token
/// cross entropy with label smoothing 0.1 over `[DEC]`-started text, the text seeing every query.

#include <cstdint>
#include <utility>

#include <torch/types.h>

namespace msmedcap::losses {

/// Ignored label value.
constexpr int64_t kIgnoreIndex = -100;

/// Mean next-token cross entropy: logits [B, T, V] predict labels [B, T] shifted by one
/// (logits[:, :-1] against labels[:, 1:]); kIgnoreIndex entries do not count.
torch::Tensor next_token_loss(const torch::Tensor& logits, const torch::Tensor& labels, double label_smoothing);

/// ITG labels and decoder input of WordPiece ids [B, T] ([CLS] first, pad 0): the input has
/// [CLS] replaced by [DEC]; labels are the input with padding set to kIgnoreIndex.
std::pair<torch::Tensor, torch::Tensor> itg_inputs(const torch::Tensor& ids, const torch::Tensor& mask, int64_t dec_id);

}  // namespace msmedcap::losses
