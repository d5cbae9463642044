#pragma once
// Train a model on a synthetic task's examples and score it on the held-out
// ones: accuracy = share of scored positions whose most likely next token
// (argmax of the logits) is the answer. The same AdamW, warm-up + cosine and
// clipping as the language-model trainer (evaluator/trainer.*); the batches
// are examples drawn with Rng(derive_seed(seed, "task data")). Scoring runs
// the model's one-token decode over each held-out example, which gives the
// logits at every position (decode equals the forward; tests/evaluator).
// Training targets: the answer at scored positions, the position's own input
// token elsewhere (a copy learnt at once, so the loss is the answers' loss, as
// with MAD's ignore_index, without a loss mask in the kernels).
#include <cstdint>
#include <string>

#include "evaluator/backend.hpp"
#include "evaluator/train_settings.hpp"
#include "genome/model_spec.hpp"
#include "proxies/synthetic_tasks.hpp"

namespace livs::proxies {

struct TaskReport {
  bool ok = true;
  std::string error;      // why not ok (non-finite loss, ...)
  double accuracy = 0.0;  // on the held-out examples' scored positions
  double final_loss = 0.0;
  int steps_done = 0;
};

// settings.seq_len is ignored: the sequence length is the task's example length.
TaskReport train_on_task(const genome::ModelSpec& spec, const evaluator::TrainSettings& settings,
                         const TaskData& data, uint64_t seed, evaluator::Backend& backend);

}  // namespace livs::proxies
