// SwiGLU's gate h = silu(g) * u and its backward (accumulating), elementwise
// with 16-byte accesses where every pointer allows.
#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/device_math.cuh"
#include "evaluator/cuda/kernels.hpp"

namespace livs::evaluator::cuda {

namespace {

__device__ inline float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

__device__ inline float swiglu(float g, float u) { return g * sigmoid(g) * u; }

// dgate += d * u * s * (1 + g (1 - s)), dup += d * g * s with s = sigmoid(g).
__device__ inline void swiglu_grad(float& dgate, float& dup, float d, float g, float u) {
  const float sg = sigmoid(g);
  dgate += d * u * sg * (1.0f + g * (1.0f - sg));
  dup += d * g * sg;
}

__global__ void swiglu_forward_kernel(float* h, const float* gate, const float* up, int64_t count,
                                      bool vector) {
  grid_stride_quads(
      count, vector,
      [&](int64_t i) {
        const float4 g = load4(gate, i), u = load4(up, i);
        store4(h, i, {swiglu(g.x, u.x), swiglu(g.y, u.y), swiglu(g.z, u.z), swiglu(g.w, u.w)});
      },
      [&](int64_t i) { h[i] = swiglu(gate[i], up[i]); });
}

__global__ void swiglu_backward_kernel(float* dgate, float* dup, const float* dh, const float* gate,
                                       const float* up, int64_t count, bool vector) {
  grid_stride_quads(
      count, vector,
      [&](int64_t i) {
        const float4 d = load4(dh, i), g = load4(gate, i), u = load4(up, i);
        float4 dg = load4(dgate, i), du = load4(dup, i);
        swiglu_grad(dg.x, du.x, d.x, g.x, u.x);
        swiglu_grad(dg.y, du.y, d.y, g.y, u.y);
        swiglu_grad(dg.z, du.z, d.z, g.z, u.z);
        swiglu_grad(dg.w, du.w, d.w, g.w, u.w);
        store4(dgate, i, dg);
        store4(dup, i, du);
      },
      [&](int64_t i) { swiglu_grad(dgate[i], dup[i], dh[i], gate[i], up[i]); });
}

}  // namespace

void swiglu_forward(cudaStream_t stream, float* h, const float* gate, const float* up, int64_t count) {
  if (count <= 0) return;
  swiglu_forward_kernel<<<grid_for((count + 3) / 4), 256, 0, stream>>>(h, gate, up, count,
                                                                       aligned16(h, gate, up));
  LIVS_CUDA_CHECK_LAUNCH();
}

void swiglu_backward(cudaStream_t stream, float* dgate, float* dup, const float* dh, const float* gate,
                     const float* up, int64_t count) {
  if (count <= 0) return;
  swiglu_backward_kernel<<<grid_for((count + 3) / 4), 256, 0, stream>>>(dgate, dup, dh, gate, up, count,
                                                                        aligned16(dgate, dup, dh, gate, up));
  LIVS_CUDA_CHECK_LAUNCH();
}

}  // namespace livs::evaluator::cuda
