// SwiGLU's gate: h = silu(g) * u with silu(g) = g * sigmoid(g).
#include <tbb/parallel_for.h>

#include <cmath>

#include "evaluator/cpu/cpu_backend.hpp"

namespace livs::evaluator {

namespace {
constexpr int64_t kGrain = 1 << 12;
inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }
}  // namespace

void CpuBackend::swiglu_forward(float* h, const float* gate, const float* up, int64_t count) {
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, count, kGrain), [&](const auto& r) {
    for (int64_t i = r.begin(); i != r.end(); ++i) h[i] = gate[i] * sigmoid(gate[i]) * up[i];
  });
}

void CpuBackend::swiglu_backward(float* dgate, float* dup, const float* dh, const float* gate,
                                 const float* up, int64_t count) {
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, count, kGrain), [&](const auto& r) {
    for (int64_t i = r.begin(); i != r.end(); ++i) {
      const float g = gate[i], sg = sigmoid(g);
      dgate[i] += dh[i] * up[i] * sg * (1.0f + g * (1.0f - sg));
      dup[i] += dh[i] * g * sg;
    }
  });
}

}  // namespace livs::evaluator
