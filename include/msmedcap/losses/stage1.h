#pragma once
/// The stage-1 objective of one branch (MODEL_REFERENCE.md §2.4-2.6): ITC + ITM + ITG on the
/// branch's Q-Former, unweighted, as LAVIS's Blip2Qformer.forward. The queries' self-attention
/// keys/values of the ITC pass are reused by ITG (not recomputed).

#include <cstdint>
#include <functional>

#include <torch/types.h>

#include "msmedcap/models/msmedcap.h"

namespace msmedcap::losses {

/// What a multi-process run supplies; one process: rank 0, world 1, identity gathers.
struct Collectives {
  int64_t rank = 0;
  int64_t world_size = 1;
  /// all_gather along dim 0 without gradient (LAVIS concat_all_gather).
  std::function<torch::Tensor(const torch::Tensor&)> gather;
  /// all_gather along dim 0 keeping the gradient of this rank's slice (all_gather_with_grad).
  std::function<torch::Tensor(const torch::Tensor&)> gather_with_grad;
};

struct Stage1Batch {
  models::ImageInputs images;  // pixels or cached features of the branch
  torch::Tensor text_ids;      // [B, T] WordPiece: [CLS] ... [SEP], padding 0
  torch::Tensor text_mask;     // [B, T]
  torch::Tensor image_ids;     // [B] int64 or undefined (then each pair is its own positive)
};

struct Stage1Losses {
  torch::Tensor itc, itm, itg, total;  // () each
};

/// The losses of `sam_branch` (or the CLIP branch) of `model` on `batch`. `dec_id`: the
/// tokenizer's [DEC]; `seed`: the hard-negative draws (vary it per step and rank).
Stage1Losses stage1_losses(models::MsMedCapModelImpl& model, bool sam_branch, const Stage1Batch& batch, int64_t dec_id,
                           uint64_t seed, const Collectives& collectives = {});

}  // namespace msmedcap::losses
