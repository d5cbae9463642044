// SwiGLU's gate h = silu(g) * u and its backward (accumulating).
#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/device_math.cuh"
#include "evaluator/cuda/kernels.hpp"

namespace livs::evaluator::cuda {

namespace {

__device__ inline float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

__global__ void swiglu_forward_kernel(float* h, const float* gate, const float* up, int64_t count) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x) {
    const float g = gate[i];
    h[i] = g * sigmoid(g) * up[i];
  }
}

__global__ void swiglu_backward_kernel(float* dgate, float* dup, const float* dh, const float* gate,
                                       const float* up, int64_t count) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x) {
    const float g = gate[i], sg = sigmoid(g), d = dh[i];
    dgate[i] += d * up[i] * sg * (1.0f + g * (1.0f - sg));
    dup[i] += d * g * sg;
  }
}

}  // namespace

void swiglu_forward(cudaStream_t stream, float* h, const float* gate, const float* up, int64_t count) {
  if (count <= 0) return;
  swiglu_forward_kernel<<<grid_for(count), 256, 0, stream>>>(h, gate, up, count);
  LIVS_CUDA_CHECK_LAUNCH();
}

void swiglu_backward(cudaStream_t stream, float* dgate, float* dup, const float* dh, const float* gate,
                     const float* up, int64_t count) {
  if (count <= 0) return;
  swiglu_backward_kernel<<<grid_for(count), 256, 0, stream>>>(dgate, dup, dh, gate, up, count);
  LIVS_CUDA_CHECK_LAUNCH();
}

}  // namespace livs::evaluator::cuda
