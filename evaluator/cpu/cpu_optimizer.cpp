// Global gradient norm and the AdamW update.
#include <tbb/parallel_for.h>
#include <tbb/parallel_reduce.h>

#include <cmath>

#include "evaluator/cpu/cpu_backend.hpp"

namespace livs::evaluator {

namespace {

// The AdamW arithmetic both entry points share, so the host-scalar and the
// device-scalar versions give the same bits.
void adamw_loop(float* params, const float* grads, float* m, float* v, int64_t count, const AdamWStep& s,
                float learning_rate, float grad_scale, float bc1, float bc2) {
  const float decay = 1.0f - learning_rate * s.weight_decay;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, count, 1 << 14), [&](const auto& r) {
    for (int64_t i = r.begin(); i != r.end(); ++i) {
      const float g = grads[i] * grad_scale;
      m[i] = s.beta1 * m[i] + (1.0f - s.beta1) * g;
      v[i] = s.beta2 * v[i] + (1.0f - s.beta2) * g * g;
      const float m_hat = m[i] / bc1, v_hat = v[i] / bc2;
      params[i] = params[i] * decay - learning_rate * m_hat / (std::sqrt(v_hat) + s.eps);
    }
  });
}

}  // namespace

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
  const StepScalarInputs in = step_scalar_inputs(s.learning_rate, s.beta1, s.beta2, s.step);
  adamw_loop(params, grads, m, v, count, s, s.learning_rate, s.grad_scale, in.bias_correction1,
             in.bias_correction2);
}

void CpuBackend::grad_clip_scale(float* scale_out, double* norm_out, const float* grads, int64_t count,
                                 double max_norm) {
  const double norm = std::sqrt(sum_of_squares(grads, count));
  *norm_out = norm;
  *scale_out = (max_norm > 0.0 && norm > max_norm) ? float(max_norm / norm) : 1.0f;
}

void CpuBackend::adamw_update_device(float* params, const float* grads, float* m, float* v, int64_t count,
                                     const AdamWStep& constants, const DeviceStepScalars* scalars) {
  adamw_loop(params, grads, m, v, count, constants, scalars->in.learning_rate, scalars->out.grad_scale,
             scalars->in.bias_correction1, scalars->in.bias_correction2);
}

}  // namespace livs::evaluator
