#include "msmedcap/training/schedule.h"

#include <algorithm>
#include <cmath>

namespace msmedcap::training {

double learning_rate(const config::OptimizerConfig& cfg, int64_t step, int64_t epoch, int64_t epochs,
                     int64_t total_steps) {
  const double pi = std::acos(-1.0);
  const bool warming = step < cfg.warmup_steps && (cfg.schedule == "cosine" || epoch == 0);
  if (warming) {
    const double t = static_cast<double>(step) / static_cast<double>(std::max<int64_t>(cfg.warmup_steps, 1));
    return std::min(cfg.lr, cfg.warmup_lr + (cfg.lr - cfg.warmup_lr) * t);
  }
  double progress = 0;
  if (cfg.schedule == "lavis") {
    progress = static_cast<double>(epoch) / static_cast<double>(std::max<int64_t>(epochs, 1));
  } else {
    const int64_t span = std::max<int64_t>(total_steps - cfg.warmup_steps, 1);
    progress = std::clamp(static_cast<double>(step - cfg.warmup_steps) / static_cast<double>(span), 0.0, 1.0);
  }
  return cfg.min_lr + (cfg.lr - cfg.min_lr) * 0.5 * (1.0 + std::cos(pi * progress));
}

}  // namespace msmedcap::training
