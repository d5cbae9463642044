#pragma once
// Training progress of `livsearch eval` on stderr: one line rewritten in place
// on a terminal, plain lines (about twenty per training run) when stderr is a
// pipe or a file, so logs stay readable.
#include <chrono>
#include <string>

#include "common/duration_text.hpp"

namespace livs::cli {

class TrainingProgress {
 public:
  explicit TrainingProgress(int total_steps);

  void step(int step, double loss);

  // Ends a live line that training left unfinished (a run stopped early).
  void finish();

 private:
  using Clock = std::chrono::steady_clock;
  int total_;
  bool live_;
  int every_;
  Clock::time_point start_;
  double last_draw_ = -1.0;
  bool ended_ = false;
};

}  // namespace livs::cli
