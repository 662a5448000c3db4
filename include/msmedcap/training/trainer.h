#pragma once
/// The training loop (docs/MODEL.md, docs/ARCHITECTURE.md): the stage plan, the data loaders and
/// the warm-up + cosine schedule around one training step (training/step.h: the stage's losses,
/// accumulation, all-reduce over ranks, clipping, AdamW), with the non-finite policy,
/// validation, logging and checkpoints. Rank 0 writes RUN_DIR/config.json, a metrics JSONL
/// log (RUN_DIR/metrics.jsonl) and checkpoints (io/checkpoint.h); a resumed run continues with
/// the same batches, hard negatives and optimiser state, so its losses equal an uninterrupted
/// run's.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <c10/core/Device.h>

#include "msmedcap/config/run_config.h"
#include "msmedcap/models/msmedcap.h"
#include "msmedcap/training/step.h"

namespace msmedcap::training {

class Communicator;

/// Scores the model at each validation (training/validators.h): the trainer's own LossValidator
/// (whose loss decides the best checkpoint), then the caller's, e.g. the caption metrics of
/// train.val_caption_images. Runs on every rank with the model in eval mode; the fields it
/// returns join the validation line of metrics.jsonl and the log (a rank that adds nothing
/// returns an empty object).
class Validator {
 public:
  virtual ~Validator() = default;
  virtual config::Json validate(int64_t step) = 0;
};

struct TrainerOptions {
  /// Run folder: config.json, metrics.jsonl, checkpoints/.
  std::string run_dir;
  /// Continue from RUN_DIR's latest checkpoint.
  bool resume = false;
  c10::Device device = c10::Device(c10::kCPU);
  /// The job's other processes (null: this process alone).
  Communicator* comm = nullptr;
  /// Set (to the signal number) by a SIGINT/SIGTERM handler: the loop saves and returns.
  const std::atomic<int>* stop_signal = nullptr;
  /// Run at each validation, in order, after the validation loss.
  std::vector<std::shared_ptr<Validator>> validators;
  /// Called with each micro-batch's loss before backward (fault injection in tests).
  std::function<void(int64_t step, at::Tensor& loss)> on_loss;
};

struct TrainResult {
  int64_t steps = 0;          // steps done in all (with those before a resume)
  int64_t skipped_steps = 0;  // steps skipped for a non-finite loss
  LossBreakdown last;         // the last step's losses
  std::string checkpoint;     // the last checkpoint folder saved
  int stopped_by_signal = 0;  // the signal that ended the run early, or 0
};

/// Trains `model` (already built, with its weights loaded) as `cfg.train` says; `resolved` is
/// the resolved config JSON saved with the run. Throws msmedcap::Error on bad data, a
/// non-finite loss with nan_action "stop" (after saving), or a resume that does not fit.
TrainResult train(models::MsMedCapModelImpl& model, const config::RunConfig& cfg, const config::Json& resolved,
                  const TrainerOptions& options);

}  // namespace msmedcap::training
