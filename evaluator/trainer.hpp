#pragma once
// Train a model built from a ModelSpec for a budget and score it on held-out
// tokens. A pure function of its inputs and the seed: the same arguments give
// bit-identical results, whatever the number of threads.
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "evaluator/backend.hpp"
#include "evaluator/data/token_sequence.hpp"
#include "evaluator/train_settings.hpp"
#include "evaluator/trained_model.hpp"
#include "genome/model_spec.hpp"

namespace livs::evaluator {

enum class TrainStatus {
  ok,
  non_finite_loss,  // the training loss became NaN or infinite; the run stopped there
  failed,           // anything else (data too short for the shape, ...); see error
};
const char* to_string(TrainStatus status);

struct TrainReport {
  TrainStatus status = TrainStatus::ok;
  std::string error;               // empty when ok
  double validation_loss = 0.0;    // mean cross-entropy (nats per token) on the validation slice
  double perplexity = 0.0;         // exp(validation_loss); per byte for byte-level data
  int steps_done = 0;              // optimiser steps completed
  std::vector<double> train_loss;  // one value per step done (mean cross-entropy of its batch)
  int64_t validation_tokens = 0;   // how many predicted tokens the validation loss averages over
  double build_seconds = 0.0;      // the model, its parameters and the step runner, before the first step
  double train_seconds = 0.0;
  double eval_seconds = 0.0;
  int64_t params_total = 0;
  int64_t params_non_embedding = 0;
  // Device memory the model took as the device reports it (CUDA: bytes in use
  // after the first two steps minus before the model was built, so the
  // arena, the scratch buffers the first step grows and the step graph);
  // empty where the backend does not measure it (CPU).
  std::optional<int64_t> peak_memory_device;
  bool step_graph = false;  // the steps after the first replayed a CUDA graph
  int64_t plan_bytes = 0;   // the trained model's arena plan (Model::arena_bytes); 0 if it was not built
};

// Called after every step with the step number (1-based) and its loss.
using ProgressFn = std::function<void(int step, double loss)>;

// The probe holds at most this many validation windows (its logits are
// rows x seq_len x vocab floats).
constexpr int kMaxProbeRows = 4;

// Token ids are checked against spec.vocab window by window as they are
// read (a bad one fails the run with the file and byte).
// `trained`, when given, receives the trained weights and the probe logits
// (on a successful run only; left untouched otherwise).
TrainReport train_and_evaluate(const genome::ModelSpec& spec, const TrainSettings& settings,
                               const TokenSequence& train_tokens, const TokenSequence& validation_tokens,
                               uint64_t seed, Backend& backend, const ProgressFn& progress = {},
                               TrainedModel* trained = nullptr);

}  // namespace livs::evaluator
