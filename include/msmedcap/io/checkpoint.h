#pragma once
/// Training checkpoints (marian-style: weights + optimiser + progress + config), one folder per
/// save: RUN_DIR/checkpoints/step-000000123/{model.safetensors, optimizer.safetensors,
/// state.json, config.json}. A save is written into a hidden temporary folder and renamed into
/// place, then RUN_DIR/checkpoints/latest (a one-line file) is replaced atomically, so a crash at
/// any moment leaves the previous checkpoint intact and `latest` naming a complete one.

#include <cstdint>
#include <string>
#include <vector>

#include "msmedcap/config/fields.h"
#include "msmedcap/io/tensor_store.h"

namespace msmedcap::io {

struct Checkpoint {
  StateDict model;      // trainable parameters (LAVIS keeps only requires_grad ones)
  StateDict optimizer;  // training::Optimizer::state()
  config::Json state;   // step, epoch, loader state, best metric, ...
  config::Json config;  // the resolved run config
};

/// Saves `ckpt` as step `step` of `run_dir`; returns its folder. An existing folder of the same
/// step is replaced only after the new one is complete.
std::string save_checkpoint(const std::string& run_dir, int64_t step, const Checkpoint& ckpt);

/// The folder of step `step` in `run_dir` (RUN/checkpoints/step-000000123), saved or not.
std::string checkpoint_folder(const std::string& run_dir, int64_t step);

/// The folder `latest` names, or "" when the run has no checkpoint yet. Throws when `latest`
/// names a folder that is missing or incomplete.
std::string latest_checkpoint(const std::string& run_dir);

/// A run folder (one holding checkpoints/latest) becomes its latest checkpoint folder; any other
/// path is returned as it is. So a stage starts from the previous stage's run with
/// `weights: [{"path": "runs/stage1"}]`.
std::string resolve_run_folder(const std::string& path);

/// Reads a checkpoint folder; errors name the file at fault (missing, truncated, malformed).
Checkpoint load_checkpoint(const std::string& dir);

/// Removes all but the newest `keep` step folders, never one named in `protect` (e.g. the best
/// and the latest), and any temporary folder a crash left behind. Returns the folders removed.
std::vector<std::string> prune_checkpoints(const std::string& run_dir, int64_t keep,
                                           const std::vector<std::string>& protect = {});

}  // namespace msmedcap::io
