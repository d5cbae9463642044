#pragma once
// What `livsearch eval --save DIR` writes for one evaluation (and, later, the
// search's final stage): the trained weights beside what they are the
// weights of, in a layout `livsearch export --weights` and PyTorch read.
//   DIR/<hash>/genome.json                the canonical genome
//   DIR/<hash>/seed<k>/model.safetensors  the trained weights of replicate k (checkpoint names)
//   DIR/<hash>/seed<k>/probe.safetensors  "tokens" [rows, seq] (the first validation windows) and
//                                         "logits" [rows, seq, vocab], livsearch's forward on them
//   DIR/<hash>/seed<k>/metrics.json       status, metrics, seed, device and the evaluation settings
// Weights and probe only for an evaluation that succeeded.
#include <filesystem>
#include <string>

#include "common/evaluate_contract.hpp"
#include "evaluator/trained_model.hpp"

namespace livs::cli {

struct SavedEvaluation {
  std::string label;  // "preset transformer", a file name
  const EvalRequest& request;
  int replicate = 0;
  const EvalResult& result;
  const evaluator::TrainedModel& trained;
};

// Returns the seed folder written (InputError naming the file on failure).
std::filesystem::path save_evaluation(const std::filesystem::path& dir, const SavedEvaluation& saved);

}  // namespace livs::cli
