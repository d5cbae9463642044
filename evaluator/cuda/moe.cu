// Mixture of experts: softmax router with top-k and renormalised weights,
// the load-balancing statistics, a deterministic dispatch (stable counting
// sort by expert), gather and weighted combine. Every output element has one
// owner and the CPU backend's summation order.
#include <algorithm>
#include <stdexcept>

#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/device_math.cuh"
#include "evaluator/cuda/kernels.hpp"

namespace livs::evaluator::cuda {

namespace {

unsigned blocks_for(int64_t threads, int per_block = 128) {
  return unsigned((threads + per_block - 1) / per_block);
}

__global__ void moe_route_rows_kernel(float* probs, int32_t* top_index, float* top_weight,
                                      const float* logits, int64_t rows, int64_t experts, int top_k) {
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

// A block per expert: its share of the assignments (an exact integer count)
// and its mean router probability, each thread summing a strided subset of
// the rows and the block combining the partial sums in a fixed tree
// (deterministic; the order differs from the CPU's running sum, so the mean
// agrees with the CPU's to rounding). One thread per expert looping over
// every row took about a millisecond per call at 2048 rows: a serial chain
// of loads.
__global__ void moe_stats_kernel(float* expert_stats, const float* probs, const int32_t* top_index,
                                 int64_t rows, int64_t experts, int top_k) {
  __shared__ double count_partials[kWarpSize];
  __shared__ float mean_partials[kWarpSize];
  const int64_t e = blockIdx.x;
  int64_t count = 0;
  float mean = 0.0f;
  for (int64_t n = threadIdx.x; n < rows; n += blockDim.x) {
    for (int j = 0; j < top_k; ++j) count += top_index[n * top_k + j] == e;
    mean += probs[n * experts + e];
  }
  const double total = block_sum(double(count), count_partials);  // integers below 2^53: exact
  mean = block_sum(mean, mean_partials);
  if (threadIdx.x == 0) {
    expert_stats[e] = float(total / double(rows * top_k));
    expert_stats[experts + e] = mean / float(rows);
  }
}

// dp_e = balance * f_e + sum over chosen j with i_j = e of (dw_j - sum_l dw_l w_l) / P;
// dlogits += p * (dp - p . dp).
__global__ void moe_route_backward_kernel(float* dlogits, const float* dtop_weight, const float* probs,
                                          const int32_t* top_index, const float* top_weight,
                                          const float* expert_stats, int64_t rows, int64_t experts, int top_k,
                                          float balance) {
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
    float value = balance * expert_stats[e];
    for (int j = 0; j < top_k; ++j)
      if (idx[j] == e) value += (dtop_weight[n * top_k + j] - weighted) / chosen_sum;
    return value;
  };
  float pdp = 0.0f;
  for (int64_t e = 0; e < experts; ++e) pdp += p[e] * dp(e);
  for (int64_t e = 0; e < experts; ++e) dlogits[n * experts + e] += p[e] * (dp(e) - pdp);
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

// blockDim.x >= experts, a multiple of the warp size, at most 1024.
__global__ void moe_chunk_scan_kernel(int32_t* chunk_places, int32_t* offsets, int64_t chunks, int experts) {
  __shared__ int32_t warp_totals[kWarpSize];
  const int e = threadIdx.x, lane = e % kWarpSize, warp = e / kWarpSize;
  int32_t total = 0;
  if (e < experts) {
#pragma unroll 8
    for (int64_t c = 0; c < chunks; ++c) total += chunk_places[c * experts + e];
  }
  // Exclusive prefix over the experts: within the warp, then over the warps.
  int32_t inclusive = total;
  for (int offset = 1; offset < kWarpSize; offset <<= 1) {
    const int32_t below = __shfl_up_sync(kFullMask, inclusive, offset);
    if (lane >= offset) inclusive += below;
  }
  if (lane == kWarpSize - 1) warp_totals[warp] = inclusive;
  __syncthreads();
  if (warp == 0) {
    const int warps = int(blockDim.x) / kWarpSize;
    int32_t v = lane < warps ? warp_totals[lane] : 0;
    for (int offset = 1; offset < kWarpSize; offset <<= 1) {
      const int32_t below = __shfl_up_sync(kFullMask, v, offset);
      if (lane >= offset) v += below;
    }
    if (lane < warps) warp_totals[lane] = v;  // inclusive over the warps
  }
  __syncthreads();
  if (e >= experts) return;
  int32_t place = inclusive - total + (warp > 0 ? warp_totals[warp - 1] : 0);
  offsets[e] = place;
  if (e == experts - 1) offsets[experts] = place + total;
  for (int64_t c = 0; c < chunks; ++c) {  // each (chunk, expert)'s count becomes its first place
    int32_t* slot = chunk_places + c * experts + e;
    const int32_t count = *slot;
    *slot = place;
    place += count;
  }
}

__global__ void moe_chunk_scatter_kernel(int32_t* order, int32_t* position, const int32_t* chunk_places,
                                         const int32_t* top_index, int64_t assignments, int experts) {
  extern __shared__ int32_t warp_counts[];  // [kDispatchWarps][experts]
  for (int i = threadIdx.x; i < kDispatchWarps * experts; i += blockDim.x) warp_counts[i] = 0;
  __syncthreads();
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const int64_t a = int64_t(blockIdx.x) * kDispatchChunk + threadIdx.x;
  const int32_t e = dispatch_expert(top_index, a, assignments, experts);
  const unsigned same = __match_any_sync(kFullMask, e);
  if (e >= 0 && lane == __ffs(same) - 1) warp_counts[warp * experts + e] = __popc(same);
  __syncthreads();
  if (e < 0) return;
  int32_t at = chunk_places[int64_t(blockIdx.x) * experts + e] + __popc(same & ((1u << lane) - 1u));
  for (int w = 0; w < warp; ++w) at += warp_counts[w * experts + e];
  order[at] = int32_t(a);
  position[a] = at;
}

__global__ void moe_gather_kernel(float* xs, const float* x, const int32_t* order, int64_t count,
                                  int64_t cols, int top_k) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t p = i / cols, c = i % cols;
    xs[i] = x[int64_t(order[p] / top_k) * cols + c];
  }
}

__global__ void moe_gather_backward_kernel(float* dx, const float* dxs, const int32_t* position,
                                           int64_t count, int64_t cols, int top_k) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = i / cols, c = i % cols;
    float acc = dx[i];
    for (int j = 0; j < top_k; ++j) acc += dxs[int64_t(position[n * top_k + j]) * cols + c];
    dx[i] = acc;
  }
}

__global__ void moe_combine_kernel(float* y, const float* ys, const float* top_weight,
                                   const int32_t* position, int64_t count, int64_t cols, int top_k) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = i / cols, c = i % cols;
    float acc = 0.0f;
    for (int j = 0; j < top_k; ++j)
      acc += top_weight[n * top_k + j] * ys[int64_t(position[n * top_k + j]) * cols + c];
    y[i] = acc;
  }
}

// dys[position[a]] += w_a dy[n]: positions are a permutation, so each row has one writer.
__global__ void moe_combine_backward_rows_kernel(float* dys, const float* dy, const float* top_weight,
                                                 const int32_t* position, int64_t count, int64_t cols,
                                                 int top_k) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t a = i / cols, c = i % cols, n = a / top_k;
    dys[int64_t(position[a]) * cols + c] += top_weight[a] * dy[n * cols + c];
  }
}

// dtop_weight[a] += dy[n] . ys[position[a]]: one warp per assignment.
__global__ void moe_combine_backward_weights_kernel(float* dtop_weight, const float* dy, const float* ys,
                                                    const int32_t* position, int64_t assignments,
                                                    int64_t cols, int top_k) {
  const int64_t a = blockIdx.x * int64_t(blockDim.x / kWarpSize) + threadIdx.x / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;
  if (a >= assignments) return;
  const float* dyr = dy + (a / top_k) * cols;
  const float* ysr = ys + int64_t(position[a]) * cols;
  float acc = 0.0f;
  for (int64_t c = lane; c < cols; c += kWarpSize) acc += dyr[c] * ysr[c];
  acc = warp_sum(acc);
  if (lane == 0) dtop_weight[a] += acc;
}

// One thread: the experts in order, in double, as the CPU backend sums them
// (explicit roundings: no contraction into fma).
__global__ void moe_balance_loss_kernel(double* out, const float* expert_stats, int experts,
                                        float aux_weight) {
  double sum = 0.0;
  for (int e = 0; e < experts; ++e)
    sum = __dadd_rn(sum, __dmul_rn(double(expert_stats[e]), double(expert_stats[experts + e])));
  out[0] = __dmul_rn(__dmul_rn(double(aux_weight), double(experts)), sum);
}

}  // namespace

void moe_route(cudaStream_t stream, float* probs, int32_t* top_index, float* top_weight, float* expert_stats,
               ConstMatrix logits, int top_k) {
  if (logits.rows <= 0 || logits.cols <= 0) return;
  moe_route_rows_kernel<<<blocks_for(logits.rows), 128, 0, stream>>>(
      probs, top_index, top_weight, logits.data, logits.rows, logits.cols, top_k);
  LIVS_CUDA_CHECK_LAUNCH();
  moe_stats_kernel<<<unsigned(logits.cols), 256, 0, stream>>>(expert_stats, probs, top_index, logits.rows,
                                                              logits.cols, top_k);
  LIVS_CUDA_CHECK_LAUNCH();
}

void moe_route_backward(cudaStream_t stream, Matrix dlogits, const float* dtop_weight, const float* probs,
                        const int32_t* top_index, const float* top_weight, const float* expert_stats,
                        int top_k, float aux_weight) {
  if (dlogits.rows <= 0) return;
  const float balance = aux_weight * float(dlogits.cols) / float(dlogits.rows);
  moe_route_backward_kernel<<<blocks_for(dlogits.rows), 128, 0, stream>>>(
      dlogits.data, dtop_weight, probs, top_index, top_weight, expert_stats, dlogits.rows, dlogits.cols,
      top_k, balance);
  LIVS_CUDA_CHECK_LAUNCH();
}

int64_t moe_dispatch_scratch(int64_t rows, int top_k) {
  return std::max<int64_t>(1, (rows * top_k + kDispatchChunk - 1) / kDispatchChunk);
}

void moe_dispatch(cudaStream_t stream, int32_t* order, int32_t* position, int32_t* offsets,
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
  const unsigned scan_threads = unsigned((experts + kWarpSize - 1) / kWarpSize * kWarpSize);
  moe_chunk_scan_kernel<<<1, scan_threads, 0, stream>>>(chunk_places, offsets, chunks, experts);
  LIVS_CUDA_CHECK_LAUNCH();
  if (chunks > 0) {
    moe_chunk_scatter_kernel<<<unsigned(chunks), kDispatchChunk,
                               sizeof(int32_t) * kDispatchWarps * experts, stream>>>(
        order, position, chunk_places, top_index, assignments, experts);
    LIVS_CUDA_CHECK_LAUNCH();
  }
}

void moe_gather(cudaStream_t stream, Matrix xs, ConstMatrix x, const int32_t* order, int top_k) {
  if (xs.numel() <= 0) return;
  moe_gather_kernel<<<grid_for(xs.numel()), 256, 0, stream>>>(xs.data, x.data, order, xs.numel(), x.cols,
                                                              top_k);
  LIVS_CUDA_CHECK_LAUNCH();
}

void moe_gather_backward(cudaStream_t stream, Matrix dx, ConstMatrix dxs, const int32_t* position,
                         int top_k) {
  if (dx.numel() <= 0) return;
  moe_gather_backward_kernel<<<grid_for(dx.numel()), 256, 0, stream>>>(dx.data, dxs.data, position,
                                                                       dx.numel(), dx.cols, top_k);
  LIVS_CUDA_CHECK_LAUNCH();
}

void moe_combine(cudaStream_t stream, Matrix y, ConstMatrix ys, const float* top_weight,
                 const int32_t* position, int top_k) {
  if (y.numel() <= 0) return;
  moe_combine_kernel<<<grid_for(y.numel()), 256, 0, stream>>>(y.data, ys.data, top_weight, position,
                                                              y.numel(), y.cols, top_k);
  LIVS_CUDA_CHECK_LAUNCH();
}

void moe_combine_backward(cudaStream_t stream, Matrix dys, float* dtop_weight, ConstMatrix dy, ConstMatrix ys,
                          const float* top_weight, const int32_t* position, int top_k) {
  const int64_t assignments = dy.rows * top_k, count = assignments * dy.cols;
  if (count <= 0) return;
  moe_combine_backward_rows_kernel<<<grid_for(count), 256, 0, stream>>>(dys.data, dy.data, top_weight,
                                                                        position, count, dy.cols, top_k);
  LIVS_CUDA_CHECK_LAUNCH();
  moe_combine_backward_weights_kernel<<<blocks_for(assignments, 8), 8 * kWarpSize, 0, stream>>>(
      dtop_weight, dy.data, ys.data, position, assignments, dy.cols, top_k);
  LIVS_CUDA_CHECK_LAUNCH();
}

void moe_balance_loss(cudaStream_t stream, double* out, const float* expert_stats, int experts,
                      float aux_weight) {
  moe_balance_loss_kernel<<<1, 1, 0, stream>>>(out, expert_stats, experts, aux_weight);
  LIVS_CUDA_CHECK_LAUNCH();
}

}  // namespace livs::evaluator::cuda
