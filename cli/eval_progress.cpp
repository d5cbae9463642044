#include "cli/eval_progress.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace livs::cli {

TrainingProgress::TrainingProgress(int total_steps)
    : total_(total_steps),
      live_(::isatty(STDERR_FILENO) == 1),
      every_(std::max(1, total_steps / 20)),
      start_(Clock::now()) {}

void TrainingProgress::step(int step, double loss) {
  const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
  const bool last = step == total_;
  if (!live_ && step % every_ != 0 && !last) return;
  // A terminal line is redrawn at most ten times a second: small models run thousands of steps a second.
  if (live_ && !last && elapsed - last_draw_ < 0.1) return;
  last_draw_ = elapsed;
  const double eta = step > 0 ? elapsed / step * (total_ - step) : 0.0;
  std::fprintf(stderr, "%sstep %d/%d  loss %.4f  %.2f steps/s  elapsed %s  eta %s%s", live_ ? "\r\033[K" : "",
               step, total_, loss, step / std::max(elapsed, 1e-9), format_duration(elapsed).c_str(),
               format_duration(eta).c_str(), live_ ? "" : "\n");
  // Scoring the held-out split (and the inference measurements) come next and report nothing on their own.
  if (last) std::fprintf(stderr, "%sevaluating on the held-out split\n", live_ ? "\n" : "");
  ended_ = last;
  std::fflush(stderr);
}

void TrainingProgress::finish() {
  if (live_ && !ended_ && last_draw_ >= 0.0) std::fprintf(stderr, "\n");
}

}  // namespace livs::cli
