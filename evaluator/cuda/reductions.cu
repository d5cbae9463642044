// The global gradient norm's sum of squares and the loss mean, in double and
// in a fixed order: a fixed number of blocks, each thread striding the same
// elements on every device, then one block summing the block partials in a
// fixed tree.
#include <cmath>

#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/device_math.cuh"
#include "evaluator/cuda/grid_dependency.cuh"
#include "evaluator/cuda/kernels.hpp"
#include "evaluator/cuda/step_kernels.hpp"

namespace livs::evaluator::cuda {

namespace {

constexpr int kThreads = 256;

template <bool kSquare>
__global__ void sum_partials_kernel(double* partials, const float* x, int64_t count) {
  await_prior_grids();
  __shared__ double shared[32];
  double acc = 0.0;
  const int64_t stride = int64_t(kSumOfSquaresBlocks) * kThreads;
  for (int64_t i = blockIdx.x * int64_t(kThreads) + threadIdx.x; i < count; i += stride)
    acc += kSquare ? double(x[i]) * double(x[i]) : double(x[i]);
  acc = block_sum(acc, shared);
  if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

__global__ void sum_of_squares_final_kernel(double* partials) {
  await_prior_grids();
  __shared__ double shared[32];
  const double total = block_sum(partials[threadIdx.x], shared);
  if (threadIdx.x == 0) partials[kSumOfSquaresBlocks] = total;
}

__global__ void mean_final_kernel(double* out, const double* partials, int64_t count) {
  await_prior_grids();
  __shared__ double shared[32];
  const double total = block_sum(partials[threadIdx.x], shared);
  if (threadIdx.x == 0) *out = count > 0 ? total / double(count) : 0.0;
}

// The trainer's host formula, in double on the device (sqrt and division are
// correctly rounded in both places, so host and device agree bit for bit).
__global__ void grad_clip_final_kernel(float* scale_out, double* norm_out, const double* partials,
                                       double max_norm) {
  await_prior_grids();
  __shared__ double shared[32];
  const double total = block_sum(partials[threadIdx.x], shared);
  if (threadIdx.x == 0) {
    const double norm = sqrt(total);
    *norm_out = norm;
    *scale_out = (max_norm > 0.0 && norm > max_norm) ? float(max_norm / norm) : 1.0f;
  }
}

static_assert(kSumOfSquaresBlocks == kThreads, "the final pass reads one partial per thread");

}  // namespace

void sum_of_squares(cudaStream_t stream, double* partials, const float* x, int64_t count) {
  sum_partials_kernel<true><<<kSumOfSquaresBlocks, kThreads, 0, stream>>>(partials, x, count);
  LIVS_CUDA_CHECK_LAUNCH();
  sum_of_squares_final_kernel<<<1, kThreads, 0, stream>>>(partials);
  LIVS_CUDA_CHECK_LAUNCH();
}

void mean_to_device(cudaStream_t stream, double* partials, double* out, const float* x, int64_t count) {
  sum_partials_kernel<false><<<kSumOfSquaresBlocks, kThreads, 0, stream>>>(partials, x, count);
  LIVS_CUDA_CHECK_LAUNCH();
  mean_final_kernel<<<1, kThreads, 0, stream>>>(out, partials, count);
  LIVS_CUDA_CHECK_LAUNCH();
}

void grad_clip_scale(cudaStream_t stream, double* partials, float* scale_out, double* norm_out,
                     const float* grads, int64_t count, double max_norm) {
  sum_partials_kernel<true><<<kSumOfSquaresBlocks, kThreads, 0, stream>>>(partials, grads, count);
  LIVS_CUDA_CHECK_LAUNCH();
  grad_clip_final_kernel<<<1, kThreads, 0, stream>>>(scale_out, norm_out, partials, max_norm);
  LIVS_CUDA_CHECK_LAUNCH();
}

}  // namespace livs::evaluator::cuda
