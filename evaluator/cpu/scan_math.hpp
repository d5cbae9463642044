#pragma once
// Scalar functions shared by the CPU convolution, scan and pointwise kernels,
// written once so the parallel forward and the one-token decode (which call
// the same kernels) compute exactly the same operations.
#include <cmath>

namespace livs::evaluator::cpu {

inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

// log(1 + e^x) without overflow; x itself past 20, where the two agree in fp32.
inline float softplus(float x) { return x > 20.0f ? x : std::log1p(std::exp(x)); }

// The RG-LRU gate constant c and the bound on the square root's derivative:
// d sqrt(v) / dv = 0.5 / sqrt(max(v, kSqrtFloor)), at most 500 (Griffin's
// reference code bounds it the same way, so a -> 1 cannot blow up training).
constexpr float kSqrtFloor = 1e-6f;

}  // namespace livs::evaluator::cpu
