#pragma once
// What a training run can hand back besides its report, for checkpoints and
// the PyTorch export (issue 16): the trained weights as host copies under
// their checkpoint names (genome/checkpoint.hpp), and a probe: the logits of
// livsearch's own forward on the first validation batch, against which an
// exported model is checked.
#include <cstdint>
#include <string>
#include <vector>

#include "evaluator/model.hpp"
#include "genome/model_spec.hpp"

namespace livs::evaluator {

struct HostTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> values;
};

// The first `rows` windows of the validation evaluation (the windows
// train_and_evaluate scores first: tokens [w * seq_len, (w + 1) * seq_len)
// of the validation split) and the logits the trained model gives them.
struct ProbeLogits {
  int rows = 0, seq = 0, vocab = 0;
  std::vector<int32_t> tokens;  // [rows, seq]
  std::vector<float> logits;    // [rows, seq, vocab]
};

struct TrainedModel {
  std::vector<HostTensor> weights;  // every weight once, in model order
  ProbeLogits probe;
};

// The model's current weights, one per genome::checkpoint_weights(spec)
// entry (shared weights once, under their owner's name).
std::vector<HostTensor> copy_weights(Model& model, const genome::ModelSpec& spec);

}  // namespace livs::evaluator
