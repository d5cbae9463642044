// Fused softmax cross-entropy: one block per row of logits (fp32, or bf16 for
// the CUDA LM head), no softmax tensor kept.
#include <cuda_bf16.h>

#include <type_traits>

#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/device_math.cuh"
#include "evaluator/cuda/grid_dependency.cuh"
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

__device__ inline float to_float(float x) { return x; }
__device__ inline float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
template <class T>
__device__ inline T from_float(float x) {
  if constexpr (std::is_same_v<T, float>)
    return x;
  else
    return __float2bfloat16_rn(x);  // round to nearest even
}

// Values per 16-byte load: 4 floats or 8 bf16.
template <class T>
constexpr int kVector = 16 / int(sizeof(T));

template <class T>
__device__ inline bool vectorizable(const T* row, int64_t vocab) {
  return vocab % kVector<T> == 0 && reinterpret_cast<uintptr_t>(row) % 16 == 0;
}

// Logits are fp32, or bf16 (the CUDA LM head's own storage, cuda_lm_head.cpp).
template <class In>
__global__ void cross_entropy_forward_kernel(float* losses, float* lse, const In* logits,
                                             const int32_t* targets, int64_t vocab) {
  await_prior_grids();
  __shared__ float shared[32];
  const int64_t n = blockIdx.x;
  const In* row = logits + n * vocab;
  float m = -INFINITY, s = 0.0f;
  if (vectorizable(row, vocab)) {
    const uint4* row16 = reinterpret_cast<const uint4*>(row);
    for (int64_t j = threadIdx.x; j < vocab / kVector<In>; j += blockDim.x) {
      const uint4 raw = row16[j];
      const In* v = reinterpret_cast<const In*>(&raw);
#pragma unroll
      for (int e = 0; e < kVector<In>; ++e) online_add(to_float(v[e]), m, s);
    }
  } else {
    for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) online_add(to_float(row[j]), m, s);
  }
  const float mx = block_max(m, shared);
  const float sum = block_sum(m == -INFINITY ? 0.0f : s * expf(m - mx), shared);
  if (threadIdx.x == 0) {
    const float l = mx + logf(sum);
    lse[n] = l;
    losses[n] = targets[n] < 0 ? 0.0f : l - to_float(row[targets[n]]);
  }
}

// dlogits = scale * (softmax - onehot(target)). Each element is read and
// written by one thread, so dlogits may alias logits (T in and out).
template <class T>
__device__ inline T gradient(T logit, int64_t j, float l, int32_t target, float row_scale) {
  const float p = row_scale * expf(to_float(logit) - l);
  return from_float<T>(j == target ? p - row_scale : p);
}

template <class T>
__global__ void cross_entropy_backward_kernel(T* dlogits, const T* logits, const float* lse,
                                              const int32_t* targets, float scale, int64_t vocab) {
  await_prior_grids();
  const int64_t n = blockIdx.x;
  const float l = lse[n];
  const int32_t target = targets[n];
  const float row_scale = target < 0 ? 0.0f : scale;  // an ignored target: a zero row
  const T* row = logits + n * vocab;
  T* out = dlogits + n * vocab;
  if (vectorizable(row, vocab) && vectorizable(out, vocab)) {
    for (int64_t j = threadIdx.x; j < vocab / kVector<T>; j += blockDim.x) {
      uint4 raw = reinterpret_cast<const uint4*>(row)[j];
      T* v = reinterpret_cast<T*>(&raw);
#pragma unroll
      for (int e = 0; e < kVector<T>; ++e) v[e] = gradient(v[e], j * kVector<T> + e, l, target, row_scale);
      reinterpret_cast<uint4*>(out)[j] = raw;
    }
  } else {
    for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x)
      out[j] = gradient(row[j], j, l, target, row_scale);
  }
}

template <class In>
void launch_forward(cudaStream_t stream, float* losses, float* lse, const In* logits, int64_t rows,
                    int64_t vocab, const int32_t* targets) {
  if (rows <= 0) return;
  cross_entropy_forward_kernel<<<unsigned(rows), kThreads, 0, stream>>>(losses, lse, logits, targets, vocab);
  LIVS_CUDA_CHECK_LAUNCH();
}

template <class T>
void launch_backward(cudaStream_t stream, T* dlogits, const T* logits, int64_t rows, int64_t vocab,
                     const float* lse, const int32_t* targets, float scale) {
  if (rows <= 0) return;
  cross_entropy_backward_kernel<<<unsigned(rows), kThreads, 0, stream>>>(dlogits, logits, lse, targets, scale,
                                                                         vocab);
  LIVS_CUDA_CHECK_LAUNCH();
}

}  // namespace

void cross_entropy_forward(cudaStream_t stream, float* losses, float* lse, ConstMatrix logits,
                           const int32_t* targets) {
  launch_forward(stream, losses, lse, logits.data, logits.rows, logits.cols, targets);
}

void cross_entropy_forward_bf16(cudaStream_t stream, float* losses, float* lse, const void* logits_bf16,
                                int64_t rows, int64_t vocab, const int32_t* targets) {
  launch_forward(stream, losses, lse, static_cast<const __nv_bfloat16*>(logits_bf16), rows, vocab, targets);
}

void cross_entropy_backward(cudaStream_t stream, Matrix dlogits, ConstMatrix logits, const float* lse,
                            const int32_t* targets, float scale) {
  launch_backward(stream, dlogits.data, logits.data, logits.rows, logits.cols, lse, targets, scale);
}

void cross_entropy_backward_bf16_in_place(cudaStream_t stream, void* logits_bf16, int64_t rows, int64_t vocab,
                                          const float* lse, const int32_t* targets, float scale) {
  auto* logits = static_cast<__nv_bfloat16*>(logits_bf16);
  launch_backward(stream, logits, logits, rows, vocab, lse, targets, scale);
}

}  // namespace livs::evaluator::cuda
