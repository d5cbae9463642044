// SwiGLU's elementwise math, shared by the SwiGLU kernels and the grouped
// GEMMs that apply it in their epilogues (MoE), so both give the same bits.
#pragma once

#include "evaluator/cuda/device_math.cuh"

namespace livs::evaluator::cuda {

__device__ inline float swiglu(float g, float u) { return g * sigmoid(g) * u; }

// (d/dg, d/du) of silu(g) u, times d: d u s (1 + g (1 - s)) and d g s, s = sigmoid(g).
__device__ inline float2 swiglu_grads(float d, float g, float u) {
  const float sg = sigmoid(g);
  return {d * u * sg * (1.0f + g * (1.0f - sg)), d * g * sg};
}

}  // namespace livs::evaluator::cuda
