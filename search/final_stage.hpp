#pragma once
// The final stage of a run: the answer a user reads should be a comparison
// with the baselines, at the budget they would train at, with its spread.
// When the last generation has been recorded, the finalists (up to `top`
// members of the front, then every warm-start member) are re-trained at
// fidelity 1.0 on `seeds` seeds each. Replicate k of a genome trains with
// evaluation_seed(run seed, hash, k); replicate 0 is the seed the search
// itself used, so a search at fidelity 1.0 has already paid for it. Each
// replicate is an evaluation of its own (generation = last generation + 1);
// the ledger skips those already finished, so a killed stage resumes where
// it stopped.
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "db/store.hpp"
#include "search/evaluation_ledger.hpp"
#include "search/executor.hpp"
#include "search/settings.hpp"

namespace livs::search {

// The genomes the stage re-trains, in order: first-front members of the last
// recorded generation (feasible ones only, unless none is feasible; boundary
// points first, then by decreasing crowding distance, then population order),
// at most `top` of them; then the run's labelled (warm-start) genomes not
// already listed, by label.
std::vector<std::string> finalists(const db::GenerationRecord& last, const EvaluationLedger& ledger,
                                   const SearchSettings& settings,
                                   const std::map<std::string, std::string>& labels, int top);

struct FinalStageRun {
  int64_t run_id = 0;
  int generation = 0;  // recorded with the stage's evaluations
  Json eval_settings;  // EvalRequest::settings
  std::string device;
  ExecutorOptions executor;
};

struct FinalStageCounts {
  int evaluations_run = 0;
  int evaluations_reused = 0;
};

// Re-trains the finalists; returns what it ran and what the ledger already had.
// The trainings start longest first (expected_full_seconds; ties in finalist
// and seed order): with several workers the stage then ends when its
// longest trainings do, not after one of them started last on a worker that
// the others had long left idle. The order changes nothing else: every
// training has its own seed and its result is the same in any order.
// Throws SearchStopped when stopped (what finished is stored).
// The seconds a training of `hash` at fidelity 1 is expected to take, from
// its search-stage evaluation at the highest rung it reached: its training
// time scaled by the steps (1 / fidelity), the rest of the evaluation as it
// was. Infinity when no such evaluation succeeded (a finalist the search
// never trained, or one whose training failed early): unknown starts first.
double expected_full_seconds(const std::string& hash, const EvaluationLedger& ledger,
                             const SearchSettings& settings);

// How long trainings of these durations take on `lanes` lanes that each
// start the next one in the list as they free up (the stage's own order:
// longest first); 0 for none. Infinite when a duration is.
double expected_stage_seconds(const std::vector<double>& durations, int lanes);

FinalStageCounts run_final_stage(const std::vector<std::string>& finalist_hashes,
                                 const SearchSettings& settings, const EvaluateFunction& evaluate,
                                 db::Store& store, EvaluationLedger& ledger, const FinalStageRun& run);

// The stage's result as text lines, best first on the first objective: name
// (label or short hash), each objective's mean ± sample sd over the seeds
// that finished ok, and how many did.
std::vector<std::string> final_table(const std::vector<std::string>& finalist_hashes,
                                     const SearchSettings& settings, const EvaluationLedger& ledger,
                                     const std::map<std::string, std::string>& labels);

}  // namespace livs::search
