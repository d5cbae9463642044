#pragma once
// The training budget of one candidate: the config's "training" section.
#include <cstdint>

#include "common/json_reader.hpp"

namespace livs::evaluator {

struct TrainSettings {
  int steps = 600;
  int batch_size = 16;
  int seq_len = 128;
  double learning_rate = 3e-3;  // peak, reached at the end of warm-up
  double min_lr_ratio = 0.1;    // the cosine decays to learning_rate * min_lr_ratio
  int warmup_steps = 60;        // linear warm-up from learning_rate / warmup_steps
  double weight_decay = 0.1;    // AdamW, applied to matrices only (not to norm gains)
  double beta1 = 0.9;
  double beta2 = 0.95;
  double grad_clip = 1.0;       // global-norm clipping; 0 turns it off
  int64_t eval_tokens = 65536;  // validation: the first eval_tokens of the validation split
};

// Reads a config's "training" section. Every key is optional (the defaults
// above); ranges are checked and unknown keys rejected, each with an
// InputError naming file, JSON pointer and expectation.
TrainSettings parse_train_settings(const livs::JsonReader& section);

}  // namespace livs::evaluator
