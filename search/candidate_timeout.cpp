#include "search/candidate_timeout.hpp"

#include <algorithm>

#include "common/format_number.hpp"

namespace livs::search {

CandidateTimeout::CandidateTimeout(std::optional<double> configured, double max_train_seconds)
    : configured_(configured), max_train_seconds_(max_train_seconds) {}

double CandidateTimeout::seconds_for(double fidelity) const {
  if (configured_) return *configured_;
  const double budget_cap = max_train_seconds_ > 0 ? std::max(kMinimumSeconds, max_train_seconds_) : 0.0;
  std::lock_guard lock(mutex_);
  if (slowest_per_fidelity_ <= 0) return budget_cap > 0 ? budget_cap : kBeforeAnyResultSeconds;
  double seconds = std::max(kMinimumSeconds, kSlowestFactor * slowest_per_fidelity_ * fidelity);
  if (budget_cap > 0) seconds = std::min(seconds, budget_cap);
  return seconds;
}

void CandidateTimeout::observe(double fidelity, double wall_seconds) {
  if (!(fidelity > 0) || !(wall_seconds >= 0)) return;
  std::lock_guard lock(mutex_);
  slowest_per_fidelity_ = std::max(slowest_per_fidelity_, wall_seconds / fidelity);
}

std::string CandidateTimeout::describe(double fidelity) const {
  std::string text = format_number(seconds_for(fidelity));
  text += " s";
  if (configured_) return std::string("search.candidate_timeout ").append(text);
  bool learned = false;
  {
    std::lock_guard lock(mutex_);
    learned = slowest_per_fidelity_ > 0;
  }
  return std::string("the default search.candidate_timeout of ").append(text) +
         (learned ? " (10x the slowest evaluation so far, at least 60 s; set the key for longer candidates)"
                  : " (before any evaluation has finished; set the key for longer candidates)");
}

}  // namespace livs::search
