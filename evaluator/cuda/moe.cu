// Mixture of experts: softmax router with top-k and renormalised weights,
// the load-balancing statistics, a deterministic dispatch (stable counting
// sort by expert), gather and weighted combine. Every output element has one
// owner and the CPU backend's summation order.
#include <cuda_bf16.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <type_traits>

#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/device_math.cuh"
#include "evaluator/cuda/grid_dependency.cuh"
#include "evaluator/cuda/kernels.hpp"

namespace livs::evaluator::cuda {

namespace {

unsigned blocks_for(int64_t threads, int per_block = 128) {
  return unsigned((threads + per_block - 1) / per_block);
}

__global__ void moe_route_rows_kernel(float* probs, int32_t* top_index, float* top_weight,
                                      const float* logits, int64_t rows, int64_t experts, int top_k) {
  await_prior_grids();
  const int64_t n = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (n >= rows) return;
  const float* l = logits + n * experts;
  float* p = probs + n * experts;
  float mx = l[0];
  for (int64_t e = 1; e < experts; ++e) mx = fmaxf(mx, l[e]);
  float sum = 0.0f;
  for (int64_t e = 0; e < experts; ++e) sum += (p[e] = expf(l[e] - mx));
  for (int64_t e = 0; e < experts; ++e) p[e] /= sum;
  float chosen_sum = 0.0f;
  for (int j = 0; j < top_k; ++j) {  // repeated arg-max; ">" keeps the lower index on ties
    int32_t best = -1;
    for (int64_t e = 0; e < experts; ++e) {
      bool taken = false;
      for (int i = 0; i < j; ++i) taken = taken || top_index[n * top_k + i] == e;
      if (!taken && (best < 0 || p[e] > p[best])) best = int32_t(e);
    }
    top_index[n * top_k + j] = best;
    chosen_sum += p[best];
  }
  for (int j = 0; j < top_k; ++j) top_weight[n * top_k + j] = p[top_index[n * top_k + j]] / chosen_sum;
}

// P_e, the mean router probability of expert e, for the load-balancing
// loss: a block per expert, each thread summing a strided subset of the
// rows and the block combining the partial sums in a fixed tree
// (deterministic; the order differs from the CPU's running sum, so the mean
// agrees with the CPU's to rounding).
__global__ void moe_probability_mean_kernel(float* means, const float* probs, int64_t rows, int64_t experts) {
  await_prior_grids();
  __shared__ float partials[kWarpSize];
  const int64_t e = blockIdx.x;
  float sum = 0.0f;
  for (int64_t n = threadIdx.x; n < rows; n += blockDim.x) sum += probs[n * experts + e];
  sum = block_sum(sum, partials);
  if (threadIdx.x == 0) means[e] = rows > 0 ? sum / float(rows) : 0.0f;
}

// dp_e = balance * f_e + sum over chosen j with i_j = e of (dw_j - sum_l dw_l w_l) / P;
// dlogits += p * (dp - p . dp).
__global__ void moe_route_backward_kernel(float* dlogits, const float* dtop_weight, const float* probs,
                                          const int32_t* top_index, const float* top_weight,
                                          const float* expert_fractions, int64_t rows, int64_t experts,
                                          int top_k, float balance) {
  await_prior_grids();
  const int64_t n = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (n >= rows) return;
  const float* p = probs + n * experts;
  const int32_t* idx = top_index + n * top_k;
  float chosen_sum = 0.0f, weighted = 0.0f;
  for (int j = 0; j < top_k; ++j) {
    chosen_sum += p[idx[j]];
    weighted += dtop_weight[n * top_k + j] * top_weight[n * top_k + j];
  }
  auto dp = [&](int64_t e) {
    float value = balance * expert_fractions[e];
    for (int j = 0; j < top_k; ++j)
      if (idx[j] == e) value += (dtop_weight[n * top_k + j] - weighted) / chosen_sum;
    return value;
  };
  float pdp = 0.0f;
  for (int64_t e = 0; e < experts; ++e) pdp += p[e] * dp(e);
  for (int64_t e = 0; e < experts; ++e) dlogits[n * experts + e] = p[e] * (dp(e) - pdp);
}

// Routing with up to 32 experts: a warp per row, lane e holding expert e,
// so a row is one coalesced load and its reductions are shuffles. The sums
// run in the CPU's order (lane 0's running sum over the lanes, in expert
// order), so probabilities, choices and weights are the thread-per-row
// kernels' to the bit. A thread per row walking its row in global memory was
// a chain of dependent loads: 7 and 9 us a call at 2048 rows and 8 experts.
constexpr int kWarpExperts = kWarpSize;

constexpr int kRowWarps = 8;  // warps (rows in flight) a block of the row-wise kernels

// Rows [0, rows) taken by the warps of the grid in turn.
template <class F>
__device__ inline void for_each_warp_row(int64_t rows, F&& f) {
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x / kWarpSize);
  for (int64_t r = blockIdx.x * int64_t(blockDim.x / kWarpSize) + threadIdx.x / kWarpSize; r < rows;
       r += warps)
    f(r);
}

// sum over lanes 0..count-1 of x, added in lane order (every lane gets it).
__device__ inline float ordered_lane_sum(float x, int count) {
  float sum = 0.0f;
  for (int l = 0; l < count; ++l) sum += __shfl_sync(kFullMask, x, l);
  return sum;
}

// The row-wise kernels below take a warp per row (a token or an
// assignment): the lanes walk the row's columns, four at a time with 16-byte
// accesses where the views allow (RowAccess), so an index is read once a row
// and no element pays for a 64-bit division. An element per thread with
// i / cols and i % cols in 64 bits took 5-8 us a call at d 128.
struct RowAccess {
  int64_t cols;
  bool quads;  // cols % 4 == 0 and every view 16-byte aligned
};

// f(c, width): width 4 (c a multiple of 4, a quad) or 1; the lanes of a warp
// take consecutive columns or quads.
template <class F>
__device__ inline void for_row_columns(const RowAccess& row, F&& f) {
  const int lane = threadIdx.x % kWarpSize;
  if (row.quads) {
    for (int64_t c = 4 * lane; c < row.cols; c += 4 * kWarpSize) f(c, std::integral_constant<int, 4>{});
  } else {
    for (int64_t c = lane; c < row.cols; c += kWarpSize) f(c, std::integral_constant<int, 1>{});
  }
}

template <int W>
__device__ inline float4 load_w(const float* p) {
  if constexpr (W == 4) return *reinterpret_cast<const float4*>(p);
  return {p[0], 0.0f, 0.0f, 0.0f};
}
template <int W>
__device__ inline void store_w(float* p, float4 v) {
  if constexpr (W == 4)
    *reinterpret_cast<float4*>(p) = v;
  else
    p[0] = v.x;
}
__device__ inline float4 fma4(float w, float4 v, float4 acc) {
  return {fmaf(w, v.x, acc.x), fmaf(w, v.y, acc.y), fmaf(w, v.z, acc.z), fmaf(w, v.w, acc.w)};
}

// Row n's routing on a warp, lane e < experts holding its logit l (the
// other lanes -inf): writes the row's probs, top_index and top_weight.
__device__ inline void route_row(float l, int64_t n, float* probs, int32_t* top_index, float* top_weight,
                                 int experts, int top_k) {
  const int lane = threadIdx.x % kWarpSize;
  const bool mine = lane < experts;
  const float mx = warp_max(l);
  const float e = mine ? expf(l - mx) : 0.0f;
  const float p = e / ordered_lane_sum(e, experts);
  if (mine) probs[n * experts + lane] = p;
  bool taken = !mine;
  float chosen_sum = 0.0f, chosen_p = 0.0f;  // chosen_p: this lane's p if it was chosen
  int chosen_j = -1;
  for (int j = 0; j < top_k; ++j) {  // arg-max over the lanes not taken; ties: the lower index
    float best = taken ? -INFINITY : p;
    int best_lane = taken ? kWarpSize : lane;
    for (int offset = 16; offset > 0; offset >>= 1) {
      const float other = __shfl_xor_sync(kFullMask, best, offset);
      const int other_lane = __shfl_xor_sync(kFullMask, best_lane, offset);
      if (other > best || (other == best && other_lane < best_lane)) {
        best = other;
        best_lane = other_lane;
      }
    }
    if (lane == best_lane) {
      taken = true;
      chosen_j = j;
      chosen_p = p;
    }
    chosen_sum += best;
    if (lane == 0) top_index[n * top_k + j] = best_lane;
  }
  if (chosen_j >= 0) top_weight[n * top_k + chosen_j] = chosen_p / chosen_sum;
}

__global__ void moe_route_warp_kernel(float* probs, int32_t* top_index, float* top_weight,
                                      const float* logits, int64_t rows, int experts, int top_k) {
  await_prior_grids();
  const int lane = threadIdx.x % kWarpSize;
  for_each_warp_row(rows, [&](int64_t n) {
    route_row(lane < experts ? logits[n * experts + lane] : -INFINITY, n, probs, top_index, top_weight,
              experts, top_k);
  });
}

// The backward of route_row (moe_route_backward_kernel's equations) for row
// n on a warp: lane e holds p_e and dp_e; lane j < top_k holds the j-th
// choice, its weight and dw, its weight's gradient; stat is lane e's f_e.
// Returns dlogits[n, e] to lane e < experts.
__device__ inline float route_backward_row(int64_t n, float dw, const float* probs, const int32_t* top_index,
                                           const float* top_weight, float stat, int experts, int top_k,
                                           float balance) {
  const int lane = threadIdx.x % kWarpSize;
  const bool mine = lane < experts, choice = lane < top_k;
  const float p = mine ? probs[n * experts + lane] : 0.0f;
  const int32_t idx = choice ? top_index[n * top_k + lane] : -1;
  const float w = choice ? top_weight[n * top_k + lane] : 0.0f;
  const float p_idx = __shfl_sync(kFullMask, p, choice ? idx : 0);
  const float chosen_sum = ordered_lane_sum(choice ? p_idx : 0.0f, top_k);
  const float weighted = ordered_lane_sum(dw * w, top_k);
  float dp = balance * stat;
  for (int j = 0; j < top_k; ++j) {  // in choice order, as the CPU adds them
    const int32_t chosen = __shfl_sync(kFullMask, idx, j);
    const float dwj = __shfl_sync(kFullMask, dw, j);
    if (chosen == lane) dp += (dwj - weighted) / chosen_sum;
  }
  const float pdp = ordered_lane_sum(p * dp, experts);
  return p * (dp - pdp);
}

__global__ void moe_route_backward_warp_kernel(float* dlogits, const float* dtop_weight, const float* probs,
                                               const int32_t* top_index, const float* top_weight,
                                               const float* expert_fractions, int64_t rows, int experts,
                                               int top_k, float balance) {
  await_prior_grids();
  const int lane = threadIdx.x % kWarpSize;
  const float stat = lane < experts ? expert_fractions[lane] : 0.0f;
  for_each_warp_row(rows, [&](int64_t n) {
    const float dw = lane < top_k ? dtop_weight[n * top_k + lane] : 0.0f;
    const float dl = route_backward_row(n, dw, probs, top_index, top_weight, stat, experts, top_k, balance);
    if (lane < experts) dlogits[n * experts + lane] = dl;
  });
}

// The dispatch is a stable counting sort of the assignments by expert over
// chunks of kDispatchChunk consecutive assignments, a block per chunk:
// 1. count: each chunk's histogram of experts (shared-memory integer
//    atomics: the counts, not their order, are what is kept, so the result
//    is the same on every run);
// 2. scan (one block, a thread per expert): the experts' totals, their
//    exclusive prefix (the offsets), then each (chunk, expert)'s first place,
//    written over its count;
// 3. scatter: within a chunk each warp ranks its lanes among those of the
//    same expert (match_any, popc of the lanes below) and a warp histogram
//    gives the warps before it, so an expert's rows keep assignment order.
// Up to 64 chunks and 256 experts (a training step's dispatch), 2 and 3 are
// one launch (moe_scan_scatter_kernel).
// A warp per expert walking every assignment alone (the previous form) was
// about 30 us a call at 4096 assignments: a serial chain of 128 loads.
constexpr int kDispatchChunk = 256;  // the scatter's block: 8 warps, an assignment each lane
constexpr int kDispatchWarps = kDispatchChunk / kWarpSize;

__device__ inline int32_t dispatch_expert(const int32_t* top_index, int64_t a, int64_t assignments,
                                          int experts) {
  if (a >= assignments) return -1;
  const int32_t e = top_index[a];
  return e >= 0 && e < experts ? e : -1;  // the router never writes others; they are left out
}

__global__ void moe_chunk_count_kernel(int32_t* chunk_counts, const int32_t* top_index, int64_t assignments,
                                       int experts) {
  await_prior_grids();
  extern __shared__ int32_t histogram[];  // [experts]
  for (int e = threadIdx.x; e < experts; e += blockDim.x) histogram[e] = 0;
  __syncthreads();
  const int32_t e =
      dispatch_expert(top_index, int64_t(blockIdx.x) * kDispatchChunk + threadIdx.x, assignments, experts);
  if (e >= 0) atomicAdd(&histogram[e], 1);
  __syncthreads();
  int32_t* out = chunk_counts + int64_t(blockIdx.x) * experts;
  for (int i = threadIdx.x; i < experts; i += blockDim.x) out[i] = histogram[i];
}

// The exclusive prefix sum of `value` over the block's threads in thread
// order (blockDim.x a multiple of the warp size, at most 1024); `total` gets
// the block's sum. warp_totals: 32 ints of shared memory. All threads call it.
__device__ inline int32_t block_exclusive_prefix(int32_t value, int32_t* warp_totals, int32_t& total) {
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize, warps = blockDim.x / kWarpSize;
  int32_t inclusive = value;  // within the warp, then over the warps
  for (int offset = 1; offset < kWarpSize; offset <<= 1) {
    const int32_t below = __shfl_up_sync(kFullMask, inclusive, offset);
    if (lane >= offset) inclusive += below;
  }
  if (lane == kWarpSize - 1) warp_totals[warp] = inclusive;
  __syncthreads();
  if (warp == 0) {
    int32_t v = lane < warps ? warp_totals[lane] : 0;
    for (int offset = 1; offset < kWarpSize; offset <<= 1) {
      const int32_t below = __shfl_up_sync(kFullMask, v, offset);
      if (lane >= offset) v += below;
    }
    if (lane < warps) warp_totals[lane] = v;  // inclusive over the warps
  }
  __syncthreads();
  total = warp_totals[warps - 1];
  return inclusive - value + (warp > 0 ? warp_totals[warp - 1] : 0);
}

// f_e = total_e / assignments (thread e of one block), where asked for.
__device__ inline void write_fraction(float* fractions, int e, int32_t total, int64_t assignments) {
  if (fractions) fractions[e] = assignments > 0 ? float(double(total) / double(assignments)) : 0.0f;
}

// blockDim.x >= experts, a multiple of the warp size, at most 1024.
__global__ void moe_chunk_scan_kernel(int32_t* chunk_places, int32_t* offsets, float* fractions,
                                      int64_t chunks, int experts, int64_t assignments) {
  await_prior_grids();
  __shared__ int32_t warp_totals[kWarpSize];
  const int e = threadIdx.x;
  int32_t total = 0;
  if (e < experts) {
#pragma unroll 8
    for (int64_t c = 0; c < chunks; ++c) total += chunk_places[c * experts + e];
  }
  int32_t all = 0;
  int32_t place = block_exclusive_prefix(total, warp_totals, all);
  if (e >= experts) return;
  offsets[e] = place;
  if (e == experts - 1) offsets[experts] = all;
  write_fraction(fractions, e, total, assignments);
  for (int64_t c = 0; c < chunks; ++c) {  // each (chunk, expert)'s count becomes its first place
    int32_t* slot = chunk_places + c * experts + e;
    const int32_t count = *slot;
    *slot = place;
    place += count;
  }
}

// Block blockIdx.x's chunk of assignments to their places: within a chunk
// each warp ranks its lanes among those of the same expert (match_any, popc
// of the lanes below) and a warp histogram gives the warps before it, so an
// expert's rows keep assignment order. first_place(e): the chunk's first
// place for expert e. warp_counts: [kDispatchWarps][experts] shared ints.
template <class FirstPlace>
__device__ inline void scatter_chunk(int32_t* order, int32_t* position, FirstPlace first_place,
                                     const int32_t* top_index, int64_t assignments, int experts,
                                     int32_t* warp_counts) {
  for (int i = threadIdx.x; i < kDispatchWarps * experts; i += blockDim.x) warp_counts[i] = 0;
  __syncthreads();
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const int64_t a = int64_t(blockIdx.x) * kDispatchChunk + threadIdx.x;
  const int32_t e = dispatch_expert(top_index, a, assignments, experts);
  const unsigned same = __match_any_sync(kFullMask, e);
  if (e >= 0 && lane == __ffs(same) - 1) warp_counts[warp * experts + e] = __popc(same);
  __syncthreads();
  if (e < 0) return;
  int32_t at = first_place(e) + __popc(same & ((1u << lane) - 1u));
  for (int w = 0; w < warp; ++w) at += warp_counts[w * experts + e];
  order[at] = int32_t(a);
  position[a] = at;
}

__global__ void moe_chunk_scatter_kernel(int32_t* order, int32_t* position, const int32_t* chunk_places,
                                         const int32_t* top_index, int64_t assignments, int experts) {
  await_prior_grids();
  extern __shared__ int32_t warp_counts[];  // [kDispatchWarps][experts]
  const int32_t* places = chunk_places + int64_t(blockIdx.x) * experts;
  scatter_chunk(
      order, position, [&](int32_t e) { return places[e]; }, top_index, assignments, experts, warp_counts);
}

// Scan and scatter in one launch, for at most kFusedScanChunks chunks and
// kDispatchChunk experts: every block sums the chunks' counts itself (its
// own chunk's first places need only the chunks before it) and block 0
// writes the offsets and the fractions. The single-block scan between
// count and scatter was a launch of its own, a serial walk over the chunks
// per expert.
constexpr int kFusedScanChunks = 64;

__global__ void moe_scan_scatter_kernel(int32_t* order, int32_t* position, int32_t* offsets, float* fractions,
                                        const int32_t* chunk_counts, const int32_t* top_index,
                                        int64_t assignments, int experts, int chunks) {
  await_prior_grids();
  __shared__ int32_t warp_totals[kWarpSize];
  extern __shared__ int32_t dynamic[];  // [experts] first places, then [kDispatchWarps][experts] warp counts
  int32_t* first_places = dynamic;
  const int e = threadIdx.x;
  int32_t before = 0, total = 0;
  if (e < experts)
    for (int c = 0; c < chunks; ++c) {
      const int32_t n = chunk_counts[c * experts + e];
      total += n;
      if (c < int(blockIdx.x)) before += n;
    }
  int32_t all = 0;
  const int32_t offset = block_exclusive_prefix(total, warp_totals, all);
  if (e < experts) {
    first_places[e] = offset + before;
    if (blockIdx.x == 0) {
      offsets[e] = offset;
      if (e == experts - 1) offsets[experts] = all;
      write_fraction(fractions, e, total, assignments);
    }
  }
  scatter_chunk(  // (its first barrier orders first_places)
      order, position, [&](int32_t expert) { return first_places[expert]; }, top_index, assignments, experts,
      dynamic + experts);
}

// The router's logits summed across a warp's lanes: v[i] holds this lane's
// part of expert i's dot product (kE a power of two, at most 32); returns
// expert lane % kE's sum over every lane. Lanes first add across the lane
// bits that will hold the same expert, then halve: at each width, a lane
// keeps the half its own bit names and adds its partner's copy of it (kE - 1
// exchanges instead of kE whole-warp sums).
template <int kE>
__device__ inline float lane_transpose_sum(float (&v)[kE]) {
  const int lane = threadIdx.x % kWarpSize;
#pragma unroll
  for (int offset = kWarpSize / 2; offset >= kE; offset >>= 1)  // lanes that will hold the same expert
#pragma unroll
    for (int i = 0; i < kE; ++i) v[i] += __shfl_xor_sync(kFullMask, v[i], offset);
#pragma unroll
  for (int width = kE; width > 1; width >>= 1) {  // halve: keep the half this lane's bit names
    const int half = width / 2;
    const bool upper = lane & half;
#pragma unroll
    for (int i = 0; i < half; ++i) {
      const float keep = upper ? v[i + half] : v[i], send = upper ? v[i] : v[i + half];
      v[i] = keep + __shfl_xor_sync(kFullMask, send, half);
    }
  }
  return v[0];  // expert lane % kE's sum over every lane
}

// moe_route_warp_kernel with the router's product in it, a warp per row (up
// to kE experts, 8, 16 or 32): the logits x[n] . Router[e] in fp32, each
// lane over its columns, then lane_transpose_sum; the router's rows past
// `experts` are not read.
template <int kE>
__global__ void moe_route_logits_kernel(float* probs, int32_t* top_index, float* top_weight, const float* x,
                                        const float* router, int64_t rows, RowAccess row, int experts,
                                        int top_k) {
  await_prior_grids();
  const int lane = threadIdx.x % kWarpSize;
  for_each_warp_row(rows, [&](int64_t n) {
    float part[kE];
#pragma unroll
    for (int i = 0; i < kE; ++i) part[i] = 0.0f;
    const float* xr = x + n * row.cols;
    for_row_columns(row, [&](int64_t c, auto w) {
      constexpr int W = decltype(w)::value;
      const float4 xv = load_w<W>(xr + c);
#pragma unroll
      for (int i = 0; i < kE; ++i) {
        if (i >= experts) break;
        const float4 r = load_w<W>(router + i * row.cols + c);
        part[i] = fmaf(xv.x, r.x, part[i]);
        if constexpr (W == 4) part[i] = fmaf(xv.w, r.w, fmaf(xv.z, r.z, fmaf(xv.y, r.y, part[i])));
      }
    });
    const float logit = lane_transpose_sum<kE>(part);
    route_row(lane < experts ? logit : -INFINITY, n, probs, top_index, top_weight, experts, top_k);
  });
}

// xs[p] = x[order[p] / top_k]
__global__ void moe_gather_kernel(float* xs, const float* x, const int32_t* order, int64_t assignments,
                                  RowAccess row, int top_k) {
  await_prior_grids();
  for_each_warp_row(assignments, [&](int64_t p) {
    const float* src = x + int64_t(order[p] / top_k) * row.cols;
    float* dst = xs + p * row.cols;
    for_row_columns(row, [&](int64_t c, auto w) {
      store_w<decltype(w)::value>(dst + c, load_w<decltype(w)::value>(src + c));
    });
  });
}

// dx[n] += dxs[position[n k]] + ... + dxs[position[n k + k - 1]], in that
// order, then the same rows of dxs_up where given. With a router
// (moe_gather_router_backward), its input gradient first: dx[n] (+)= sum_e
// dlogits[n, e] Router[e] (in fp32, experts in order; written when
// !accumulate), lane e < experts loading dlogits[n, e] into the warp's
// shared row.
__global__ void __launch_bounds__(kRowWarps* kWarpSize)
    moe_gather_backward_kernel(float* dx, const float* dxs, const float* dxs_up, const int32_t* position,
                               int64_t rows, RowAccess row, int top_k, const float* dlogits,
                               const float* router, int experts, bool accumulate) {
  await_prior_grids();
  __shared__ float row_dlogits[kRowWarps][kWarpSize];
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  for_each_warp_row(rows, [&](int64_t n) {
    if (router) {
      __syncwarp();  // the previous row's reads are done
      if (lane < experts) row_dlogits[warp][lane] = dlogits[n * experts + lane];
      __syncwarp();
    }
    float* out = dx + n * row.cols;
    for_row_columns(row, [&](int64_t c, auto w) {
      constexpr int W = decltype(w)::value;
      float4 acc = accumulate ? load_w<W>(out + c) : float4{0.0f, 0.0f, 0.0f, 0.0f};
      if (router) {
        float4 routed = {0.0f, 0.0f, 0.0f, 0.0f};
        for (int e = 0; e < experts; ++e)
          routed = fma4(row_dlogits[warp][e], load_w<W>(router + e * row.cols + c), routed);
        acc = accumulate ? acc + routed : routed;
      }
      for (int j = 0; j < top_k; ++j) acc += load_w<W>(dxs + int64_t(position[n * top_k + j]) * row.cols + c);
      if (dxs_up)
        for (int j = 0; j < top_k; ++j)
          acc += load_w<W>(dxs_up + int64_t(position[n * top_k + j]) * row.cols + c);
      store_w<W>(out + c, acc);
    });
  });
}

// y[n] = sum_j top_weight[n k + j] ys[position[n k + j]], from zero in that
// order. With ys_second (moe_combine_halves) each of those rows is first
// ys + ys_second, written back through ys_sum, which is ys then (the
// backward reads it; a row has one (n, j), so one writer); without it ys is
// only read and ys_sum is null.
__global__ void moe_combine_kernel(float* y, const float* ys, float* ys_sum, const float* ys_second,
                                   const float* top_weight, const int32_t* position, int64_t rows,
                                   RowAccess row, int top_k) {
  await_prior_grids();
  for_each_warp_row(rows, [&](int64_t n) {
    for_row_columns(row, [&](int64_t c, auto w) {
      constexpr int W = decltype(w)::value;
      float4 acc = {0.0f, 0.0f, 0.0f, 0.0f};
      for (int j = 0; j < top_k; ++j) {
        const int64_t at = int64_t(position[n * top_k + j]) * row.cols + c;
        float4 v = load_w<W>(ys + at);
        if (ys_second) {
          v += load_w<W>(ys_second + at);
          store_w<W>(ys_sum + at, v);
        }
        acc = fma4(top_weight[n * top_k + j], v, acc);
      }
      store_w<W>(y + n * row.cols + c, acc);
    });
  });
}

// Assignment a's share of combine's backward on a warp: dys[position[a]] =
// w_a dy[n] (n = a / top_k) and, returned to every lane, dy[n] . ys[position[a]]
// (the lanes' partial sums in a fixed butterfly).
__device__ inline float combine_backward_row(float* dys, const float* dy, const float* ys,
                                             const float* top_weight, const int32_t* position, int64_t a,
                                             const RowAccess& row, int top_k) {
  const float* dyr = dy + (a / top_k) * row.cols;
  const int64_t at = int64_t(position[a]) * row.cols;
  const float weight = top_weight[a];
  float dot = 0.0f;
  for_row_columns(row, [&](int64_t c, auto w) {
    const float4 g = load_w<decltype(w)::value>(dyr + c), v = load_w<decltype(w)::value>(ys + at + c);
    store_w<decltype(w)::value>(dys + at + c, g * weight);
    dot += g.x * v.x;
    if constexpr (decltype(w)::value == 4) dot += g.y * v.y + g.z * v.z + g.w * v.w;
  });
  return warp_sum(dot);
}

// A warp per assignment: positions are a permutation, so each dys row has
// one writer; dtop_weight[a] written, not added, so nothing is zeroed first.
__global__ void moe_combine_backward_kernel(float* dys, float* dtop_weight, const float* dy, const float* ys,
                                            const float* top_weight, const int32_t* position,
                                            int64_t assignments, RowAccess row, int top_k) {
  await_prior_grids();
  for_each_warp_row(assignments, [&](int64_t a) {
    const float dot = combine_backward_row(dys, dy, ys, top_weight, position, a, row, top_k);
    if (threadIdx.x % kWarpSize == 0) dtop_weight[a] = dot;
  });
}

// Combine's and the router's backward in one launch, a warp per token (up to
// 32 experts): the token's assignments as moe_combine_backward_kernel, their
// weight gradients kept in lanes j < top_k, then route_backward_row;
// dlogits16 (optional) gets dlogits rounded to bf16.
__global__ void moe_combine_route_backward_kernel(float* dys, float* dlogits, __nv_bfloat16* dlogits16,
                                                  const float* dy, const float* ys, const float* probs,
                                                  const int32_t* top_index, const float* top_weight,
                                                  const int32_t* position, const float* expert_fractions,
                                                  int64_t rows, RowAccess row, int experts, int top_k,
                                                  float balance) {
  await_prior_grids();
  const int lane = threadIdx.x % kWarpSize;
  const float stat = lane < experts ? expert_fractions[lane] : 0.0f;
  for_each_warp_row(rows, [&](int64_t n) {
    float dw = 0.0f;
    for (int j = 0; j < top_k; ++j) {
      const float dot = combine_backward_row(dys, dy, ys, top_weight, position, n * top_k + j, row, top_k);
      if (lane == j) dw = dot;
    }
    const float dl = route_backward_row(n, dw, probs, top_index, top_weight, stat, experts, top_k, balance);
    if (lane < experts) {
      dlogits[n * experts + lane] = dl;
      if (dlogits16) dlogits16[n * experts + lane] = __float2bfloat16_rn(dl);
    }
  });
}

// One thread: the experts in order, in double, as the CPU backend sums them
// (explicit roundings: no contraction into fma).
__global__ void moe_balance_loss_kernel(double* out, const float* expert_fractions, const float* means,
                                        int experts, float aux_weight) {
  await_prior_grids();
  double sum = 0.0;
  for (int e = 0; e < experts; ++e)
    sum = __dadd_rn(sum, __dmul_rn(double(expert_fractions[e]), double(means[e])));
  out[0] = __dmul_rn(__dmul_rn(double(aux_weight), double(experts)), sum);
}

template <class... T>
RowAccess row_access(int64_t cols, const T*... views) {
  return {cols, cols % 4 == 0 && aligned16(views...)};
}

unsigned row_blocks(int64_t rows) {
  return unsigned(std::min<int64_t>((rows + kRowWarps - 1) / kRowWarps, 65535));
}

}  // namespace

void moe_route(cudaStream_t stream, float* probs, int32_t* top_index, float* top_weight, ConstMatrix logits,
               int top_k) {
  if (logits.rows <= 0 || logits.cols <= 0) return;
  if (logits.cols <= kWarpExperts)
    moe_route_warp_kernel<<<row_blocks(logits.rows), kRowWarps * kWarpSize, 0, stream>>>(
        probs, top_index, top_weight, logits.data, logits.rows, int(logits.cols), top_k);
  else
    moe_route_rows_kernel<<<blocks_for(logits.rows), 128, 0, stream>>>(
        probs, top_index, top_weight, logits.data, logits.rows, logits.cols, top_k);
  LIVS_CUDA_CHECK_LAUNCH();
}

void moe_route_backward(cudaStream_t stream, Matrix dlogits, const float* dtop_weight, const float* probs,
                        const int32_t* top_index, const float* top_weight, const float* expert_fractions,
                        int top_k, float aux_weight) {
  if (dlogits.rows <= 0) return;
  const float balance = aux_weight * float(dlogits.cols) / float(dlogits.rows);
  if (dlogits.cols <= kWarpExperts)
    moe_route_backward_warp_kernel<<<row_blocks(dlogits.rows), kRowWarps * kWarpSize, 0, stream>>>(
        dlogits.data, dtop_weight, probs, top_index, top_weight, expert_fractions, dlogits.rows,
        int(dlogits.cols), top_k, balance);
  else
    moe_route_backward_kernel<<<blocks_for(dlogits.rows), 128, 0, stream>>>(
        dlogits.data, dtop_weight, probs, top_index, top_weight, expert_fractions, dlogits.rows, dlogits.cols,
        top_k, balance);
  LIVS_CUDA_CHECK_LAUNCH();
}

int64_t moe_dispatch_scratch(int64_t rows, int top_k) {
  return std::max<int64_t>(1, (rows * top_k + kDispatchChunk - 1) / kDispatchChunk);
}

void moe_dispatch(cudaStream_t stream, int32_t* order, int32_t* position, int32_t* offsets, float* fractions,
                  int32_t* chunk_places, const int32_t* top_index, int64_t rows, int top_k, int experts) {
  if (experts <= 0) return;
  if (experts > 1024) throw std::invalid_argument("CUDA moe_dispatch: more than 1024 experts");
  const int64_t assignments = rows * top_k;
  const int64_t chunks = (assignments + kDispatchChunk - 1) / kDispatchChunk;
  if (chunks > 0x7fffffff) throw std::invalid_argument("CUDA moe_dispatch: too many assignments");
  if (chunks > 0) {
    moe_chunk_count_kernel<<<unsigned(chunks), kDispatchChunk, sizeof(int32_t) * experts, stream>>>(
        chunk_places, top_index, assignments, experts);
    LIVS_CUDA_CHECK_LAUNCH();
  }
  if (chunks > 0 && chunks <= kFusedScanChunks && experts <= kDispatchChunk) {
    moe_scan_scatter_kernel<<<unsigned(chunks), kDispatchChunk,
                              sizeof(int32_t) * (kDispatchWarps + 1) * experts, stream>>>(
        order, position, offsets, fractions, chunk_places, top_index, assignments, experts, int(chunks));
    LIVS_CUDA_CHECK_LAUNCH();
    return;
  }
  const unsigned scan_threads = unsigned((experts + kWarpSize - 1) / kWarpSize * kWarpSize);
  moe_chunk_scan_kernel<<<1, scan_threads, 0, stream>>>(chunk_places, offsets, fractions, chunks, experts,
                                                        assignments);
  LIVS_CUDA_CHECK_LAUNCH();
  if (chunks > 0) {
    moe_chunk_scatter_kernel<<<unsigned(chunks), kDispatchChunk, sizeof(int32_t) * kDispatchWarps * experts,
                               stream>>>(order, position, chunk_places, top_index, assignments, experts);
    LIVS_CUDA_CHECK_LAUNCH();
  }
}

bool moe_route_and_gather(cudaStream_t stream, const MoeRouting& r, int32_t* chunk_places, Matrix xs,
                          ConstMatrix x, ConstMatrix router) {
  if (r.experts > kWarpExperts || x.cols != router.cols || router.rows != r.experts) return false;
  if (r.rows > 0 && r.experts > 0) {
    const RowAccess row = row_access(x.cols, x.data, router.data);
    auto route = [&](auto experts_bound) {
      moe_route_logits_kernel<decltype(experts_bound)::value>
          <<<row_blocks(r.rows), kRowWarps * kWarpSize, 0, stream>>>(
              r.probs, r.top_index, r.top_weight, x.data, router.data, r.rows, row, r.experts, r.top_k);
    };
    if (r.experts <= 8)
      route(std::integral_constant<int, 8>{});
    else if (r.experts <= 16)
      route(std::integral_constant<int, 16>{});
    else
      route(std::integral_constant<int, 32>{});
    LIVS_CUDA_CHECK_LAUNCH();
  }
  moe_dispatch(stream, r.order, r.position, r.offsets, r.expert_fractions, chunk_places, r.top_index, r.rows,
               r.top_k, r.experts);
  moe_gather(stream, xs, x, r.order, r.top_k);
  return true;
}

void moe_gather(cudaStream_t stream, Matrix xs, ConstMatrix x, const int32_t* order, int top_k) {
  if (xs.numel() <= 0) return;
  moe_gather_kernel<<<row_blocks(xs.rows), kRowWarps * kWarpSize, 0, stream>>>(
      xs.data, x.data, order, xs.rows, row_access(x.cols, xs.data, x.data), top_k);
  LIVS_CUDA_CHECK_LAUNCH();
}

void moe_gather_backward(cudaStream_t stream, Matrix dx, ConstMatrix dxs, const int32_t* position,
                         int top_k) {
  if (dx.numel() <= 0) return;
  moe_gather_backward_kernel<<<row_blocks(dx.rows), kRowWarps * kWarpSize, 0, stream>>>(
      dx.data, dxs.data, nullptr, position, dx.rows, row_access(dx.cols, dx.data, dxs.data), top_k, nullptr,
      nullptr, 0, true);
  LIVS_CUDA_CHECK_LAUNCH();
}

void moe_combine(cudaStream_t stream, Matrix y, ConstMatrix ys, const float* top_weight,
                 const int32_t* position, int top_k) {
  if (y.numel() <= 0) return;
  moe_combine_kernel<<<row_blocks(y.rows), kRowWarps * kWarpSize, 0, stream>>>(
      y.data, ys.data, nullptr, nullptr, top_weight, position, y.rows, row_access(y.cols, y.data, ys.data),
      top_k);
  LIVS_CUDA_CHECK_LAUNCH();
}

void moe_combine_halves(cudaStream_t stream, Matrix y, Matrix ys, ConstMatrix ys_second,
                        const float* top_weight, const int32_t* position, int top_k) {
  if (ys_second.rows != ys.rows || ys_second.cols != ys.cols)
    throw std::invalid_argument("CUDA moe_combine_halves: ys_second is not shaped as ys");
  if (y.numel() <= 0) return;
  moe_combine_kernel<<<row_blocks(y.rows), kRowWarps * kWarpSize, 0, stream>>>(
      y.data, ys.data, ys.data, ys_second.data, top_weight, position, y.rows,
      row_access(y.cols, y.data, ys.data, ys_second.data), top_k);
  LIVS_CUDA_CHECK_LAUNCH();
}

void moe_combine_backward(cudaStream_t stream, Matrix dys, float* dtop_weight, ConstMatrix dy, ConstMatrix ys,
                          const float* top_weight, const int32_t* position, int top_k) {
  const int64_t assignments = dy.rows * top_k;
  if (assignments <= 0 || dy.cols <= 0) return;
  moe_combine_backward_kernel<<<row_blocks(assignments), kRowWarps * kWarpSize, 0, stream>>>(
      dys.data, dtop_weight, dy.data, ys.data, top_weight, position, assignments,
      row_access(dy.cols, dys.data, dy.data, ys.data), top_k);
  LIVS_CUDA_CHECK_LAUNCH();
}

bool moe_combine_route_backward(cudaStream_t stream, const MoeRouting& r, Matrix dlogits, void* dlogits16,
                                Matrix dys, ConstMatrix dy, ConstMatrix ys, float aux_weight) {
  if (r.experts > kWarpExperts || r.top_k > kWarpSize) return false;
  if (r.rows <= 0 || dy.cols <= 0) return true;
  const float balance = aux_weight * float(r.experts) / float(r.rows);
  moe_combine_route_backward_kernel<<<row_blocks(r.rows), kRowWarps * kWarpSize, 0, stream>>>(
      dys.data, dlogits.data, static_cast<__nv_bfloat16*>(dlogits16), dy.data, ys.data, r.probs, r.top_index,
      r.top_weight, r.position, r.expert_fractions, r.rows, row_access(dy.cols, dys.data, dy.data, ys.data),
      r.experts, r.top_k, balance);
  LIVS_CUDA_CHECK_LAUNCH();
  return true;
}

bool moe_gather_router_backward(cudaStream_t stream, const MoeRouting& r, Matrix dx, ConstMatrix dxs,
                                ConstMatrix dxs_up, ConstMatrix dlogits, ConstMatrix router,
                                bool accumulate) {
  if (r.experts > kWarpExperts || router.rows != r.experts || router.cols != dx.cols) return false;
  if (dxs_up.data && (dxs_up.rows != dxs.rows || dxs_up.cols != dxs.cols))
    throw std::invalid_argument("CUDA moe_gather_router_backward: dxs_up is not shaped as dxs");
  if (dx.numel() <= 0) return true;
  moe_gather_backward_kernel<<<row_blocks(dx.rows), kRowWarps * kWarpSize, 0, stream>>>(
      dx.data, dxs.data, dxs_up.data, r.position, dx.rows,
      row_access(dx.cols, dx.data, dxs.data, dxs_up.data, router.data), r.top_k, dlogits.data, router.data,
      r.experts, accumulate);
  LIVS_CUDA_CHECK_LAUNCH();
  return true;
}

void moe_balance_loss(cudaStream_t stream, double* out, float* means, const float* fractions,
                      ConstMatrix probs, float aux_weight) {
  if (probs.cols <= 0) return;
  moe_probability_mean_kernel<<<unsigned(probs.cols), 1024, 0, stream>>>(means, probs.data, probs.rows,
                                                                         probs.cols);
  LIVS_CUDA_CHECK_LAUNCH();
  moe_balance_loss_kernel<<<1, 1, 0, stream>>>(out, fractions, means, int(probs.cols), aux_weight);
  LIVS_CUDA_CHECK_LAUNCH();
}

}  // namespace livs::evaluator::cuda
