#include "evaluator/train_settings.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace livs::evaluator {

TrainSettings parse_train_settings(const livs::JsonReader& section) {
  section.expect_keys({"steps", "batch_size", "seq_len", "learning_rate", "min_lr_ratio", "warmup_steps",
                       "weight_decay", "beta1", "beta2", "grad_clip", "eval_tokens"});
  const double tiny = std::numeric_limits<double>::min();  // "> 0" with inclusive bounds
  const double below_one = std::nextafter(1.0, 0.0);
  TrainSettings s;
  s.steps = int(section.integer_or("steps", s.steps, 1, 10'000'000));
  s.batch_size = int(section.integer_or("batch_size", s.batch_size, 1, 65536));
  s.seq_len = int(section.integer_or("seq_len", s.seq_len, 1, 1 << 20));
  s.learning_rate = section.number_or("learning_rate", s.learning_rate, tiny);
  s.min_lr_ratio = section.number_or("min_lr_ratio", s.min_lr_ratio, 0.0, 1.0);
  s.warmup_steps = int(section.integer_or("warmup_steps", std::min(s.warmup_steps, s.steps), 0, s.steps));
  s.weight_decay = section.number_or("weight_decay", s.weight_decay, 0.0);
  s.beta1 = section.number_or("beta1", s.beta1, 0.0, below_one);
  s.beta2 = section.number_or("beta2", s.beta2, 0.0, below_one);
  s.grad_clip = section.number_or("grad_clip", s.grad_clip, 0.0);
  s.eval_tokens = section.integer_or("eval_tokens", s.eval_tokens, 2);
  return s;
}

}  // namespace livs::evaluator
