// Rotary position embedding, "rotate half" pairs (i, i + head_dim / 2): one
// thread per pair, so out may alias in.
#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/device_math.cuh"
#include "evaluator/cuda/kernels.hpp"

namespace livs::evaluator::cuda {

namespace {

// Pair p of (row n, head h): index = (n * heads + h) * half + i.
template <bool kBackward>
__global__ void rope_kernel(float* dst, const float* src, const float* cos, const float* sin, RopeShape s,
                            int64_t pairs) {
  const int64_t half = s.head_dim / 2;
  for (int64_t p = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; p < pairs;
       p += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = p % half, nh = p / half, n = nh / s.heads;
    const int64_t pos = s.position_offset + n % s.seq;
    const float c = cos[pos * half + i], sn = sin[pos * half + i];
    const int64_t base = nh * s.head_dim + i;
    const float a = src[base], b = src[base + half];
    if constexpr (kBackward) {  // din += R^T dout
      dst[base] += a * c + b * sn;
      dst[base + half] += -a * sn + b * c;
    } else {
      dst[base] = a * c - b * sn;
      dst[base + half] = a * sn + b * c;
    }
  }
}

int64_t pair_count(const RopeShape& s) { return int64_t(s.batch) * s.seq * s.heads * (s.head_dim / 2); }

}  // namespace

void rope_forward(cudaStream_t stream, float* out, const float* in, const float* cos, const float* sin,
                  const RopeShape& shape) {
  const int64_t pairs = pair_count(shape);
  if (pairs <= 0) return;
  rope_kernel<false><<<grid_for(pairs), 256, 0, stream>>>(out, in, cos, sin, shape, pairs);
  LIVS_CUDA_CHECK_LAUNCH();
}

void rope_backward(cudaStream_t stream, float* din, const float* dout, const float* cos, const float* sin,
                   const RopeShape& shape) {
  const int64_t pairs = pair_count(shape);
  if (pairs <= 0) return;
  rope_kernel<true><<<grid_for(pairs), 256, 0, stream>>>(din, dout, cos, sin, shape, pairs);
  LIVS_CUDA_CHECK_LAUNCH();
}

}  // namespace livs::evaluator::cuda
