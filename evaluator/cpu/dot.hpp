#pragma once
// A dot product with a fixed summation order (eight interleaved partial sums,
// added pairwise at the end). It vectorizes without -ffast-math and gives the
// same bits whatever the vector width, so kernels stay deterministic.
#include <cstdint>

namespace livs::evaluator::cpu {

inline float dot(const float* a, const float* b, int64_t n) {
  float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) lane[l] += a[i + l] * b[i + l];
  for (int l = 0; i < n; ++i, ++l) lane[l] += a[i] * b[i];
  return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

// y += alpha * x
inline void axpy(float* y, float alpha, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

}  // namespace livs::evaluator::cpu
