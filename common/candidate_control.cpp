#include "common/candidate_control.hpp"

#include <utility>

namespace livs {

namespace {
// Shared ownership: the executor keeps the control after an abandoned worker
// (search/executor.hpp), and the worker may still poll it.
thread_local std::shared_ptr<CandidateControl> current;
}  // namespace

const char* to_string(InjectedFault fault) {
  switch (fault) {
    case InjectedFault::none:
      return "none";
    case InjectedFault::nan:
      return "nan";
    case InjectedFault::oom:
      return "oom";
    case InjectedFault::throw_:
      return "throw";
    case InjectedFault::hang:
      return "hang";
    case InjectedFault::stuck:
      return "stuck";
    case InjectedFault::device:
      return "device";
    case InjectedFault::die:
      return "die";
  }
  return "?";
}

void CandidateControl::cancel(const std::string& reason) {
  std::lock_guard lock(mutex_);
  if (cancelled_.load(std::memory_order_relaxed)) return;
  reason_ = reason;
  cancelled_.store(true, std::memory_order_release);
}

std::string CandidateControl::reason() const {
  std::lock_guard lock(mutex_);
  return reason_;
}

ScopedCandidateControl::ScopedCandidateControl(std::shared_ptr<CandidateControl> control)
    : previous_(std::exchange(current, std::move(control))) {}

ScopedCandidateControl::~ScopedCandidateControl() { current = std::move(previous_); }

const CandidateControl* current_candidate_control() { return current.get(); }

void throw_if_cancelled() {
  if (current && current->cancelled()) throw EvaluationCancelled(current->reason());
}

InjectedFault injected_fault() { return current ? current->fault() : InjectedFault::none; }

}  // namespace livs
