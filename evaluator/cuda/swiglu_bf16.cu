// SwiGLU whose outputs only feed GEMMs (Backend::swiglu_forward_bf16 /
// swiglu_backward_bf16): h, dgate and dup are written straight to bf16 GEMM
// shadows, so no fp32 copy is written, zeroed or rounded afterwards. The
// math is swiglu.cu's in fp32; only the stores round (to nearest even), so
// the shadows hold the bits that rounding swiglu.cu's outputs would give.
#include <cuda_bf16.h>

#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/device_math.cuh"
#include "evaluator/cuda/kernels.hpp"

namespace livs::evaluator::cuda {

namespace {

__device__ inline float sigmoid_of(float x) { return 1.0f / (1.0f + expf(-x)); }

// Four consecutive bf16 values from four floats (one 8-byte store).
__device__ inline void store_bf16x4(__nv_bfloat16* dst, int64_t quad, float a, float b, float c, float d) {
  __nv_bfloat162* out = reinterpret_cast<__nv_bfloat162*>(dst + 4 * quad);
  out[0] = __floats2bfloat162_rn(a, b);
  out[1] = __floats2bfloat162_rn(c, d);
}

struct Forward {
  __device__ float operator()(float g, float u) const { return g * sigmoid_of(g) * u; }
};

// d/dg of silu(g) u and d/du, times dh.
__device__ inline float2 swiglu_grads(float d, float g, float u) {
  const float s = sigmoid_of(g);
  return {d * u * s * (1.0f + g * (1.0f - s)), d * g * s};
}

bool aligned(const void* p, int bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

__global__ void swiglu_forward_bf16_kernel(__nv_bfloat16* h, const float* gate, const float* up,
                                           int64_t count, bool vector) {
  const int64_t start = blockIdx.x * int64_t(blockDim.x) + threadIdx.x,
                stride = int64_t(gridDim.x) * blockDim.x;
  const Forward f;
  int64_t done = 0;
  if (vector) {
    for (int64_t q = start; q < count / 4; q += stride) {
      const float4 g = reinterpret_cast<const float4*>(gate)[q], u = reinterpret_cast<const float4*>(up)[q];
      store_bf16x4(h, q, f(g.x, u.x), f(g.y, u.y), f(g.z, u.z), f(g.w, u.w));
    }
    done = count / 4 * 4;
  }
  for (int64_t i = done + start; i < count; i += stride) h[i] = __float2bfloat16_rn(f(gate[i], up[i]));
}

__global__ void swiglu_backward_bf16_kernel(__nv_bfloat16* dgate, __nv_bfloat16* dup, const float* dh,
                                            const float* gate, const float* up, int64_t count, bool vector) {
  const int64_t start = blockIdx.x * int64_t(blockDim.x) + threadIdx.x,
                stride = int64_t(gridDim.x) * blockDim.x;
  int64_t done = 0;
  if (vector) {
    for (int64_t q = start; q < count / 4; q += stride) {
      const float4 d = reinterpret_cast<const float4*>(dh)[q], g = reinterpret_cast<const float4*>(gate)[q],
                   u = reinterpret_cast<const float4*>(up)[q];
      const float2 a = swiglu_grads(d.x, g.x, u.x), b = swiglu_grads(d.y, g.y, u.y),
                   c = swiglu_grads(d.z, g.z, u.z), e = swiglu_grads(d.w, g.w, u.w);
      store_bf16x4(dgate, q, a.x, b.x, c.x, e.x);
      store_bf16x4(dup, q, a.y, b.y, c.y, e.y);
    }
    done = count / 4 * 4;
  }
  for (int64_t i = done + start; i < count; i += stride) {
    const float2 r = swiglu_grads(dh[i], gate[i], up[i]);
    dgate[i] = __float2bfloat16_rn(r.x);
    dup[i] = __float2bfloat16_rn(r.y);
  }
}

}  // namespace

void swiglu_forward_bf16(cudaStream_t stream, void* h16, const float* gate, const float* up, int64_t count) {
  if (count <= 0) return;
  auto* h = static_cast<__nv_bfloat16*>(h16);
  const bool vector = aligned(gate, 16) && aligned(up, 16) && aligned(h, 8);
  swiglu_forward_bf16_kernel<<<grid_for((count + 3) / 4), 256, 0, stream>>>(h, gate, up, count, vector);
  LIVS_CUDA_CHECK_LAUNCH();
}

void swiglu_backward_bf16(cudaStream_t stream, void* dgate16, void* dup16, const float* dh, const float* gate,
                          const float* up, int64_t count) {
  if (count <= 0) return;
  auto *dgate = static_cast<__nv_bfloat16*>(dgate16), *dup = static_cast<__nv_bfloat16*>(dup16);
  const bool vector =
      aligned(dh, 16) && aligned(gate, 16) && aligned(up, 16) && aligned(dgate, 8) && aligned(dup, 8);
  swiglu_backward_bf16_kernel<<<grid_for((count + 3) / 4), 256, 0, stream>>>(dgate, dup, dh, gate, up, count,
                                                                             vector);
  LIVS_CUDA_CHECK_LAUNCH();
}

}  // namespace livs::evaluator::cuda
