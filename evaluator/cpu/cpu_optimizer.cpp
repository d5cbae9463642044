// Global gradient norm and the AdamW update.
#include <tbb/parallel_for.h>
#include <tbb/parallel_reduce.h>

#include <cmath>

#include "evaluator/cpu/cpu_backend.hpp"

namespace livs::evaluator {

// parallel_deterministic_reduce splits down to the grain and joins in a fixed
// tree, so the sum does not depend on the number of threads.
double CpuBackend::sum_of_squares(const float* x, int64_t count) {
  return tbb::parallel_deterministic_reduce(
      tbb::blocked_range<int64_t>(0, count, 4096), 0.0,
      [&](const tbb::blocked_range<int64_t>& r, double acc) {
        for (int64_t i = r.begin(); i != r.end(); ++i) acc += double(x[i]) * double(x[i]);
        return acc;
      },
      [](double a, double b) { return a + b; });
}

void CpuBackend::adamw_update(float* params, const float* grads, float* m, float* v, int64_t count,
                              const AdamWStep& s) {
  const float bc1 = 1.0f - float(std::pow(double(s.beta1), s.step));
  const float bc2 = 1.0f - float(std::pow(double(s.beta2), s.step));
  const float decay = 1.0f - s.learning_rate * s.weight_decay;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, count, 1 << 14), [&](const auto& r) {
    for (int64_t i = r.begin(); i != r.end(); ++i) {
      const float g = grads[i] * s.grad_scale;
      m[i] = s.beta1 * m[i] + (1.0f - s.beta1) * g;
      v[i] = s.beta2 * v[i] + (1.0f - s.beta2) * g * g;
      const float m_hat = m[i] / bc1, v_hat = v[i] / bc2;
      params[i] = params[i] * decay - s.learning_rate * m_hat / (std::sqrt(v_hat) + s.eps);
    }
  });
}

}  // namespace livs::evaluator
