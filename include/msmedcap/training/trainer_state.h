#pragma once
/// A checkpoint's progress (its state.json; docs/ARCHITECTURE.md, "Checkpoints"): where the run
/// is, what the loader has read, the best validation so far and the fp16 loss scale. Written
/// with a format version; reading checks the version and every key, so a state.json of an older
/// or newer msmedcap, or one edited by hand, is refused by name instead of resuming wrongly.
/// Torch-free.

#include <cstdint>
#include <string>

#include "msmedcap/config/fields.h"

namespace msmedcap::training {

struct TrainerState {
  /// 1: this layout. state.json files without "format_version" came before it.
  static constexpr int64_t kFormatVersion = 1;

  int64_t step = 0;               ///< optimiser steps done (skipped ones included)
  int64_t epoch = 0;              ///< the epoch the next step belongs to
  std::string stage;              ///< train.stage.name of the run
  config::Json loader;            ///< data::LoaderState::to_json()
  int64_t skipped_steps = 0;      ///< steps skipped for a non-finite loss or gradient
  int64_t best_step = -1;         ///< the step of the best validation loss, -1 before any
  double best_val_loss = 0;       ///< that loss
  double loss_scale = 1;          ///< LossScaler::scale()
  int64_t good_scaled_steps = 0;  ///< LossScaler::good_steps()
  int64_t world_size = 1;         ///< processes that trained (the data order is sharded by it)

  config::Json to_json() const;
  /// Reads a state.json; `where` (its path) starts every error. Throws on a missing or unknown
  /// format version, a missing key, a key of the wrong type or an unknown key.
  static TrainerState from_json(const config::Json& j, const std::string& where);
};

}  // namespace msmedcap::training
