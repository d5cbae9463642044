// Causal softmax attention forward (GQA, sliding windows), fused and tiled in
// the flash-attention way: an online softmax over key tiles, the log-sum-exp
// of each row saved for the backward. Also the KV-cache write and the
// one-token decode step.
#include <cmath>

#include "evaluator/cuda/attention_common.cuh"
#include "evaluator/cuda/attention_tc.cuh"
#include "evaluator/cuda/device_math.cuh"
#include "evaluator/cuda/grid_dependency.cuh"
#include "evaluator/cuda/kernels.hpp"

namespace livs::evaluator::cuda {

namespace {

// grid (ceil(T / kRows), heads, batch); warp w owns query row blockIdx.x * kRows + w.
template <int kDims>
__global__ void __launch_bounds__(kRows* kWarpSize)
    attention_forward_kernel(float* out, float* lse, const float* q, const float* k, const float* v,
                             AttentionShape s) {
  await_prior_grids();
  extern __shared__ float smem[];
  const int hd = s.head_dim, T = s.seq, H = s.heads, KV = s.kv_heads, stride = hd + 1;
  float* qs = smem;                 // [kRows][hd]
  float* ks = qs + kRows * hd;      // [kTile][stride]
  float* vs = ks + kTile * stride;  // [kTile][stride]
  const int b = blockIdx.z, h = blockIdx.y, kvh = h / (H / KV);
  const int warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  const int i_first = blockIdx.x * kRows, i = i_first + warp;
  const int i_last = min(T - 1, i_first + kRows - 1);
  const bool active = i < T;
  const int lo = first_key(active ? i : i_first, s.window);

  for (int idx = threadIdx.x; idx < kRows * hd; idx += blockDim.x) {
    const int r = idx / hd, row = i_first + r;
    qs[idx] = row < T ? q[((int64_t(b) * T + row) * H + h) * hd + idx % hd] : 0.0f;
  }
  float o[kDims];
  for (int c = 0; c < kDims; ++c) o[c] = 0.0f;
  float m = -INFINITY, l = 0.0f;

  for (int j0 = first_key(i_first, s.window); j0 <= i_last; j0 += kTile) {
    __syncthreads();  // the previous tile is consumed (and the q rows are staged)
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
    if (!active) continue;  // warp-uniform
    const int j = j0 + lane;
    const bool valid = j >= lo && j <= i;
    const float score = valid ? row_dot(qs + warp * hd, ks + lane * stride, hd) * s.scale : -INFINITY;
    const float new_m = fmaxf(m, warp_max(score));
    if (new_m == -INFINITY) continue;     // no key of this row yet
    const float alpha = expf(m - new_m);  // 0 while m is still -inf
    const float p = valid ? expf(score - new_m) : 0.0f;
    l = l * alpha + warp_sum(p);
    for (int c = 0; c < kDims; ++c) o[c] *= alpha;
    for (int jj = 0; jj < kTile; ++jj) {
      const float pj = __shfl_sync(kFullMask, p, jj);
      const float* vr = vs + jj * stride;
      for (int c = 0; c < kDims; ++c) {
        const int d = lane + c * kWarpSize;
        if (d < hd) o[c] += pj * vr[d];
      }
    }
    m = new_m;
  }
  if (!active) return;
  const float inv = 1.0f / l;
  float* orow = out + ((int64_t(b) * T + i) * H + h) * hd;
  for (int c = 0; c < kDims; ++c) {
    const int d = lane + c * kWarpSize;
    if (d < hd) orow[d] = o[c] * inv;
  }
  if (lane == 0) lse[(int64_t(b) * H + h) * T + i] = m + logf(l);
}

// One warp per (batch, head); keys come straight from the cache, lane j
// scoring key j of each tile of 32 positions.
template <int kDims>
__global__ void attention_decode_split_kernel(float* partials, const float* q, const float* k_cache,
                                              const float* v_cache, AttentionShape s, int64_t capacity,
                                              int64_t position, int64_t lo, int splits) {
  await_prior_grids();
  extern __shared__ float qs[];  // [hd]
  const int hd = s.head_dim, H = s.heads, KV = s.kv_heads;
  const int bh = blockIdx.x, b = bh / H, h = bh % H, split = blockIdx.y, lane = threadIdx.x;
  const float* kc = k_cache + (int64_t(b) * KV + h / (H / KV)) * capacity * hd;
  const float* vc = v_cache + (int64_t(b) * KV + h / (H / KV)) * capacity * hd;
  for (int d = lane; d < hd; d += kWarpSize) qs[d] = q[int64_t(bh) * hd + d];
  __syncwarp();
  const int64_t first = lo + int64_t(split) * kDecodeSplit;
  const int64_t last = first + kDecodeSplit - 1 < position ? first + kDecodeSplit - 1 : position;
  float o[kDims];
  for (int c = 0; c < kDims; ++c) o[c] = 0.0f;
  float m = -INFINITY, l = 0.0f;
  for (int64_t j0 = first; j0 <= last; j0 += kTile) {
    const int64_t j = j0 + lane;
    const bool valid = j <= last;
    const float score = valid ? row_dot(qs, kc + (j % capacity) * hd, hd) * s.scale : -INFINITY;
    const float new_m = fmaxf(m, warp_max(score));
    const float alpha = expf(m - new_m);
    const float p = valid ? expf(score - new_m) : 0.0f;
    l = l * alpha + warp_sum(p);
    for (int c = 0; c < kDims; ++c) o[c] *= alpha;
    const int count = int(last - j0 + 1 < kTile ? last - j0 + 1 : kTile);
    for (int jj = 0; jj < count; ++jj) {
      const float pj = __shfl_sync(kFullMask, p, jj);
      const float* vr = vc + ((j0 + jj) % capacity) * hd;
      for (int c = 0; c < kDims; ++c) {
        const int d = lane + c * kWarpSize;
        if (d < hd) o[c] += pj * vr[d];
      }
    }
    m = new_m;
  }
  // partials[bh][split] = (m, l, o[0..hd)): the split's running max, sum and unnormalised output.
  float* out = partials + (int64_t(bh) * splits + split) * (hd + 2);
  if (lane == 0) {
    out[0] = m;
    out[1] = l;
  }
  for (int c = 0; c < kDims; ++c) {
    const int d = lane + c * kWarpSize;
    if (d < hd) out[2 + d] = o[c];
  }
}

// Merges the splits of one (sequence, head) in split order (deterministic).
__global__ void attention_decode_combine_kernel(float* out, const float* partials, int head_dim, int splits) {
  await_prior_grids();
  const int bh = blockIdx.x;
  const float* p = partials + int64_t(bh) * splits * (head_dim + 2);
  float m = -INFINITY;
  for (int i = 0; i < splits; ++i) m = fmaxf(m, p[int64_t(i) * (head_dim + 2)]);
  float l = 0.0f;
  for (int i = 0; i < splits; ++i) {
    const float* split = p + int64_t(i) * (head_dim + 2);
    l += split[1] * expf(split[0] - m);
  }
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float o = 0.0f;
    for (int i = 0; i < splits; ++i) {
      const float* split = p + int64_t(i) * (head_dim + 2);
      o += split[2 + d] * expf(split[0] - m);
    }
    out[int64_t(bh) * head_dim + d] = o / l;
  }
}

__global__ void kv_cache_write_kernel(float* k_cache, float* v_cache, const float* k, const float* v,
                                      AttentionShape s, int64_t capacity, int64_t slot) {
  await_prior_grids();
  const int64_t hd = s.head_dim, total = int64_t(s.batch) * s.kv_heads * hd;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < total;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t d = idx % hd, bh = idx / hd;  // bh = b * kv_heads + kv head
    const int64_t dst = (bh * capacity + slot) * hd + d;
    k_cache[dst] = k[idx];
    v_cache[dst] = v[idx];
  }
}

}  // namespace

void attention_forward(cudaStream_t stream, float* out, float* lse, const float* q, const float* k,
                       const float* v, const AttentionShape& s, bool tensor_cores, void* out16) {
  if (s.batch <= 0 || s.seq <= 0) return;
  if (tensor_cores && attention_tc_supported(s, {out, q, k, v, out16}))
    return attention_tc_forward(stream, out, out16, lse, q, k, v, s);
  dispatch_head_dim(s.head_dim, [&](auto dims) {
    auto kernel = attention_forward_kernel<decltype(dims)::value>;
    const std::size_t bytes = sizeof(float) * (kRows * s.head_dim + 2 * kTile * (s.head_dim + 1));
    allow_shared_memory(kernel, bytes);
    const dim3 grid(unsigned((s.seq + kRows - 1) / kRows), unsigned(s.heads), unsigned(s.batch));
    kernel<<<grid, kRows * kWarpSize, bytes, stream>>>(out, lse, q, k, v, s);
    LIVS_CUDA_CHECK_LAUNCH();
  });
  if (out16) to_bf16(stream, out16, out, int64_t(s.batch) * s.seq * s.heads * s.head_dim);
}

void kv_cache_write(cudaStream_t stream, float* k_cache, float* v_cache, const float* k, const float* v,
                    const AttentionShape& s, int64_t capacity, int64_t position) {
  const int64_t total = int64_t(s.batch) * s.kv_heads * s.head_dim;
  if (total <= 0) return;
  kv_cache_write_kernel<<<grid_for(total), 256, 0, stream>>>(k_cache, v_cache, k, v, s, capacity,
                                                             position % capacity);
  LIVS_CUDA_CHECK_LAUNCH();
}

int64_t attention_decode_partial_floats(const AttentionShape& s, int64_t capacity) {
  return int64_t(s.batch) * s.heads * ((capacity + kDecodeSplit - 1) / kDecodeSplit) * (s.head_dim + 2);
}

// Flash-decoding: the keys lo..position are cut into splits of kDecodeSplit,
// one warp each across the whole GPU, then merged per (sequence, head). With
// one warp per head walking the whole cache, a long context ran on a handful
// of warps (35 ms at 16k tokens, d 256, on an H100).
void attention_decode(cudaStream_t stream, float* out, float* partials, const float* q, const float* k_cache,
                      const float* v_cache, const AttentionShape& s, int64_t capacity, int64_t position) {
  if (s.batch <= 0) return;
  const int64_t lo = first_key(position, s.window);
  const int splits = int((position - lo + kDecodeSplit) / kDecodeSplit);
  if (int64_t(splits) > (capacity + kDecodeSplit - 1) / kDecodeSplit)
    throw std::invalid_argument("attention_decode: more keys than the cache holds");
  dispatch_head_dim(s.head_dim, [&](auto dims) {
    const std::size_t bytes = sizeof(float) * s.head_dim;
    const dim3 grid(unsigned(s.batch * s.heads), unsigned(splits));
    attention_decode_split_kernel<decltype(dims)::value><<<grid, kWarpSize, bytes, stream>>>(
        partials, q, k_cache, v_cache, s, capacity, position, lo, splits);
    LIVS_CUDA_CHECK_LAUNCH();
  });
  attention_decode_combine_kernel<<<unsigned(s.batch * s.heads), kWarpSize, 0, stream>>>(out, partials,
                                                                                         s.head_dim, splits);
  LIVS_CUDA_CHECK_LAUNCH();
}

}  // namespace livs::evaluator::cuda
