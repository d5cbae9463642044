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
#include <optional>
#include <string>

#include "common/evaluate_contract.hpp"
#include "evaluator/trained_model.hpp"
#include "search/executor.hpp"

namespace livs::cli {

struct SavedEvaluation {
  std::string label;  // "preset transformer", a file name
  const EvalRequest& request;
  int replicate = 0;
  const EvalResult& result;
  const evaluator::TrainedModel& trained;
};

// Returns the seed folder written (InputError naming the file on failure).
// Safe to call from several threads at once (the genome's genome.json is
// written through a temporary file and renamed).
std::filesystem::path save_evaluation(const std::filesystem::path& dir, const SavedEvaluation& saved);

// Where a search keeps weights: DB.weights/ beside the database file.
std::filesystem::path weights_folder(const std::string& db_path);

// The search's evaluate function when its final stage keeps weights
// (search.final.save_weights, finalize --save-weights): every evaluation at
// fidelity 1.0 is saved into `dir` as replicate k, k the replicate whose
// evaluation_seed(run_seed, hash, k) the request carries (k < max(replicates,
// 1)). That covers the final stage and the full-fidelity evaluations of the
// search itself, which the stage reuses as replicate 0. A weights file that
// cannot be written is a warning on stderr, never the evaluation's failure.
search::EvaluateFunction evaluate_saving_weights(std::filesystem::path dir, uint64_t run_seed, int replicates,
                                                 std::string label);

// The weights a search kept for a genome: DB.weights/<hash>/seed<k>/model.safetensors
// of the lowest replicate k present, or nullopt.
std::optional<std::filesystem::path> kept_weights(const std::string& db_path, const std::string& hash);

}  // namespace livs::cli
