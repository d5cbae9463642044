// Mixture of experts: softmax router with top-k and renormalised weights,
// the load-balancing statistics, a deterministic dispatch (stable counting
// sort by expert), gather and weighted combine. Every output element has one
// owner and the CPU backend's summation order.
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

// The dispatch is a stable counting sort of the assignments by expert, a
// warp per expert: the warp walks the assignments 32 at a time, a ballot
// marks its expert's, and popc of the lanes below gives each its place, so
// an expert's rows keep token order. Two passes: the counts, then (each warp
// summing the counts of the experts before its own) the scatter. Coalesced
// loads, no atomics, deterministic; one thread per expert walking every
// assignment alone was a serial chain of about a millisecond per call.
__global__ void moe_count_kernel(int32_t* counts, const int32_t* top_index, int64_t assignments,
                                 int experts) {
  const int e = int(blockIdx.x * int64_t(blockDim.x / kWarpSize) + threadIdx.x / kWarpSize);
  const int lane = threadIdx.x % kWarpSize;
  if (e >= experts) return;  // a whole warp leaves together
  int32_t count = 0;
  for (int64_t a0 = 0; a0 < assignments; a0 += kWarpSize) {
    const int64_t a = a0 + lane;
    count += __popc(__ballot_sync(kFullMask, a < assignments && top_index[a] == e));
  }
  if (lane == 0) counts[e] = count;
}

__global__ void moe_scatter_kernel(int32_t* order, int32_t* position, int32_t* offsets, const int32_t* counts,
                                   const int32_t* top_index, int64_t assignments, int experts) {
  const int e = int(blockIdx.x * int64_t(blockDim.x / kWarpSize) + threadIdx.x / kWarpSize);
  const int lane = threadIdx.x % kWarpSize;
  if (e >= experts) return;
  int32_t next = 0;
  for (int i = lane; i < e; i += kWarpSize) next += counts[i];
  for (int offset = 16; offset > 0; offset >>= 1) next += __shfl_xor_sync(kFullMask, next, offset);
  const unsigned below = (1u << lane) - 1u;
  for (int64_t a0 = 0; a0 < assignments; a0 += kWarpSize) {
    const int64_t a = a0 + lane;
    const bool mine = a < assignments && top_index[a] == e;
    const unsigned mask = __ballot_sync(kFullMask, mine);
    if (mine) {
      const int32_t at = next + __popc(mask & below);
      order[at] = int32_t(a);
      position[a] = at;
    }
    next += __popc(mask);
  }
  if (lane == 0) offsets[e + 1] = next;  // the end of expert e's rows
  if (lane == 0 && e == 0) offsets[0] = 0;
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

void moe_dispatch(cudaStream_t stream, int32_t* order, int32_t* position, int32_t* offsets, int32_t* counts,
                  const int32_t* top_index, int64_t rows, int top_k, int experts) {
  if (experts <= 0) return;
  constexpr int kWarpsPerBlock = 8;
  const unsigned blocks = unsigned((experts + kWarpsPerBlock - 1) / kWarpsPerBlock);
  const int64_t assignments = rows * top_k;
  moe_count_kernel<<<blocks, kWarpsPerBlock * kWarpSize, 0, stream>>>(counts, top_index, assignments,
                                                                      experts);
  LIVS_CUDA_CHECK_LAUNCH();
  moe_scatter_kernel<<<blocks, kWarpsPerBlock * kWarpSize, 0, stream>>>(order, position, offsets, counts,
                                                                        top_index, assignments, experts);
  LIVS_CUDA_CHECK_LAUNCH();
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
