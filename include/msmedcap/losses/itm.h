#pragma once
/// Image-text matching with hard negatives mined from the ITC similarities (docs/MODEL.md,
/// "Stage-1 losses"): for each text a negative image, for each image a negative text, drawn from
/// the softmax of the similarities with the positives masked out. The softmax is computed in
/// float32 and rows that are not a distribution (NaN, infinite, all zero) fall back to uniform over
/// the negatives (LAVIS#107 crashes instead). Draws are Gumbel-max with noise keyed by (seed, row
/// sample, column sample): a resumed run samples the same negatives, and so does a run split over
/// any number of ranks (LAVIS's multinomial depends on the batch layout).

#include <cstdint>

#include <torch/types.h>

namespace msmedcap::losses {

struct HardNegatives {
  torch::Tensor image_index;  // [B] into the gathered images: the negative image of each text
  torch::Tensor text_index;   // [B] into the gathered texts: the negative text of each image
};

/// sim_i2t / sim_t2i: [B, B*W]; positives: [B, B*W] bool (losses::itc_positives); row_keys [B]
/// and col_keys [B*W]: int64 keys naming the samples of the rows and of the gathered columns
/// (default 0..B-1 and 0..B*W-1).
HardNegatives sample_hard_negatives(const torch::Tensor& sim_i2t, const torch::Tensor& sim_t2i,
                                    const torch::Tensor& positives, uint64_t seed, const torch::Tensor& row_keys = {},
                                    const torch::Tensor& col_keys = {});

/// Cross entropy of ITM logits [3B, 2] for the layout [positives, negative images, negative
/// texts]: labels 1 for the first B rows, 0 for the rest (no label smoothing).
torch::Tensor itm_loss(const torch::Tensor& logits);

}  // namespace msmedcap::losses
