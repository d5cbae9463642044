// Fill, add and the conversion to bf16: grid-stride elementwise kernels with
// 16-byte accesses where the pointers allow (a scalar tail for count % 4).
#include <cuda_bf16.h>

#include <cmath>

#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/device_math.cuh"
#include "evaluator/cuda/grid_dependency.cuh"
#include "evaluator/cuda/kernels.hpp"

namespace livs::evaluator::cuda {

namespace {

__global__ void fill_kernel(float* dst, int64_t count, float value, bool vector) {
  await_prior_grids();
  grid_stride_quads(
      count, vector,
      [&](int64_t i) {
        store4(dst, i, {value, value, value, value});
      },
      [&](int64_t i) { dst[i] = value; });
}

// out may alias a or b: each element is read before it is written, by one thread.
__global__ void add_kernel(float* out, const float* a, const float* b, int64_t count, bool vector) {
  await_prior_grids();
  grid_stride_quads(
      count, vector, [&](int64_t i) { store4(out, i, load4(a, i) + load4(b, i)); },
      [&](int64_t i) { out[i] = a[i] + b[i]; });
}

// Four values per thread and iteration (16-byte loads) where the pointers
// allow it; round to nearest even, as the tensor cores' own conversion.
__global__ void to_bf16_kernel(__nv_bfloat16* dst, const float* src, int64_t count, bool vector) {
  await_prior_grids();
  grid_stride_quads(
      count, vector, [&](int64_t i) { store4_bf16(dst, i, load4(src, i)); },
      [&](int64_t i) { dst[i] = __float2bfloat16_rn(src[i]); });
}

}  // namespace

void to_bf16(cudaStream_t stream, void* dst, const float* src, int64_t count) {
  if (count <= 0) return;
  auto* out = static_cast<__nv_bfloat16*>(dst);
  to_bf16_kernel<<<grid_for((count + 3) / 4), 256, 0, stream>>>(out, src, count,
                                                                aligned16(src) && aligned8(out));
  LIVS_CUDA_CHECK_LAUNCH();
}

void fill(cudaStream_t stream, float* dst, int64_t count, float value) {
  if (count <= 0) return;
  if (value == 0.0f && !std::signbit(value)) {  // +0.0f is all zero bytes: one memset, graph-capturable
    LIVS_CUDA_CHECK(cudaMemsetAsync(dst, 0, std::size_t(count) * sizeof(float), stream));
    return;
  }
  fill_kernel<<<grid_for((count + 3) / 4), 256, 0, stream>>>(dst, count, value, aligned16(dst));
  LIVS_CUDA_CHECK_LAUNCH();
}

void add(cudaStream_t stream, float* out, const float* a, const float* b, int64_t count) {
  if (count <= 0) return;
  add_kernel<<<grid_for((count + 3) / 4), 256, 0, stream>>>(out, a, b, count, aligned16(out, a, b));
  LIVS_CUDA_CHECK_LAUNCH();
}

}  // namespace livs::evaluator::cuda
