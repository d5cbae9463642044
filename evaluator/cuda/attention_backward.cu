// Backward of the fused causal attention. With p_ij = exp(scale q_i.k_j - lse_i)
// recomputed from the saved log-sum-exp, dp_ij = dout_i.v_j and
// delta_i = dout_i.out_i:
//   ds_ij = p_ij (dp_ij - delta_i) scale;  dq_i += sum_j ds_ij k_j;
//   dk_j += sum_i ds_ij q_i;  dv_j += sum_i p_ij dout_i
// (each gradient row has one owner warp: added into the output, or written).
// Two kernels so that every gradient row has one owner (no atomics, a fixed
// summation order): dq with a warp per query row over key tiles, dk/dv with
// a warp per key row over the query tiles of every head of its KV group.
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "evaluator/cuda/attention_common.cuh"
#include "evaluator/cuda/attention_tc.cuh"
#include "evaluator/cuda/device_math.cuh"
#include "evaluator/cuda/grid_dependency.cuh"
#include "evaluator/cuda/kernels.hpp"

namespace livs::evaluator::cuda {

namespace {

// delta[b, h, i] = dout_i . out_i, one warp per row (the tensor-core
// backward makes its own, from bf16-rounded dout: attention_tc_backward.cu).
__global__ void attention_delta_kernel(float* delta, const float* dout, const float* out, AttentionShape s) {
  await_prior_grids();
  const int64_t rows = int64_t(s.batch) * s.heads * s.seq;
  const int64_t row = blockIdx.x * int64_t(kRows) + threadIdx.x / kWarpSize;  // (b, h, i)
  const int lane = threadIdx.x % kWarpSize;
  if (row >= rows) return;
  const int64_t i = row % s.seq, h = (row / s.seq) % s.heads, b = row / (int64_t(s.seq) * s.heads);
  const int64_t at = ((b * s.seq + i) * s.heads + h) * s.head_dim;
  float acc = 0.0f;
  for (int d = lane; d < s.head_dim; d += kWarpSize) {
    acc += dout[at + d] * out[at + d];
  }
  acc = warp_sum(acc);
  if (lane == 0) delta[row] = acc;
}

// grid (ceil(T / kRows), heads, batch); warp w owns query row blockIdx.x * kRows + w.
template <int kDims>
__global__ void __launch_bounds__(kRows* kWarpSize)
    attention_backward_dq_kernel(float* dq, const float* dout, const float* q, const float* k, const float* v,
                                 const float* lse, const float* delta, AttentionShape s, bool accumulate) {
  await_prior_grids();
  extern __shared__ float smem[];
  const int hd = s.head_dim, T = s.seq, H = s.heads, KV = s.kv_heads, stride = hd + 1;
  float* qs = smem;                 // [kRows][hd]
  float* dos = qs + kRows * hd;     // [kRows][hd]
  float* ks = dos + kRows * hd;     // [kTile][stride]
  float* vs = ks + kTile * stride;  // [kTile][stride]
  const int b = blockIdx.z, h = blockIdx.y, kvh = h / (H / KV);
  const int warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  const int i_first = blockIdx.x * kRows, i = i_first + warp;
  const int i_last = min(T - 1, i_first + kRows - 1);
  const bool active = i < T;
  const int lo = first_key(active ? i : i_first, s.window);

  for (int idx = threadIdx.x; idx < kRows * hd; idx += blockDim.x) {
    const int row = i_first + idx / hd;
    const int64_t at = ((int64_t(b) * T + row) * H + h) * hd + idx % hd;
    qs[idx] = row < T ? q[at] : 0.0f;
    dos[idx] = row < T ? dout[at] : 0.0f;
  }
  const int64_t stat = (int64_t(b) * H + h) * T + (active ? i : 0);
  const float row_lse = lse[stat], row_delta = delta[stat];
  float acc[kDims];
  for (int c = 0; c < kDims; ++c) acc[c] = 0.0f;

  for (int j0 = first_key(i_first, s.window); j0 <= i_last; j0 += kTile) {
    __syncthreads();
    for (int idx = threadIdx.x; idx < kTile * hd; idx += blockDim.x) {
      const int r = idx / hd, d = idx % hd, j = j0 + r;
      float kv = 0.0f, vv = 0.0f;
      if (j <= i_last) {
        const int64_t at = ((int64_t(b) * T + j) * KV + kvh) * hd + d;
        kv = k[at];
        vv = v[at];
      }
      ks[r * stride + d] = kv;
      vs[r * stride + d] = vv;
    }
    __syncthreads();
    if (!active) continue;
    const int j = j0 + lane;
    float ds = 0.0f;
    if (j >= lo && j <= i) {
      const float p = expf(row_dot(qs + warp * hd, ks + lane * stride, hd) * s.scale - row_lse);
      const float dp = row_dot(dos + warp * hd, vs + lane * stride, hd);
      ds = p * (dp - row_delta) * s.scale;
    }
    for (int jj = 0; jj < kTile; ++jj) {
      const float dsj = __shfl_sync(kFullMask, ds, jj);
      const float* kr = ks + jj * stride;
      for (int c = 0; c < kDims; ++c) {
        const int d = lane + c * kWarpSize;
        if (d < hd) acc[c] += dsj * kr[d];
      }
    }
  }
  if (!active) return;
  float* dqr = dq + ((int64_t(b) * T + i) * H + h) * hd;
  for (int c = 0; c < kDims; ++c) {
    const int d = lane + c * kWarpSize;
    if (d < hd) add_or_write(dqr[d], acc[c], accumulate);
  }
}

// grid (ceil(T / kRows), kv_heads, batch); warp w owns key row blockIdx.x * kRows + w
// and visits, head by head of its group, the query rows that see it.
template <int kDims>
__global__ void __launch_bounds__(kRows* kWarpSize)
    attention_backward_dkdv_kernel(float* dk, float* dv, const float* dout, const float* q, const float* k,
                                   const float* v, const float* lse, const float* delta, AttentionShape s,
                                   bool accumulate) {
  await_prior_grids();
  extern __shared__ float smem[];
  const int hd = s.head_dim, T = s.seq, H = s.heads, KV = s.kv_heads, stride = hd + 1;
  const int group = H / KV;
  float* kw = smem;                     // [kRows][hd]: the warps' key rows
  float* vw = kw + kRows * hd;          // [kRows][hd]
  float* qt = vw + kRows * hd;          // [kTile][stride]
  float* dot = qt + kTile * stride;     // [kTile][stride]: dout rows
  float* lse_t = dot + kTile * stride;  // [kTile]
  float* delta_t = lse_t + kTile;       // [kTile]
  const int b = blockIdx.z, kvh = blockIdx.y;
  const int warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  const int j_first = blockIdx.x * kRows, j = j_first + warp;
  const int j_last = min(T - 1, j_first + kRows - 1);
  const bool active = j < T;
  // The last query that sees any key of this block.
  const int i_hi = s.window > 0 ? min(T - 1, j_last + s.window - 1) : T - 1;

  for (int idx = threadIdx.x; idx < kRows * hd; idx += blockDim.x) {
    const int row = j_first + idx / hd;
    const int64_t at = ((int64_t(b) * T + row) * KV + kvh) * hd + idx % hd;
    kw[idx] = row < T ? k[at] : 0.0f;
    vw[idx] = row < T ? v[at] : 0.0f;
  }
  float dk_acc[kDims], dv_acc[kDims];
  for (int c = 0; c < kDims; ++c) dk_acc[c] = dv_acc[c] = 0.0f;

  for (int h = kvh * group; h < (kvh + 1) * group; ++h) {
    for (int i0 = j_first; i0 <= i_hi; i0 += kTile) {
      __syncthreads();
      for (int idx = threadIdx.x; idx < kTile * hd; idx += blockDim.x) {
        const int r = idx / hd, d = idx % hd, i = i0 + r;
        float qv = 0.0f, dv_ = 0.0f;
        if (i <= i_hi) {
          const int64_t at = ((int64_t(b) * T + i) * H + h) * hd + d;
          qv = q[at];
          dv_ = dout[at];
        }
        qt[r * stride + d] = qv;
        dot[r * stride + d] = dv_;
      }
      if (threadIdx.x < kTile) {
        const int i = i0 + threadIdx.x;
        const int64_t at = (int64_t(b) * H + h) * T + i;
        lse_t[threadIdx.x] = i <= i_hi ? lse[at] : 0.0f;
        delta_t[threadIdx.x] = i <= i_hi ? delta[at] : 0.0f;
      }
      __syncthreads();
      if (!active) continue;
      const int i = i0 + lane;
      float p = 0.0f, ds = 0.0f;
      if (i >= j && i <= i_hi && (s.window <= 0 || i - j < s.window)) {
        p = expf(row_dot(qt + lane * stride, kw + warp * hd, hd) * s.scale - lse_t[lane]);
        const float dp = row_dot(dot + lane * stride, vw + warp * hd, hd);
        ds = p * (dp - delta_t[lane]) * s.scale;
      }
      for (int ii = 0; ii < kTile; ++ii) {
        const float pi = __shfl_sync(kFullMask, p, ii), dsi = __shfl_sync(kFullMask, ds, ii);
        const float* qr = qt + ii * stride;
        const float* dor = dot + ii * stride;
        for (int c = 0; c < kDims; ++c) {
          const int d = lane + c * kWarpSize;
          if (d < hd) {
            dv_acc[c] += pi * dor[d];
            dk_acc[c] += dsi * qr[d];
          }
        }
      }
    }
  }
  if (!active) return;
  const int64_t at = ((int64_t(b) * T + j) * KV + kvh) * hd;
  for (int c = 0; c < kDims; ++c) {
    const int d = lane + c * kWarpSize;
    if (d < hd) {
      add_or_write(dk[at + d], dk_acc[c], accumulate);
      add_or_write(dv[at + d], dv_acc[c], accumulate);
    }
  }
}

// dst[at(e)] = bf16(src[e]) for the count elements of src: dv's copy into rows of a wider gradient.
__global__ void round_rows_kernel(__nv_bfloat16* dst, const float* src, int64_t count, RowsApart at) {
  await_prior_grids();
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < count;
       e += int64_t(gridDim.x) * blockDim.x)
    dst[at(e)] = __float2bfloat16_rn(src[e]);
}

}  // namespace

void attention_backward(cudaStream_t stream, float* dq, float* dk, float* dv, const float* dout,
                        const float* q, const float* k, const float* v, const float* out, const float* lse,
                        void* scratch, const AttentionShape& s, bool tensor_cores, bool accumulate,
                        void* dv16) {
  if (s.batch <= 0 || s.seq <= 0) return;
  if (tensor_cores && attention_tc_supported(s, {dq, dk, dv, dout, q, k, v, out, scratch, dv16}))
    return attention_tc_backward(stream, dq, dk, dv, dout, q, k, v, out, lse, scratch, s, accumulate, dv16);
  const int64_t rows = int64_t(s.batch) * s.heads * s.seq;
  const unsigned delta_blocks = unsigned((rows + kRows - 1) / kRows);
  auto* delta = static_cast<float*>(scratch);
  attention_delta_kernel<<<delta_blocks, kRows * kWarpSize, 0, stream>>>(delta, dout, out, s);
  LIVS_CUDA_CHECK_LAUNCH();
  dispatch_head_dim(s.head_dim, [&](auto dims) {
    constexpr int kDims = decltype(dims)::value;
    const unsigned row_blocks = unsigned((s.seq + kRows - 1) / kRows);
    const std::size_t tiles = sizeof(float) * (2 * kRows * s.head_dim + 2 * kTile * (s.head_dim + 1));
    auto dq_kernel = attention_backward_dq_kernel<kDims>;
    allow_shared_memory(dq_kernel, tiles);
    dq_kernel<<<dim3(row_blocks, unsigned(s.heads), unsigned(s.batch)), kRows * kWarpSize, tiles, stream>>>(
        dq, dout, q, k, v, lse, delta, s, accumulate);
    LIVS_CUDA_CHECK_LAUNCH();
    auto dkdv_kernel = attention_backward_dkdv_kernel<kDims>;
    const std::size_t dkdv_bytes = tiles + sizeof(float) * 2 * kTile;
    allow_shared_memory(dkdv_kernel, dkdv_bytes);
    dkdv_kernel<<<dim3(row_blocks, unsigned(s.kv_heads), unsigned(s.batch)), kRows * kWarpSize, dkdv_bytes,
                  stream>>>(dk, dv, dout, q, k, v, lse, delta, s, accumulate);
    LIVS_CUDA_CHECK_LAUNCH();
  });
  if (!dv16) return;
  const int64_t width = int64_t(s.kv_heads) * s.head_dim, tokens = int64_t(s.batch) * s.seq;
  if (s.dv16_stride() == width) return to_bf16(stream, dv16, dv, tokens * width);
  round_rows_kernel<<<grid_for(tokens * width), 256, 0, stream>>>(
      static_cast<__nv_bfloat16*>(dv16), dv, tokens * width, RowsApart{width, s.dv16_stride()});
  LIVS_CUDA_CHECK_LAUNCH();
}

std::size_t attention_backward_scratch_bytes(const AttentionShape& s, bool tensor_cores) {
  const std::size_t delta_bytes =
      sizeof(float) * std::size_t(std::max(s.batch, 0)) * std::max(s.heads, 0) * std::max(s.seq, 0);
  if (tensor_cores && attention_tc_supported(s, {}))
    return std::max(delta_bytes, attention_tc_backward_scratch_bytes(s));
  return delta_bytes;
}

}  // namespace livs::evaluator::cuda
