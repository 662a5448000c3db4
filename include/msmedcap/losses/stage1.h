#pragma once
/// The stage-1 objective of one branch (docs/MODEL.md, "Stage-1 losses"): ITC + ITM + ITG on the
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
  /// all_gather along dim 0 with gradient: the backward sums the gradients over ranks and keeps
  /// this rank's slice (LAVIS's GatherLayer).
  std::function<torch::Tensor(const torch::Tensor&)> gather_with_grad;
  /// Sum of a number over ranks (token counts); empty = identity.
  std::function<double(double)> sum;
};

/// `loss`, a next-token mean over this rank's `labels` [B, T] (labels[:, 1:] not kIgnoreIndex
/// count), rescaled so that the mean of the ranks' values is the mean over every rank's tokens
/// (what one process on the union computes). One process: `loss` unchanged, nothing counted.
torch::Tensor token_mean_over_ranks(const torch::Tensor& loss, const torch::Tensor& labels,
                                    const Collectives& collectives);

struct Stage1Batch {
  models::ImageInputs images;  // pixels or cached features of the branch
  torch::Tensor text_ids;      // [B, T] WordPiece: [CLS] ... [SEP], padding 0
  torch::Tensor text_mask;     // [B, T]
  torch::Tensor image_ids;     // [B] int64 or undefined (then each pair is its own positive)
  /// [B] int64 keys naming the samples (e.g. their positions in the epoch), unique over the
  /// ranks' batches; hard negatives are keyed by them. Undefined: rank * B + row.
  torch::Tensor keys;
};

struct Stage1Losses {
  torch::Tensor itc, itm, itg, total;  // () each
};

/// The losses of `branch` of `model` on `batch`. `dec_id`: the
/// tokenizer's [DEC]; `seed`: the hard-negative draws (vary it per step, the same on every rank).
/// The ITC features are gathered with gradient (LAVIS's GatherLayer semantics), so a step on N
/// ranks equals a step on one process over the union of their batches.
Stage1Losses stage1_losses(models::MsMedCapModelImpl& model, config::Branch branch, const Stage1Batch& batch,
                           int64_t dec_id, uint64_t seed, const Collectives& collectives = {});

}  // namespace msmedcap::losses
