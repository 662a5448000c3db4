#pragma once
/// The training loop (docs/MODEL.md): data loader -> text tokenisation
/// -> the stage's losses (stage 1: ITC + ITM + ITG of one branch; stage 2 and caption: the
/// decoder's LM loss) -> gradient accumulation -> all-reduce over ranks -> optional clipping ->
/// AdamW with the warm-up + cosine schedule. Rank 0 writes RUN_DIR/config.json, a metrics JSONL
/// log (RUN_DIR/metrics.jsonl) and checkpoints (io/checkpoint.h); a resumed run continues with
/// the same batches, hard negatives and optimiser state, so its losses equal an uninterrupted
/// run's.

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include <c10/core/Device.h>

#include "msmedcap/config/run_config.h"
#include "msmedcap/models/msmedcap.h"

namespace msmedcap::training {

class Distributed;

/// One step's losses (undefined where the stage has none).
struct StepLosses {
  double total = 0;
  double itc = 0, itm = 0, itg = 0, lm = 0;
};

struct TrainerOptions {
  /// Run folder: config.json, metrics.jsonl, checkpoints/.
  std::string run_dir;
  /// Continue from RUN_DIR's latest checkpoint.
  bool resume = false;
  c10::Device device = c10::Device(c10::kCPU);
  /// Several processes (null: one).
  Distributed* dist = nullptr;
  /// Set (to the signal number) by a SIGINT/SIGTERM handler: the loop saves and returns.
  const std::atomic<int>* stop_signal = nullptr;
  /// Called after each validation's losses, on every rank, with the model in eval mode; the
  /// fields it returns (e.g. caption metrics) join the validation line of metrics.jsonl and the
  /// log. Null: losses only.
  std::function<config::Json(int64_t step)> on_validate;
  /// Called with each micro-batch's loss before backward (fault injection in tests).
  std::function<void(int64_t step, at::Tensor& loss)> on_loss;
};

struct TrainResult {
  int64_t steps = 0;          // steps done in all (with those before a resume)
  int64_t skipped_steps = 0;  // steps skipped for a non-finite loss
  StepLosses last;            // the last step's losses
  std::string checkpoint;     // the last checkpoint folder saved
  int stopped_by_signal = 0;  // the signal that ended the run early, or 0
};

/// Trains `model` (already built, with its weights loaded) as `cfg.train` says; `resolved` is
/// the resolved config JSON saved with the run. Throws msmedcap::Error on bad data, a
/// non-finite loss with nan_action "stop" (after saving), or a resume that does not fit.
TrainResult train(models::MsMedCapModelImpl& model, const config::RunConfig& cfg, const config::Json& resolved,
                  const TrainerOptions& options);

}  // namespace msmedcap::training
