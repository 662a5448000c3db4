#pragma once
/// One training step (docs/ARCHITECTURE.md, "One training step"), the same code for `train`,
/// its validation and `bench train-step`: micro-batches -> the stage's losses (as the plan says)
/// -> backward (fp16: through the loss scaler) -> the ranks agree on losses, images, non-finite
/// values and stop requests -> gradients averaged -> the non-finite policy's check and clipping
/// -> AdamW. The caller owns the schedule (it sets the learning rate), the data and the policy
/// for a skipped step.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "msmedcap/config/fields.h"
#include "msmedcap/config/train_config.h"
#include "msmedcap/data/loader.h"
#include "msmedcap/data/tokenizer.h"
#include "msmedcap/models/msmedcap.h"
#include "msmedcap/training/communicator.h"
#include "msmedcap/training/loss_scaler.h"
#include "msmedcap/training/optimizer.h"
#include "msmedcap/training/stage_plan.h"

namespace msmedcap::training {

/// A step's or a validation's losses by name. The terms the stage does not compute stay 0 and
/// are not reported.
struct LossBreakdown {
  double total = 0;
  double itc = 0, itm = 0, itg = 0;  ///< stage 1
  double lm = 0;                     ///< stage 2, caption, decoder_lm
  double mask = 0;                   ///< sam_pretrain
  /// sam_pretrain with mask_classes: the per-pixel class loss (unweighted; the total has it
  /// weighted) and the share of images whose class the head reads (losses::SamPretrainLoss).
  double mask_class = 0, mask_class_acc = 0;
  /// ... with mask_classes.places: the place loss (unweighted).
  double mask_place = 0;
  LossTerms terms;

  /// {"loss": total, and each computed term by name}: metrics.jsonl's fields.
  config::Json to_json() const;
  /// "0.4321", stage 1 with "(itc .. itm .. itg ..)".
  std::string text() const;
  /// total, itc, itm, itg, lm, mask, mask_class, mask_class_acc, mask_place: what ranks sum.
  static constexpr size_t kValues = 9;
  std::vector<double> values() const;
  void set_values(const std::vector<double>& values);  ///< the first kValues of `values`
};

/// One micro-batch on the step's device.
struct StepInputs {
  models::ImageInputs images;           ///< the branches the plan reads: pixels or cached features
  at::Tensor text_ids, text_mask;       ///< [B, T]: WordPiece (stage 1) or the decoder's tokens
  std::vector<int64_t> prompt_lengths;  ///< decoder text: prompt tokens per row (masked in the loss)
  std::vector<int64_t> positions;       ///< the samples' keys (epoch positions): dropout masks, hard negatives
  at::Tensor image_ids;                 ///< stage 1 with train.itc_image_ids: [B] ids of the image files
  at::Tensor masks;                     ///< sam_pretrain: [B, S, S] int64 structure ids
  at::Tensor mask_classes;              ///< sam_pretrain with mask_classes: [B] int64 (CPU), from the captions
  int64_t rows() const { return static_cast<int64_t>(positions.size()); }
};

/// What a step did.
struct StepResult {
  LossBreakdown losses;         ///< means over the micro-batches and ranks
  int64_t images = 0;           ///< over every rank
  bool stop_requested = false;  ///< some rank asked to stop (a signal)
  /// Non-empty: a non-finite loss or gradient norm; nothing was updated and the gradients are
  /// zero (the caller's nan_action decides what follows).
  std::string nonfinite;
  bool updated = false;   ///< AdamW stepped (false: non-finite, or an fp16 overflow)
  double grad_norm = -1;  ///< the global gradient norm when it was computed
};

/// `images` with the rows that `rows` ([B] bool) marks mirrored left-right: pixels along their
/// width, SAM embeddings [B, C, h, w] along w, and CLIP features [B, N, D] as their square grid of
/// patch tokens (after the class token when N is one more than a square).
models::ImageInputs mirror_left_right(const models::ImageInputs& images, const at::Tensor& rows);

/// train.mirror_unscored_words: which rows of a training micro-batch are mirrored, one draw per
/// sample keyed by (seed, its position), about half of them; [B] bool on the CPU.
at::Tensor mirrored_rows(uint64_t seed, const std::vector<int64_t>& positions);

/// The smallest batch of all ranks: every rank trims `batch` to it (gathers need equal sizes;
/// bad samples shrink batches). Returns it (0: skip the micro-batch).
int64_t agree_batch_size(data::Batch& batch, Communicator& comm);

class StepRunner {
 public:
  /// `params`: the plan's trainable parameters (apply_stage), which `optimizer` updates.
  /// `tokenizer`: the text the plan reads (null: only inputs made elsewhere can be used, as
  /// `bench train-step` makes them); `dec_id`: the Q-Former tokenizer's [DEC] (stage 1).
  StepRunner(models::MsMedCapModelImpl& model, const StagePlan& plan, const config::TrainConfig& train, uint64_t seed,
             c10::Device device, Communicator& comm, Optimizer& optimizer, std::vector<at::Tensor> params,
             const data::TextTokenizer* tokenizer, int64_t dec_id);

  /// A loader batch as step inputs: one caption per image (keyed by seed, epoch and position),
  /// cleaned as train.clean_captions says and tokenised; images moved to the device.
  StepInputs inputs(const data::Batch& batch, const data::ExampleOptions& examples) const;

  /// The stage's losses on one micro-batch, under autocast when train.precision asks; the graph
  /// is kept for backward unless gradients are off. `seed` keys hard negatives and dropout masks.
  /// `training` false (validation): no word dropout (train.word_dropout).
  std::pair<at::Tensor, LossBreakdown> losses(const StepInputs& in, uint64_t seed, bool training = true);

  /// Gives micro-batch `micro` of a step, or nothing to skip it (a batch trimmed to 0).
  using MicroBatches = std::function<std::optional<StepInputs>(int64_t micro)>;
  /// One optimiser step of train.grad_accum micro-batches at `step` (0-based, keys the seeds).
  /// `stop_here`, asked after the micro-batches: this process was asked to stop (null: never);
  /// the result says whether any rank was.
  StepResult step(const MicroBatches& next, int64_t step, const std::function<bool()>& stop_here = nullptr);

  /// The share of the stage's steps done before the next step, in [0, 1] (the trainer sets it):
  /// sam_pretrain turns its images while it is below train.stage.mask_symmetries_until.
  void set_progress(double done) { progress_ = done; }
  /// The turns sam_pretrain draws now (losses::SamPretrainOptions::turns; 0: none).
  int mask_turns_now() const;

  LossScaler& scaler() { return scaler_; }
  /// Called with each micro-batch's loss before backward (fault injection in tests).
  std::function<void(int64_t step, at::Tensor& loss)> on_loss;

 private:
  models::MsMedCapModelImpl& model_;
  const StagePlan& plan_;
  const config::TrainConfig& train_;
  uint64_t seed_;
  c10::Device device_;
  Communicator& comm_;
  Optimizer& optimizer_;
  std::vector<at::Tensor> params_;
  const data::TextTokenizer* tokenizer_;
  int64_t dec_id_;
  losses::Collectives collectives_;
  bool autocast_ = false;
  c10::ScalarType autocast_dtype_ = c10::kBFloat16;
  LossScaler scaler_;
  double progress_ = 0;
  at::Tensor mirror_ids_;  ///< train.mirror_unscored_words as the decoder's token ids (empty: off)
};

}  // namespace msmedcap::training
