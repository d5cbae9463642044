// Fused softmax cross-entropy: one block per row of logits, no softmax tensor kept.
#include <cuda_bf16.h>

#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/device_math.cuh"
#include "evaluator/cuda/kernels.hpp"

namespace livs::evaluator::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void cross_entropy_forward_kernel(float* losses, float* lse, const float* logits,
                                             const int32_t* targets, int64_t vocab) {
  __shared__ float shared[32];
  const int64_t n = blockIdx.x;
  const float* row = logits + n * vocab;
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) mx = fmaxf(mx, row[j]);
  mx = block_max(mx, shared);
  float sum = 0.0f;
  for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) sum += expf(row[j] - mx);
  sum = block_sum(sum, shared);
  if (threadIdx.x == 0) {
    const float l = mx + logf(sum);
    lse[n] = l;
    losses[n] = targets[n] < 0 ? 0.0f : l - row[targets[n]];
  }
}

// Each element is read and written by one thread, so dlogits may alias logits.
__global__ void cross_entropy_backward_kernel(float* dlogits, const float* logits, const float* lse,
                                              const int32_t* targets, float scale, int64_t vocab) {
  const int64_t n = blockIdx.x;
  const float l = lse[n];
  const int32_t target = targets[n];
  const float row_scale = target < 0 ? 0.0f : scale;  // an ignored target: a zero row
  for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) {
    const float p = row_scale * expf(logits[n * vocab + j] - l);
    dlogits[n * vocab + j] = j == target ? p - row_scale : p;
  }
}

// The same gradient rounded to bf16 into a separate buffer (the LM head's
// backward, cuda_lm_head.cpp).
__global__ void cross_entropy_backward_bf16_kernel(__nv_bfloat16* dlogits, const float* logits,
                                                   const float* lse, const int32_t* targets, float scale,
                                                   int64_t vocab) {
  const int64_t n = blockIdx.x;
  const float l = lse[n];
  const int32_t target = targets[n];
  const float row_scale = target < 0 ? 0.0f : scale;  // an ignored target: a zero row
  for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) {
    const float p = row_scale * expf(logits[n * vocab + j] - l);
    dlogits[n * vocab + j] = __float2bfloat16_rn(j == target ? p - row_scale : p);
  }
}

}  // namespace

void cross_entropy_forward(cudaStream_t stream, float* losses, float* lse, ConstMatrix logits,
                           const int32_t* targets) {
  if (logits.rows <= 0) return;
  cross_entropy_forward_kernel<<<unsigned(logits.rows), kThreads, 0, stream>>>(losses, lse, logits.data,
                                                                               targets, logits.cols);
  LIVS_CUDA_CHECK_LAUNCH();
}

void cross_entropy_backward(cudaStream_t stream, Matrix dlogits, ConstMatrix logits, const float* lse,
                            const int32_t* targets, float scale) {
  if (logits.rows <= 0) return;
  cross_entropy_backward_kernel<<<unsigned(logits.rows), kThreads, 0, stream>>>(
      dlogits.data, logits.data, lse, targets, scale, logits.cols);
  LIVS_CUDA_CHECK_LAUNCH();
}

void cross_entropy_backward_bf16(cudaStream_t stream, void* dlogits_bf16, ConstMatrix logits,
                                 const float* lse, const int32_t* targets, float scale) {
  if (logits.rows <= 0) return;
  cross_entropy_backward_bf16_kernel<<<unsigned(logits.rows), kThreads, 0, stream>>>(
      static_cast<__nv_bfloat16*>(dlogits_bf16), logits.data, lse, targets, scale, logits.cols);
  LIVS_CUDA_CHECK_LAUNCH();
}

}  // namespace livs::evaluator::cuda
