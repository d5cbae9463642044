#pragma once
// Small device helpers shared by the kernels: warp and block reductions in a
// fixed tree (deterministic), grid sizing for grid-stride loops.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

namespace livs::evaluator::cuda {

constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kWarpSize = 32;

// Butterfly reductions: every lane ends with the same value, combined in the
// same order on every run.
__device__ inline float warp_sum(float x) {
  for (int offset = 16; offset > 0; offset >>= 1) x += __shfl_xor_sync(kFullMask, x, offset);
  return x;
}
__device__ inline double warp_sum(double x) {
  for (int offset = 16; offset > 0; offset >>= 1) x += __shfl_xor_sync(kFullMask, x, offset);
  return x;
}
__device__ inline float warp_max(float x) {
  for (int offset = 16; offset > 0; offset >>= 1) x = fmaxf(x, __shfl_xor_sync(kFullMask, x, offset));
  return x;
}

struct SumOp {
  __device__ float operator()(float x) const { return warp_sum(x); }
  __device__ double operator()(double x) const { return warp_sum(x); }
};
struct MaxOp {
  __device__ float operator()(float x) const { return warp_max(x); }
};

// Reduction over a whole block (blockDim.x a multiple of 32, at most 1024);
// `shared` holds 32 values. Every thread gets the result.
template <class T, class WarpOp>
__device__ T block_reduce(T x, T* shared, WarpOp warp_op, T identity) {
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const int warps = blockDim.x / kWarpSize;
  x = warp_op(x);
  __syncthreads();  // `shared` may still be read after a previous reduction
  if (lane == 0) shared[warp] = x;
  __syncthreads();
  if (warp == 0) {
    T total = warp_op(lane < warps ? shared[lane] : identity);
    if (lane == 0) shared[0] = total;
  }
  __syncthreads();
  return shared[0];
}

__device__ inline float block_sum(float x, float* shared) { return block_reduce(x, shared, SumOp{}, 0.0f); }
__device__ inline double block_sum(double x, double* shared) { return block_reduce(x, shared, SumOp{}, 0.0); }
__device__ inline float block_max(float x, float* shared) {
  return block_reduce(x, shared, MaxOp{}, -INFINITY);
}

// Blocks for a grid-stride loop over n elements.
inline unsigned grid_for(int64_t n, int threads = 256) {
  return static_cast<unsigned>(std::clamp<int64_t>((n + threads - 1) / threads, 1, int64_t(1) << 16));
}

}  // namespace livs::evaluator::cuda
