#pragma once
/// Encoder pretraining (docs/MODEL.md, "Encoder pretraining"), for domains where no pretrained
/// encoder fits, as the demo's random ViTs: the paper freezes a CLIP ViT and a SAM ViT that were
/// pretrained elsewhere; these stages make such encoders from the training data first.

#include <torch/types.h>

#include "msmedcap/losses/stage1.h"
#include "msmedcap/models/msmedcap.h"

namespace msmedcap::losses {

/// clip_pretrain, CLIP's objective: the image embedding is clip_pretrain_projection of the mean
/// of the CLIP ViT's features over its tokens (what the Q-Former later reads, so every token
/// learns), the text embedding the CLIP-branch Q-Former's text [CLS] through text_projection;
/// both L2-normalised, logits their cosine over the learnable `temp`, symmetric cross entropy
/// against the ranks' gathered batch (itc_loss with one query and no label smoothing).
torch::Tensor clip_pretrain_loss(models::MsMedCapModelImpl& model, const models::ImageInputs& images,
                                 const torch::Tensor& text_ids, const torch::Tensor& text_mask,
                                 const Collectives& collectives = {});

/// sam_pretrain, SAM's promptable segmentation at small scale: for each image `points` prompts,
/// each a structure of its mask drawn uniformly among those present (anatomy and each lesion
/// alike; the background when there is none) and a pixel drawn uniformly inside it, keyed by
/// `seed` and the row; sam_pretrain_decoder predicts the structure's mask from the SAM
/// embeddings; the loss is binary cross entropy plus dice (SAM's focal + dice, with BCE for
/// focal), averaged over the prompts. `masks`: [B, S, S] int64 ids on the CPU, S the SAM input.
torch::Tensor sam_pretrain_loss(models::MsMedCapModelImpl& model, const models::ImageInputs& images,
                                const torch::Tensor& masks, uint64_t seed, int64_t points = 8);

}  // namespace msmedcap::losses
