#pragma once
// How long one evaluation may run before the executor cancels it and records
// it as failed with reason timeout (search.candidate_timeout). A hung
// candidate must not hold a worker for ever, and a candidate that is merely
// slow must not be cut short, so the default learns from the run itself:
//
//   before any evaluation has finished: max_train_seconds when the config
//     sets a training budget (one candidate running longer than the whole
//     search's budget cannot be within it; at least 60 s), else 4 hours;
//   after: 10 x the slowest finished evaluation so far, per unit of
//     fidelity, times the evaluation's fidelity; at least 60 s (never below
//     what a loaded machine's jitter needs) and, with a training budget, at
//     most the budget.
//
// A configured value (seconds > 0) is used as is at every fidelity; 0 turns
// the timeout off.
#include <mutex>
#include <optional>
#include <string>

namespace livs::search {

class CandidateTimeout {
 public:
  static constexpr double kSlowestFactor = 10.0;
  static constexpr double kMinimumSeconds = 60.0;
  static constexpr double kBeforeAnyResultSeconds = 4 * 3600.0;

  // configured: the config's search.candidate_timeout (nullopt: the default).
  explicit CandidateTimeout(std::optional<double> configured = std::nullopt, double max_train_seconds = 0.0);

  // Seconds an evaluation at `fidelity` may run; 0 when there is no limit.
  double seconds_for(double fidelity) const;
  // A finished evaluation's wall time, which the default learns from.
  void observe(double fidelity, double wall_seconds);
  // "search.candidate_timeout 30 s" or "the default candidate_timeout, ...", for error texts.
  std::string describe(double fidelity) const;
  bool configured() const { return configured_.has_value(); }

 private:
  std::optional<double> configured_;
  double max_train_seconds_ = 0.0;
  mutable std::mutex mutex_;
  double slowest_per_fidelity_ = 0.0;  // seconds per unit of fidelity; 0: nothing finished yet
};

}  // namespace livs::search
