#pragma once
// The learning-rate schedule: linear warm-up to the peak, then a cosine decay
// to peak * min_lr_ratio at the last step.
#include <algorithm>
#include <cmath>

#include "evaluator/train_settings.hpp"

namespace livs::evaluator {

// step is 1-based: step 1 is the first optimiser update.
inline double learning_rate_at(const TrainSettings& s, int step) {
  if (s.warmup_steps > 0 && step <= s.warmup_steps)
    return s.learning_rate * double(step) / double(s.warmup_steps);
  const int decay_steps = std::max(1, s.steps - s.warmup_steps);
  const double progress = std::clamp(double(step - s.warmup_steps) / double(decay_steps), 0.0, 1.0);
  const double cosine = 0.5 * (1.0 + std::cos(3.14159265358979323846 * progress));
  return s.learning_rate * (s.min_lr_ratio + (1.0 - s.min_lr_ratio) * cosine);
}

}  // namespace livs::evaluator
