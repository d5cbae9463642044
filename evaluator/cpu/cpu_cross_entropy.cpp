// Softmax cross-entropy over rows of logits, fused (no softmax tensor kept).
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>

#include "evaluator/cpu/cpu_backend.hpp"

namespace livs::evaluator {

void CpuBackend::cross_entropy_forward(float* losses, float* lse, ConstMatrix logits,
                                       const int32_t* targets) {
  const int64_t V = logits.cols;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, logits.rows, 16), [&](const auto& r) {
    for (int64_t n = r.begin(); n != r.end(); ++n) {
      const float* row = logits.data + n * V;
      float mx = row[0];
      for (int64_t j = 1; j < V; ++j) mx = std::max(mx, row[j]);
      double sum = 0.0;
      for (int64_t j = 0; j < V; ++j) sum += std::exp(double(row[j]) - mx);
      const float l = float(double(mx) + std::log(sum));
      lse[n] = l;
      losses[n] = targets[n] < 0 ? 0.0f : l - row[targets[n]];
    }
  });
}

void CpuBackend::cross_entropy_backward(Matrix dlogits, ConstMatrix logits, const float* lse,
                                        const int32_t* targets, float scale) {
  const int64_t V = logits.cols;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, logits.rows, 16), [&](const auto& r) {
    for (int64_t n = r.begin(); n != r.end(); ++n) {
      const float* row = logits.data + n * V;
      float* drow = dlogits.data + n * V;
      if (targets[n] < 0) {
        std::fill(drow, drow + V, 0.0f);
        continue;
      }
      for (int64_t j = 0; j < V; ++j) drow[j] = scale * std::exp(row[j] - lse[n]);
      drow[targets[n]] -= scale;
    }
  });
}

}  // namespace livs::evaluator
