#pragma once
/// Encoder pretraining (docs/MODEL.md, "Encoder pretraining"), for domains where no pretrained
/// encoder fits, as the demo's random ViTs: the paper freezes a CLIP ViT and a SAM ViT that were
/// pretrained elsewhere; these stages make such encoders from the training data first.

#include <torch/types.h>

#include <array>
#include <optional>

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
///
/// With `classes` (train.stage.mask_classes), also each position's class on the embeddings'
/// grid: a position any of whose pixels has a mask id of at least `first_id` takes its row's
/// class, the others background (0); sam_pretrain_classes maps each position's channels to class
/// logits. The loss is cross entropy averaged over background positions and over the marked ones
/// separately, then the two means averaged (a lesion is a few of 256 positions); the marked mean
/// is taken per image first, then over the images with marked positions, so a small lesion counts
/// as much as a large one. The total adds it times `weight`. `image_accuracy` is what the head
/// reads per image: over the rows with marked positions of a class (not background), the share
/// whose class has the largest probability mass over the grid.
///
/// With `places` {columns, rows} (mask_classes.places), also where: sam_pretrain_places maps each
/// marked position's channels to the cells of a columns x rows grid over the (turned) image, the
/// target being the cell the position lies in; cross entropy over the marked positions, per image
/// and then over the images with any, as the class loss's marked mean. The total adds it times
/// `place_weight`.
struct MaskClassTargets {
  torch::Tensor classes;  ///< [B] int64, CPU
  int64_t first_id = 1;
  double weight = 1.0;
  double place_weight = 1.0;
  std::array<int64_t, 2> places = {0, 0};  ///< {columns, rows}; {0, 0}: no place head
};
struct SamPretrainOptions {
  int64_t points = 8;
  /// train.stage.mask_symmetries and mask_turns: each image turned with its mask by
  /// square_turn(seed, row, turns), a turn_square code whose bits are within `turns` (0: none;
  /// 7: the square's 8 symmetries), so that no structure's class can be learnt from where it lies.
  int turns = 0;
  std::optional<MaskClassTargets> classes;
};
struct SamPretrainLoss {
  torch::Tensor total;       ///< mask + weight * mask_class + place_weight * mask_place
  torch::Tensor mask;        ///< the point-prompted mask loss
  torch::Tensor mask_class;  ///< the per-pixel class loss, unweighted (undefined without classes)
  torch::Tensor mask_place;  ///< the place loss, unweighted (undefined without places)
  double image_accuracy = 0;
};
/// The turn_square code of row `row` at `seed`: each bit set in `turns` (bit 0 left-right, bit 1
/// up-down, bit 2 transpose) is on with probability 1/2, the others off.
int square_turn(uint64_t seed, int64_t row, int turns);
/// `x` [..., S, S] turned by the square's symmetry `code` (0..7): bit 0 flips left-right, bit 1
/// up-down, bit 2 then transposes. sam_pretrain turns an image's pixels and its mask with one code.
torch::Tensor turn_square(const torch::Tensor& x, int code);

SamPretrainLoss sam_pretrain_loss(models::MsMedCapModelImpl& model, const models::ImageInputs& images,
                                  const torch::Tensor& masks, uint64_t seed, const SamPretrainOptions& options = {});

}  // namespace msmedcap::losses
