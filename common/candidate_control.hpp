#pragma once
// What the executor tells the evaluation running on a worker thread without
// widening the evaluate contract: a cooperative cancellation flag (set by the
// executor's watchdog on a timeout, or when the run is stopped) and, in tests
// only, a fault to inject. The executor installs a control for the thread
// that runs one evaluation (ScopedCandidateControl); the trainer polls it
// between steps. A thread with no control installed is never cancelled and
// injects nothing, so `livsearch eval` and the tests of the evaluator run
// exactly as before.
#include <atomic>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>

namespace livs {

// A fault a test makes a chosen candidate produce (common/fault_injection.hpp).
enum class InjectedFault {
  none,
  nan,     // the training loss of the first step is NaN
  oom,     // the model's one device allocation fails as an exhausted device's does (std::bad_alloc)
  throw_,  // evaluate throws a std::runtime_error
  hang,    // the first step never ends, but polls the cancellation flag (a cooperative hang)
  stuck,   // the first step never ends and ignores cancellation (a thread stuck in a kernel)
  device,  // the backend's device faults (CUDA: a sticky error that breaks the context)
  die,     // the process training it is killed (SIGKILL) in its first step: a rank or node lost mid-run
};
const char* to_string(InjectedFault fault);

// Thrown by throw_if_cancelled(); its text is the reason given to cancel().
class EvaluationCancelled : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class CandidateControl {
 public:
  explicit CandidateControl(InjectedFault fault = InjectedFault::none) : fault_(fault) {}
  // Asks the evaluation to stop at its next poll; the first reason sticks.
  void cancel(const std::string& reason);
  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }
  std::string reason() const;
  InjectedFault fault() const { return fault_; }

 private:
  std::atomic<bool> cancelled_{false};
  mutable std::mutex mutex_;
  std::string reason_;
  InjectedFault fault_;
};

// Installs `control` for the calling thread for the scope's lifetime.
class ScopedCandidateControl {
 public:
  explicit ScopedCandidateControl(std::shared_ptr<CandidateControl> control);
  ~ScopedCandidateControl();
  ScopedCandidateControl(const ScopedCandidateControl&) = delete;
  ScopedCandidateControl& operator=(const ScopedCandidateControl&) = delete;

 private:
  std::shared_ptr<CandidateControl> previous_;
};

// The calling thread's control, or nullptr.
const CandidateControl* current_candidate_control();
// Throws EvaluationCancelled when the calling thread's evaluation was cancelled.
void throw_if_cancelled();
// The fault injected into the calling thread's evaluation (none without a control).
InjectedFault injected_fault();

}  // namespace livs
