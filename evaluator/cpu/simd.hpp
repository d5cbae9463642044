#pragma once
// Helpers for the CPU kernels' hot loops.
//
// LIVS_CPU_CLONES compiles a function for AVX-512 and AVX2 machines beside the
// baseline and picks one at load time. The evaluator is built with
// -ffp-contract=off and these loops use explicit std::fma, so every clone
// computes exactly the same operations in the same order: the same bits on
// every x86-64 machine, just faster on newer ones.
#include <cmath>
#include <cstdint>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(LIVS_NO_CPU_CLONES)
#define LIVS_CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define LIVS_CPU_CLONES
#endif
#define LIVS_INLINE __attribute__((always_inline)) inline

namespace livs::evaluator::cpu {

// sum_i a[i] b[i] with eight interleaved fused partial sums, added pairwise.
LIVS_INLINE float dot_fma(const float* a, const float* b, int64_t n) {
  float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) lane[l] = std::fma(a[i + l], b[i + l], lane[l]);
  for (int l = 0; i < n; ++i, ++l) lane[l] = std::fma(a[i], b[i], lane[l]);
  return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

// y += alpha x, fused.
LIVS_INLINE void axpy_fma(float* y, float alpha, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::fma(alpha, x[i], y[i]);
}

}  // namespace livs::evaluator::cpu
