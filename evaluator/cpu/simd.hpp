#pragma once
// Helpers for the CPU kernels' hot loops.
//
// LIVS_CPU_CLONES compiles a function for AVX-512 and AVX2 machines beside the
// baseline and picks one at load time. The evaluator is built with
// -ffp-contract=off and these loops use explicit std::fma, so every clone
// computes exactly the same operations in the same order: the same bits on
// every x86-64 machine, just faster on newer ones.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

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

// exp(x) from a degree-6 polynomial after range reduction (Cephes' expf
// coefficients, about 1 ulp), written so it vectorizes inside a clone and
// gives the same bits on every ISA, unlike libm's expf, whose variants may
// differ in the last bit. Arguments are clamped to [-87, 88]: exp(-87) ~ 1.6e-38
// stands in for smaller values, which only ever feed sums with larger terms.
LIVS_INLINE float exp_poly(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);  // NaN passes through
  const float shifter = 12582912.0f;         // 1.5 * 2^23: adding it rounds to an integer
  const float n = (x * 1.44269504088896341f + shifter) - shifter;
  float r = std::fma(n, -0.693359375f, x);  // ln 2 split in two for an exact reduction
  r = std::fma(n, 2.12194440e-4f, r);
  float p = 1.9875691500e-4f;
  p = std::fma(p, r, 1.3981999507e-3f);
  p = std::fma(p, r, 8.3334519073e-3f);
  p = std::fma(p, r, 4.1665795894e-2f);
  p = std::fma(p, r, 1.6666665459e-1f);
  p = std::fma(p, r, 5.0000001201e-1f);
  const float e = std::fma(p * r, r, r) + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;  // 2^n
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return e * scale;
}

// y += alpha x, fused.
LIVS_INLINE void axpy_fma(float* y, float alpha, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::fma(alpha, x[i], y[i]);
}

}  // namespace livs::evaluator::cpu
