// Fused softmax cross-entropy: one block per row of logits, no softmax tensor kept.
#include <cuda_bf16.h>

#include <type_traits>

#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/device_math.cuh"
#include "evaluator/cuda/kernels.hpp"

namespace livs::evaluator::cuda {

namespace {

constexpr int kThreads = 256;

// One pass over the row: each thread keeps a running max and the sum of
// exp(x - max) over its elements (rescaled when the max grows), then the
// block combines them in a fixed tree. Rows whose length is a multiple of 4
// are read 16 bytes at a time. (Two passes, max then sum, read the 3.3 GB of
// logits of the MFU shape twice.)
__device__ inline void online_add(float x, float& m, float& s) {
  if (x > m) {
    s = s * expf(m - x) + 1.0f;  // expf(-inf) = 0 on the first element
    m = x;
  } else {
    s += expf(x - m);
  }
}

__global__ void cross_entropy_forward_kernel(float* losses, float* lse, const float* logits,
                                             const int32_t* targets, int64_t vocab) {
  __shared__ float shared[32];
  const int64_t n = blockIdx.x;
  const float* row = logits + n * vocab;
  float m = -INFINITY, s = 0.0f;
  if (vocab % 4 == 0 && reinterpret_cast<uintptr_t>(row) % 16 == 0) {
    const float4* row4 = reinterpret_cast<const float4*>(row);
    for (int64_t j = threadIdx.x; j < vocab / 4; j += blockDim.x) {
      const float4 v = row4[j];
      online_add(v.x, m, s);
      online_add(v.y, m, s);
      online_add(v.z, m, s);
      online_add(v.w, m, s);
    }
  } else {
    for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) online_add(row[j], m, s);
  }
  const float mx = block_max(m, shared);
  const float sum = block_sum(m == -INFINITY ? 0.0f : s * expf(m - mx), shared);
  if (threadIdx.x == 0) {
    const float l = mx + logf(sum);
    lse[n] = l;
    losses[n] = targets[n] < 0 ? 0.0f : l - row[targets[n]];
  }
}

// Each element is read and written by one thread, so dlogits may alias
// logits. Out is float (in place) or __nv_bfloat16 (the LM head's backward,
// cuda_lm_head.cpp), rounded to nearest even.
template <class Out>
__global__ void cross_entropy_backward_kernel(Out* dlogits, const float* logits, const float* lse,
                                              const int32_t* targets, float scale, int64_t vocab) {
  const int64_t n = blockIdx.x;
  const float l = lse[n];
  const int32_t target = targets[n];
  const float row_scale = target < 0 ? 0.0f : scale;  // an ignored target: a zero row
  for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) {
    const float p = row_scale * expf(logits[n * vocab + j] - l);
    const float d = j == target ? p - row_scale : p;
    if constexpr (std::is_same_v<Out, float>)
      dlogits[n * vocab + j] = d;
    else
      dlogits[n * vocab + j] = __float2bfloat16_rn(d);
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
  cross_entropy_backward_kernel<<<unsigned(logits.rows), kThreads, 0, stream>>>(
      static_cast<__nv_bfloat16*>(dlogits_bf16), logits.data, lse, targets, scale, logits.cols);
  LIVS_CUDA_CHECK_LAUNCH();
}

}  // namespace livs::evaluator::cuda
