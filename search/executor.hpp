#pragma once
// Where evaluations run: worker threads on this machine, at most `workers` in
// flight (each evaluate call may use its own GPU stream or device). The
// database is written from the calling thread only (one writer): every
// evaluation is begun, heartbeated while it runs and finished as soon as it
// returns, so a crash loses no finished evaluation.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/evaluate_contract.hpp"
#include "db/store.hpp"

namespace livs::search {

using EvaluateFunction = std::function<EvalResult(const EvalRequest&)>;

// stop_requested() became true: no new evaluation started, the ones in
// flight finished and were stored.
struct SearchStopped {};

struct EvaluationJob {
  EvalRequest request;
  int generation = 0;   // recorded with the evaluation
  std::string summary;  // for the progress line
};

struct ExecutorOptions {
  int workers = 1;
  double heartbeat_seconds = 15.0;
  std::function<bool()> stop_requested;         // may be empty
  std::function<void(const std::string&)> log;  // may be empty
};

// Runs every job (in order of start) and calls on_finished(job index, stored
// outcome) on the calling thread as each one ends. An InputError (a bad
// config fails every candidate) or a non-std exception from evaluate ends the
// run after the jobs in flight; any other exception is a failed evaluation.
// Throws SearchStopped when stop_requested() cut the list short.
void run_evaluations(const std::vector<EvaluationJob>& jobs, const EvaluateFunction& evaluate,
                     db::Store& store, int64_t run_id, const ExecutorOptions& options,
                     const std::function<void(std::size_t, const db::EvaluationOutcome&)>& on_finished);

// The unit a metric is stored with ("bytes", "ms", "count" or "").
std::string metric_unit(const std::string& metric);

}  // namespace livs::search
