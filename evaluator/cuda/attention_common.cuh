#pragma once
// Shared by the attention kernels (attention.cu, attention_backward.cu).
//
// Tiling: a block holds kRows warps, one row (a query, or in the dk/dv
// kernel a key) per warp. The other side is visited in tiles of 32 rows
// staged in shared memory with a padded stride (head_dim + 1, so that lane j
// reading row j does not hit one bank). Lane j scores row j of the tile; the
// warp then accumulates over the tile with lane l owning the head dimensions
// l, l + 32, ... (kDims of them). No seq x seq matrix exists anywhere.
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <type_traits>

#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/kernels.hpp"

namespace livs::evaluator::cuda {

constexpr int kRows = 8;   // warps per block
constexpr int kTile = 32;  // rows per shared-memory tile: one per lane
constexpr int kMaxHeadDim = 512;

// The first key a query at `position` sees (int for tiles, int64_t for decode positions).
template <class Index>
__host__ __device__ inline Index first_key(Index position, int window) {
  return window > 0 ? (position - window + 1 > 0 ? position - window + 1 : Index(0)) : Index(0);
}
// Keys per split of the one-token decode (flash-decoding).
constexpr int kDecodeSplit = 256;

// Calls f(std::integral_constant<int, kDims>) with kDims = head dims per lane.
template <class F>
void dispatch_head_dim(int head_dim, F&& f) {
  if (head_dim <= 0 || head_dim > kMaxHeadDim)
    throw std::invalid_argument("CUDA attention: head_dim " + std::to_string(head_dim) + " is outside 1.." +
                                std::to_string(kMaxHeadDim));
  if (head_dim <= 32) return f(std::integral_constant<int, 1>{});
  if (head_dim <= 64) return f(std::integral_constant<int, 2>{});
  if (head_dim <= 128) return f(std::integral_constant<int, 4>{});
  if (head_dim <= 256) return f(std::integral_constant<int, 8>{});
  return f(std::integral_constant<int, 16>{});
}

// Lets a kernel use more than the default 48 KiB of dynamic shared memory.
template <class Kernel>
void allow_shared_memory(Kernel kernel, std::size_t bytes) {
  opt_in_dynamic_shared(kernel, bytes);
}

// Dot product of two head_dim rows in shared memory (one lane, sequential).
__device__ inline float row_dot(const float* a, const float* b, int head_dim) {
  float acc = 0.0f;
  for (int d = 0; d < head_dim; ++d) acc += a[d] * b[d];
  return acc;
}

}  // namespace livs::evaluator::cuda
