// Fill and add: grid-stride elementwise kernels.
#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/device_math.cuh"
#include "evaluator/cuda/kernels.hpp"

namespace livs::evaluator::cuda {

namespace {

__global__ void fill_kernel(float* dst, int64_t count, float value) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = value;
}

__global__ void add_kernel(float* out, const float* a, const float* b, int64_t count) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i] = a[i] + b[i];
}

}  // namespace

void fill(cudaStream_t stream, float* dst, int64_t count, float value) {
  if (count <= 0) return;
  fill_kernel<<<grid_for(count), 256, 0, stream>>>(dst, count, value);
  LIVS_CUDA_CHECK_LAUNCH();
}

void add(cudaStream_t stream, float* out, const float* a, const float* b, int64_t count) {
  if (count <= 0) return;
  add_kernel<<<grid_for(count), 256, 0, stream>>>(out, a, b, count);
  LIVS_CUDA_CHECK_LAUNCH();
}

}  // namespace livs::evaluator::cuda
