#pragma once
/// Learning-rate schedules (LAVIS lavis/common/optims.py, docs/MODEL.md, "Optimiser and
/// learning-rate schedule").

#include <cstdint>

#include "msmedcap/config/train_config.h"

namespace msmedcap::training {

/// Learning rate of optimiser step `step` (0-based) in `epoch` of `epochs`, `total_steps` in
/// all. "lavis": min(lr, warmup_lr + (lr - warmup_lr) * step / warmup_steps) while in epoch 0
/// and step < warmup_steps, else min_lr + (lr - min_lr) * (1 + cos(pi * epoch / epochs)) / 2.
/// "cosine": the same warm-up, then the cosine over the steps after it.
double learning_rate(const config::OptimizerConfig& cfg, int64_t step, int64_t epoch, int64_t epochs,
                     int64_t total_steps);

}  // namespace msmedcap::training
