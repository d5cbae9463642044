// Combining two branches: the differential form (out = a1 - lambda * a2, lambda
// per head) and the learned fusion gate (out = s * y0 + (1 - s) * y1,
// s = sigmoid(gate) per column). Parameter gradients sum over rows in row
// order, one task per head or column block (deterministic).
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>

#include "evaluator/cpu/cpu_backend.hpp"

namespace livs::evaluator {

namespace {
constexpr int64_t kRowGrain = 64;
constexpr int64_t kColumnBlock = 16;
inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }
}  // namespace

void CpuBackend::differential_forward(float* out, const float* a1, const float* a2, const float* lambda,
                                      float lambda_init, int64_t rows, int heads, int head_dim) {
  const int64_t width = int64_t(heads) * head_dim;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, rows, kRowGrain), [&](const auto& r) {
    for (int64_t n = r.begin(); n != r.end(); ++n)
      for (int64_t h = 0; h < heads; ++h) {
        const float l = lambda_init + lambda[h];
        for (int64_t i = h * head_dim; i < (h + 1) * head_dim; ++i)
          out[n * width + i] = a1[n * width + i] - l * a2[n * width + i];
      }
  });
}

void CpuBackend::differential_backward(float* da1, float* da2, float* dlambda, const float* dout,
                                       const float* a2, const float* lambda, float lambda_init, int64_t rows,
                                       int heads, int head_dim) {
  const int64_t width = int64_t(heads) * head_dim;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, rows, kRowGrain), [&](const auto& r) {
    for (int64_t n = r.begin(); n != r.end(); ++n)
      for (int64_t h = 0; h < heads; ++h) {
        const float l = lambda_init + lambda[h];
        for (int64_t i = h * head_dim; i < (h + 1) * head_dim; ++i) {
          da1[n * width + i] += dout[n * width + i];
          da2[n * width + i] -= l * dout[n * width + i];
        }
      }
  });
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, heads, 1), [&](const auto& r) {
    for (int64_t h = r.begin(); h != r.end(); ++h) {
      float sum = 0.0f;
      for (int64_t n = 0; n < rows; ++n)
        for (int64_t i = h * head_dim; i < (h + 1) * head_dim; ++i)
          sum += dout[n * width + i] * a2[n * width + i];
      dlambda[h] -= sum;
    }
  });
}

void CpuBackend::gate_mix_forward(float* out, const float* y0, const float* y1, const float* gate,
                                  int64_t rows, int64_t cols) {
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, rows, kRowGrain), [&](const auto& r) {
    for (int64_t n = r.begin(); n != r.end(); ++n)
      for (int64_t c = 0; c < cols; ++c) {
        const float s = sigmoid(gate[c]);
        out[n * cols + c] = s * y0[n * cols + c] + (1.0f - s) * y1[n * cols + c];
      }
  });
}

void CpuBackend::gate_mix_backward(float* dy0, float* dy1, float* dgate, const float* dout, const float* y0,
                                   const float* y1, const float* gate, int64_t rows, int64_t cols) {
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, rows, kRowGrain), [&](const auto& r) {
    for (int64_t n = r.begin(); n != r.end(); ++n)
      for (int64_t c = 0; c < cols; ++c) {
        const float s = sigmoid(gate[c]);
        dy0[n * cols + c] += s * dout[n * cols + c];
        dy1[n * cols + c] += (1.0f - s) * dout[n * cols + c];
      }
  });
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, (cols + kColumnBlock - 1) / kColumnBlock),
                    [&](const auto& r) {
                      for (int64_t block = r.begin(); block != r.end(); ++block) {
                        const int64_t c0 = block * kColumnBlock, c1 = std::min(cols, c0 + kColumnBlock);
                        for (int64_t c = c0; c < c1; ++c) {
                          const float s = sigmoid(gate[c]);
                          float sum = 0.0f;
                          for (int64_t n = 0; n < rows; ++n)
                            sum += dout[n * cols + c] * (y0[n * cols + c] - y1[n * cols + c]);
                          dgate[c] += sum * s * (1.0f - s);
                        }
                      }
                    });
}

}  // namespace livs::evaluator
