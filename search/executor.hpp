#pragma once
// Where evaluations run: one worker thread per lane (search/lanes.hpp), each
// lane a device of this process or another MPI rank, filled as they free
// up (a promotion goes to whichever lane is free first). The
// database is written from the calling thread only (one writer): every
// evaluation is begun, heartbeated while it runs and finished as soon as it
// returns, so a crash loses no finished evaluation.
//
// A candidate's fault is the candidate's: an exception, a non-finite loss or
// an exhausted device is a failed evaluation with its reason. A hung one is
// stopped by a watchdog (the calling thread): past its timeout
// (candidate_timeout.hpp) its cancellation flag is set
// (common/candidate_control.hpp), the trainer stops at its next step and the
// evaluation is recorded as failed with reason timeout. A thread stuck where
// it cannot poll the flag (a kernel that never returns) cannot be stopped
// safely in-process: after a grace period its evaluation is recorded as
// timed out anyway, its thread is abandoned (detached; what it uses stays
// alive) and the search goes on; abandoned_workers() tells the CLI, which
// then ends the process without waiting for it.
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/evaluate_contract.hpp"
#include "common/fault_injection.hpp"
#include "db/store.hpp"
#include "search/candidate_timeout.hpp"
#include "search/lanes.hpp"

namespace livs::search {

// stop_requested() became true: no new evaluation started, the ones in
// flight were cancelled (those that finished anyway were stored; the others
// are marked interrupted and run again on resume).
struct SearchStopped {};

struct EvaluationJob {
  EvalRequest request;
  int generation = 0;   // recorded with the evaluation
  std::string summary;  // for the progress line
  std::size_t tag = 0;  // the caller's own number for the job
};

struct ExecutorOptions {
  // Where evaluations run; empty: `workers` lanes, each evaluation on its
  // request's own device.
  std::vector<Lane> lanes;
  int workers = 1;
  double heartbeat_seconds = 15.0;
  // Per-evaluation time limit; empty: none. Shared so the default learns
  // across the calls of one run.
  std::shared_ptr<CandidateTimeout> timeout;
  // Seconds a cancelled evaluation has to return before its thread is
  // abandoned; < 0: max(5 s, a tenth of its timeout), at most 60 s.
  double abandon_grace_seconds = -1.0;
  // Tests only (LIVSEARCH_FAULT_INJECT): faults for chosen evaluations.
  std::shared_ptr<const FaultPlan> faults;
  std::function<bool()> stop_requested;         // may be empty
  std::function<void(const std::string&)> log;  // may be empty
};

// The lanes run_evaluations fills: options.lanes, or `workers` (at least one)
// lanes of the executor's own evaluate function.
int lane_count(const ExecutorOptions& options);

// Evaluations decided as workers free up: a list that grows with the results
// (the rungs' promotions). Both functions are called on the executor's thread.
struct JobSource {
  // The job a free worker starts now, or nullopt when none can start now:
  // the executor then waits for one in flight to finish and asks again, and
  // with none in flight the source is done.
  std::function<std::optional<EvaluationJob>()> next;
  // A job ended; its outcome is stored.
  std::function<void(const EvaluationJob&, const db::EvaluationOutcome&)> finished;
  std::size_t known_total = 0;  // for the progress line's "[k/N]"; 0: not known in advance
};

// Runs the source's jobs, at most options.workers at once, and reports each
// outcome to source.finished on the calling thread as soon as it is stored.
// An InputError (a bad config fails every candidate) or a non-std exception
// from evaluate ends the run after the jobs in flight; any other exception is
// a failed evaluation. Throws SearchStopped when stop_requested() ended it
// before the source was done.
void run_evaluations(const JobSource& source, const EvaluateFunction& evaluate, db::Store& store,
                     int64_t run_id, const ExecutorOptions& options);

// A fixed list, in order of start; on_finished gets the job's index.
void run_evaluations(const std::vector<EvaluationJob>& jobs, const EvaluateFunction& evaluate,
                     db::Store& store, int64_t run_id, const ExecutorOptions& options,
                     const std::function<void(std::size_t, const db::EvaluationOutcome&)>& on_finished);

// One evaluation as a worker runs it, under the calling thread's candidate
// control: the injected `throw` fault, and a candidate's exception, are a
// failed result with its reason; an InputError (a bad config fails every
// candidate) or a non-std exception is handed back in `fatal` instead, for
// the caller to end the search with.
EvalResult evaluate_guarded(const EvaluateFunction& evaluate, const EvalRequest& request,
                            std::exception_ptr& fatal);

// Worker threads abandoned in this process because their evaluation could
// not be stopped (see above). When > 0 the process must not run static
// destructors under them: the CLI ends with std::_Exit after closing the
// database.
int abandoned_workers();

// The unit a metric is stored with ("bytes", "ms", "count" or "").
std::string metric_unit(const std::string& metric);

}  // namespace livs::search
