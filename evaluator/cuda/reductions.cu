// The global gradient norm's sum of squares, in double and in a fixed order:
// a fixed number of blocks, each thread striding the same elements on every
// device, then one block summing the block partials in a fixed tree.
#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/device_math.cuh"
#include "evaluator/cuda/kernels.hpp"

namespace livs::evaluator::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void sum_of_squares_partials_kernel(double* partials, const float* x, int64_t count) {
  __shared__ double shared[32];
  double acc = 0.0;
  const int64_t stride = int64_t(kSumOfSquaresBlocks) * kThreads;
  for (int64_t i = blockIdx.x * int64_t(kThreads) + threadIdx.x; i < count; i += stride)
    acc += double(x[i]) * double(x[i]);
  acc = block_sum(acc, shared);
  if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

__global__ void sum_of_squares_final_kernel(double* partials) {
  __shared__ double shared[32];
  const double total = block_sum(partials[threadIdx.x], shared);
  if (threadIdx.x == 0) partials[kSumOfSquaresBlocks] = total;
}

static_assert(kSumOfSquaresBlocks == kThreads, "the final pass reads one partial per thread");

}  // namespace

void sum_of_squares(cudaStream_t stream, double* partials, const float* x, int64_t count) {
  sum_of_squares_partials_kernel<<<kSumOfSquaresBlocks, kThreads, 0, stream>>>(partials, x, count);
  LIVS_CUDA_CHECK_LAUNCH();
  sum_of_squares_final_kernel<<<1, kThreads, 0, stream>>>(partials);
  LIVS_CUDA_CHECK_LAUNCH();
}

}  // namespace livs::evaluator::cuda
