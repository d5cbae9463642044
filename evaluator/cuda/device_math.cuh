#pragma once
// Small device helpers shared by the kernels: warp and block reductions in a
// fixed tree (deterministic), grid sizing for grid-stride loops.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "evaluator/cuda/cuda_check.hpp"

namespace livs::evaluator::cuda {

constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kWarpSize = 32;

__device__ inline float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

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

// Sum over aligned groups of G lanes (G a power of two, at most 32) of one
// warp, in a fixed butterfly: every lane of a group ends with its group's sum.
// All 32 lanes must call it.
template <int G>
__device__ inline float group_sum(float x) {
  static_assert(G >= 1 && G <= kWarpSize && (G & (G - 1)) == 0, "G: a power of two up to 32");
  for (int offset = G / 2; offset > 0; offset >>= 1) x += __shfl_xor_sync(kFullMask, x, offset);
  return x;
}

// 16-byte accesses: element 4i..4i+3 of a 16-byte aligned float array.
__device__ inline float4 load4(const float* p, int64_t i) { return reinterpret_cast<const float4*>(p)[i]; }
__device__ inline void store4(float* p, int64_t i, float4 v) { reinterpret_cast<float4*>(p)[i] = v; }
__device__ inline float4 operator+(float4 a, float4 b) {
  return {a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w};
}
__device__ inline float4& operator+=(float4& a, float4 b) { return a = a + b; }
__device__ inline float4 operator*(float4 a, float s) { return {a.x * s, a.y * s, a.z * s, a.w * s}; }

// Whether every pointer is 16-byte aligned (the float4 paths need it; views
// into the middle of a buffer may not be).
template <class... T>
inline bool aligned16(const T*... pointers) {
  return ((reinterpret_cast<uintptr_t>(pointers) % 16 == 0) && ...);
}
// The same for the 8-byte stores of four bf16 values (store4_bf16).
template <class... T>
inline bool aligned8(const T*... pointers) {
  return ((reinterpret_cast<uintptr_t>(pointers) % 8 == 0) && ...);
}

// Whether every pointer allows the accesses of four elements at once (16
// bytes of fp32, 8 of bf16: load4, store4, store4_bf16).
template <class... T>
inline bool quads_aligned(const T*... pointers) {
  return ((reinterpret_cast<uintptr_t>(pointers) % (4 * sizeof(T)) == 0) && ...);
}

// Elements 4i..4i+3 of an 8-byte aligned bf16 array from four floats, rounded
// to nearest even, in one 8-byte store (two bf16x2 stores would be two).
__device__ inline void store4_bf16(__nv_bfloat16* p, int64_t i, float4 v) {
  const __nv_bfloat162 lo = __floats2bfloat162_rn(v.x, v.y), hi = __floats2bfloat162_rn(v.z, v.w);
  uint2 packed;
  packed.x = *reinterpret_cast<const uint32_t*>(&lo);
  packed.y = *reinterpret_cast<const uint32_t*>(&hi);
  *reinterpret_cast<uint2*>(p + 4 * i) = packed;
}

// Elements 4i..4i+3 of an 8-byte aligned bf16 array, widened, in one 8-byte
// load: with the float overloads, a kernel templated on its input type
// reads fp32 or bf16 activations alike.
__device__ inline float4 load4(const __nv_bfloat16* p, int64_t i) {
  const uint2 packed = *reinterpret_cast<const uint2*>(p + 4 * i);
  const float2 lo = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&packed.x)),
               hi = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&packed.y));
  return {lo.x, lo.y, hi.x, hi.y};
}
__device__ inline float widen(float x) { return x; }
__device__ inline float widen(__nv_bfloat16 x) { return __bfloat162float(x); }
// And the stores of a kernel templated on its output type: fp32 as it is,
// bf16 rounded to nearest even.
__device__ inline void store4(__nv_bfloat16* p, int64_t i, float4 v) { store4_bf16(p, i, v); }
__device__ inline void store1(float* p, int64_t i, float v) { p[i] = v; }
__device__ inline void store1(__nv_bfloat16* p, int64_t i, float v) { p[i] = __float2bfloat16_rn(v); }

// Where element e of a [rows, cols] tensor lies in an array whose rows are
// `ld` elements apart (ld >= cols: one part of every row of a wider tensor).
struct RowsApart {
  int64_t cols, ld;
  __device__ int64_t operator()(int64_t e) const { return e / cols * ld + e % cols; }
};

// One owner's contribution to a gradient element: added into it
// (accumulate), or written over it without reading it.
__device__ inline void add_or_write(float& to, float value, bool accumulate) {
  to = accumulate ? to + value : value;
}

// Grid-stride loop over count elements in steps of four when `vector`
// (16-byte accesses: quad(i) handles elements 4i..4i+3, then single(i) the
// count % 4 tail), else single(i) for every element. Launch it with
// grid_for((count + 3) / 4) blocks.
template <class Quad, class Single>
__device__ inline void grid_stride_quads(int64_t count, bool vector, Quad quad, Single single) {
  const int64_t start = blockIdx.x * int64_t(blockDim.x) + threadIdx.x,
                stride = int64_t(gridDim.x) * blockDim.x;
  int64_t done = 0;
  if (vector) {
    const int64_t quads = count / 4;
    for (int64_t i = start; i < quads; i += stride) quad(i);
    done = quads * 4;
  }
  for (int64_t i = done + start; i < count; i += stride) single(i);
}

// One batch of at most kAhead steps t = first, first + dir, ... (dir = 1 or
// -1): load(t) for every step before step(t, loaded) for any. A thread
// walking time one step at a time waited on each step's loads in turn (the
// compiler cannot move them above the previous step's stores, which might
// alias them); with the batch's loads in flight together the RG-LRU passes
// and the short convolutions stopped being latency-bound.
template <int kAhead, class Load, class Step>
__device__ __forceinline__ void walk_batch(int64_t first, int count, int dir, Load load, Step step) {
  using Loaded = decltype(load(first));
  Loaded in[kAhead];
#pragma unroll
  for (int u = 0; u < kAhead; ++u)
    if (u < count) in[u] = load(first + u * dir);
#pragma unroll
  for (int u = 0; u < kAhead; ++u)
    if (u < count) step(first + u * dir, in[u]);
}

// count steps of any length, kAhead at a time (walk_batch).
template <int kAhead, class Load, class Step>
__device__ inline void walk_steps(int64_t first, int64_t count, int dir, Load load, Step step) {
  for (int64_t done = 0; done < count; done += kAhead)
    walk_batch<kAhead>(first + done * dir, int(count - done < kAhead ? count - done : kAhead), dir, load,
                       step);
}

// Blocks for a grid-stride loop over n elements.
inline unsigned grid_for(int64_t n, int threads = 256) {
  return static_cast<unsigned>(std::clamp<int64_t>((n + threads - 1) / threads, 1, int64_t(1) << 16));
}

// An elementwise backward over count elements in quads (grid_stride_quads)
// whose outputs are added into or written: `adding` and `writing` are the
// kernel's two instantiations (kAccumulate true and false), one launched.
template <class Kernel, class... Args>
void launch_adding_or_writing(cudaStream_t stream, int64_t count, bool accumulate, Kernel adding,
                              Kernel writing, Args... args) {
  if (count <= 0) return;
  (accumulate ? adding : writing)<<<grid_for((count + 3) / 4), 256, 0, stream>>>(args...);
  LIVS_CUDA_CHECK_LAUNCH();
}

}  // namespace livs::evaluator::cuda
