#pragma once
/// Image-text contrastive loss as LAVIS's Blip2Qformer computes it (docs/MODEL.md, "Stage-1
/// losses"): the similarity of an image and a text is the max over the image's query features of
/// the cosine with the text's [CLS] feature, divided by a learnable temperature (not clamped);
/// cross entropy both ways with label smoothing 0.1 against this rank's slice of the features
/// gathered over ranks. With image ids, every pair of the same image is a positive (soft targets
/// 0.9 * pos / |pos| + 0.1 / N, LAVIS's retrieval variant).

#include <torch/types.h>

namespace msmedcap::losses {

struct ItcResult {
  torch::Tensor loss;     // ()
  torch::Tensor sim_i2t;  // [B, B*W] image-to-text logits (already / temp)
  torch::Tensor sim_t2i;  // [B, B*W]
};

/// image_feats: [B, Nq, E] and text_feat: [B, E], L2-normalised; image_feats_all: [B*W, Nq, E]
/// and text_feat_all: [B*W, E], the same gathered over ranks (this rank's rows at rank*B);
/// temp: () learnable; image_ids / image_ids_all: [B] / [B*W] int64, or undefined.
ItcResult itc_loss(const torch::Tensor& image_feats, const torch::Tensor& text_feat,
                   const torch::Tensor& image_feats_all, const torch::Tensor& text_feat_all, const torch::Tensor& temp,
                   int64_t rank, double label_smoothing = 0.1, const torch::Tensor& image_ids = {},
                   const torch::Tensor& image_ids_all = {});

/// The positives mask [B, B*W] (bool): this rank's diagonal, or same image id.
torch::Tensor itc_positives(int64_t batch, int64_t total, int64_t rank, const torch::Tensor& image_ids,
                            const torch::Tensor& image_ids_all, const c10::Device& device);

}  // namespace msmedcap::losses
