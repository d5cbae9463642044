// SwiGLU's gate: h = silu(g) * u with silu(g) = g * sigmoid(g).
#include <tbb/parallel_for.h>

#include "evaluator/cpu/cpu_backend.hpp"
#include "evaluator/cpu/simd.hpp"

namespace livs::evaluator {

namespace {

constexpr int64_t kGrain = 1 << 12;

LIVS_INLINE float sigmoid(float x) { return 1.0f / (1.0f + cpu::exp_poly(-x)); }

LIVS_CPU_CLONES void forward_range(int64_t begin, int64_t end, float* h, const float* gate, const float* up) {
  for (int64_t i = begin; i < end; ++i) h[i] = gate[i] * sigmoid(gate[i]) * up[i];
}

template <bool kAccumulate>
LIVS_CPU_CLONES void backward_range(int64_t begin, int64_t end, float* dgate, float* dup, const float* dh,
                                    const float* gate, const float* up) {
  for (int64_t i = begin; i < end; ++i) {
    const float g = gate[i], sg = sigmoid(g);
    const float grad_gate = dh[i] * up[i] * sg * (1.0f + g * (1.0f - sg)), grad_up = dh[i] * g * sg;
    dgate[i] = kAccumulate ? dgate[i] + grad_gate : grad_gate;
    dup[i] = kAccumulate ? dup[i] + grad_up : grad_up;
  }
}

}  // namespace

void CpuBackend::swiglu_forward(float* h, const float* gate, const float* up, int64_t count) {
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, count, kGrain),
                    [&](const auto& r) { forward_range(r.begin(), r.end(), h, gate, up); });
}

void CpuBackend::swiglu_backward(float* dgate, float* dup, const float* dh, const float* gate,
                                 const float* up, int64_t count, bool accumulate) {
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, count, kGrain), [&](const auto& r) {
    if (accumulate)
      backward_range<true>(r.begin(), r.end(), dgate, dup, dh, gate, up);
    else
      backward_range<false>(r.begin(), r.end(), dgate, dup, dh, gate, up);
  });
}

}  // namespace livs::evaluator
