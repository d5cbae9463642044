// Tensor-core attention backward, deterministic: every gradient row has one
// owner and a fixed summation order, so two runs give the same bits.
//   dk/dv kernel: a block per (64-key tile, kv head, batch), 4 warps of 16 keys;
//     it loops over the heads of its GQA group, then over the query tiles that
//     see its keys, recomputing S^T = K Q^T and P^T = exp(S^T - lse) and
//     accumulating dV += P^T dO and dK += dS^T Q in fp32 registers.
//   dq kernel: a block per (64-query tile, head, batch), 4 warps of 16 queries,
//     over the key tiles its queries see: dQ += dS K.
// With dp = dO V^T and delta = rowsum(dO * O) (fp32, precomputed):
//   ds = p (dp - delta) scale.
// q, k, v, dO, P and dS are bf16 mma operands; everything else is fp32.
#include <cmath>
#include <stdexcept>
#include <string>

#include "evaluator/cuda/attention_common.cuh"
#include "evaluator/cuda/attention_tc.cuh"
#include "evaluator/cuda/attention_tc_common.cuh"
#include "evaluator/cuda/cuda_check.hpp"

namespace livs::evaluator::cuda {

namespace {

using namespace tc;

// Rows of the other side's tile: 64, or 32 at head_dim 128 to bound registers.
template <int kHd>
constexpr int other_rows() {
  return kHd >= 128 ? 32 : 64;
}

// grid (ceil(T / 64), kv_heads, batch).
// kPrefetch (both kernels): load the next tile of the other side into
// registers while the current one is computed (used up to head_dim 64).
template <int kHd, bool kPrefetch>
__global__ void __launch_bounds__(kThreads)
    attention_tc_dkdv_kernel(float* dk, float* dv, const float* dout, const float* q, const float* k,
                             const float* v, const float* lse, const float* delta, AttentionShape s) {
  constexpr int kS = stride<kHd>(), kQueries = other_rows<kHd>();
  extern __shared__ __align__(16) unsigned char smem_bytes[];
  auto* ks = reinterpret_cast<__nv_bfloat16*>(smem_bytes);      // [64][kS]
  __nv_bfloat16* vs = ks + kTileRows * kS;                      // [64][kS]
  __nv_bfloat16* qs = vs + kTileRows * kS;                      // [kQueries][kS]
  __nv_bfloat16* dos = qs + kQueries * kS;                      // [kQueries][kS]
  auto* lse_s = reinterpret_cast<float*>(dos + kQueries * kS);  // [kQueries], base 2
  float* delta_s = lse_s + kQueries;                            // [kQueries]

  const int T = s.seq, H = s.heads, KV = s.kv_heads, group = H / KV;
  const int b = blockIdx.z, kvh = blockIdx.y, j0 = blockIdx.x * kTileRows;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int warp_key = j0 + warp * kRowsPerWarp;  // this warp's first key
  const int key0 = warp_key + g;                  // this lane's keys: key0 and key0 + 8
  const float scale_log2 = s.scale * kLog2e;

  const int64_t q_stride = int64_t(H) * kHd, kv_stride = int64_t(KV) * kHd;
  stage_rows<kHd, kTileRows>(ks, k + (int64_t(b) * T * KV + kvh) * kHd, kv_stride, j0, T);
  stage_rows<kHd, kTileRows>(vs, v + (int64_t(b) * T * KV + kvh) * kHd, kv_stride, j0, T);

  float dk_acc[kHd / 8][4], dv_acc[kHd / 8][4];
#pragma unroll
  for (int n = 0; n < kHd / 8; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) dk_acc[n][e] = dv_acc[n][e] = 0.0f;

  // The last query that sees a key of this tile.
  const int i_hi = s.window > 0 ? min(T - 1, j0 + kTileRows - 1 + s.window - 1) : T - 1;
  // The (head, query tile) pairs in order: heads of the group, then query tiles from j0 to i_hi.
  const int h_end = (kvh + 1) * group;
  auto head_rows = [&](int h) { return int64_t(b) * T * H + h; };
  [[maybe_unused]] RowStage<kHd, kQueries> q_next, do_next;
  if constexpr (kPrefetch) {
    q_next.load(q + head_rows(kvh * group) * kHd, q_stride, j0, T);
    do_next.load(dout + head_rows(kvh * group) * kHd, q_stride, j0, T);
  }
  auto next_pair = [&](int& h, int& i0) {
    if (i0 + kQueries > i_hi) {
      ++h;
      i0 = j0;
    } else {
      i0 += kQueries;
    }
  };
  for (int h = kvh * group, i0 = j0; h < h_end; next_pair(h, i0)) {
    __syncthreads();  // the previous query tile is consumed (and K, V are staged)
    if constexpr (kPrefetch) {
      q_next.store(qs);
      do_next.store(dos);
    } else {
      stage_rows<kHd, kQueries>(qs, q + head_rows(h) * kHd, q_stride, i0, T);
      stage_rows<kHd, kQueries>(dos, dout + head_rows(h) * kHd, q_stride, i0, T);
    }
    for (int r = threadIdx.x; r < kQueries; r += kThreads) {
      const int i = i0 + r;
      const int64_t at = (int64_t(b) * H + h) * T + i;
      lse_s[r] = i < T ? lse[at] * kLog2e : 0.0f;
      delta_s[r] = i < T ? delta[at] : 0.0f;
    }
    __syncthreads();
    if constexpr (kPrefetch) {  // the next pair's loads fly while this one is computed
      int next_h = h, next_i0 = i0;
      next_pair(next_h, next_i0);
      if (next_h < h_end) {
        q_next.load(q + head_rows(next_h) * kHd, q_stride, next_i0, T);
        do_next.load(dout + head_rows(next_h) * kHd, q_stride, next_i0, T);
      }
    }
    // Warp-uniform: every query of the tile before this warp's keys, or past their windows.
    if (i0 + kQueries - 1 < warp_key || warp_key >= T) continue;
    if (s.window > 0 && i0 - (warp_key + kRowsPerWarp - 1) >= s.window) continue;

    float st[kQueries / 8][4], dpt[kQueries / 8][4];
#pragma unroll
    for (int n = 0; n < kQueries / 8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) st[n][e] = dpt[n][e] = 0.0f;
#pragma unroll
    for (int c = 0; c < kHd / 16; ++c) {
      uint32_t kf[4], vf[4];
      load_a<kHd>(kf, ks, warp * kRowsPerWarp, c * 16, lane);
      load_a<kHd>(vf, vs, warp * kRowsPerWarp, c * 16, lane);
#pragma unroll
      for (int np = 0; np < kQueries / 16; ++np) {
        uint32_t qf[4], df[4];
        load_b_transposed<kHd>(qf, qs, np * 16, c * 16, lane);
        load_b_transposed<kHd>(df, dos, np * 16, c * 16, lane);
        mma(st[2 * np], kf, qf[0], qf[1]);
        mma(st[2 * np + 1], kf, qf[2], qf[3]);
        mma(dpt[2 * np], vf, df[0], df[1]);
        mma(dpt[2 * np + 1], vf, df[2], df[3]);
      }
    }
    const bool full = i0 >= warp_key + kRowsPerWarp - 1 && i0 + kQueries <= T &&
                      (s.window <= 0 || i0 + kQueries - 1 - warp_key < s.window);
#pragma unroll
    for (int n = 0; n < kQueries / 8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int c = n * 8 + 2 * t + (e & 1), i = i0 + c;
        float p = 0.0f;
        if (full || visible(i, key0 + (e / 2) * 8, T, s.window))
          p = exp2_approx(st[n][e] * scale_log2 - lse_s[c]);
        st[n][e] = p;
        dpt[n][e] = p * (dpt[n][e] - delta_s[c]) * s.scale;
      }
#pragma unroll
    for (int kk = 0; kk < kQueries / 16; ++kk) {
      uint32_t pf[4], dsf[4];
      c_to_a(pf, st, kk);
      c_to_a(dsf, dpt, kk);
#pragma unroll
      for (int dp = 0; dp < kHd / 16; ++dp) {
        uint32_t dof[4], qf[4];
        load_b<kHd>(dof, dos, kk * 16, dp * 16, lane);
        load_b<kHd>(qf, qs, kk * 16, dp * 16, lane);
        mma(dv_acc[2 * dp], pf, dof[0], dof[1]);
        mma(dv_acc[2 * dp + 1], pf, dof[2], dof[3]);
        mma(dk_acc[2 * dp], dsf, qf[0], qf[1]);
        mma(dk_acc[2 * dp + 1], dsf, qf[2], qf[3]);
      }
    }
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int j = key0 + 8 * r;
    if (j >= T) continue;
    const int64_t at = ((int64_t(b) * T + j) * KV + kvh) * kHd + 2 * t;
#pragma unroll
    for (int n = 0; n < kHd / 8; ++n) {
      auto* dkp = reinterpret_cast<float2*>(dk + at + n * 8);
      auto* dvp = reinterpret_cast<float2*>(dv + at + n * 8);
      const float2 dk_old = *dkp, dv_old = *dvp;
      *dkp = make_float2(dk_old.x + dk_acc[n][2 * r], dk_old.y + dk_acc[n][2 * r + 1]);
      *dvp = make_float2(dv_old.x + dv_acc[n][2 * r], dv_old.y + dv_acc[n][2 * r + 1]);
    }
  }
}

// grid (ceil(T / 64), heads, batch).
template <int kHd, bool kPrefetch>
__global__ void __launch_bounds__(kThreads)
    attention_tc_dq_kernel(float* dq, const float* dout, const float* q, const float* k, const float* v,
                           const float* lse, const float* delta, AttentionShape s) {
  constexpr int kS = stride<kHd>(), kKeys = other_rows<kHd>();
  extern __shared__ __align__(16) unsigned char smem_bytes[];
  auto* qs = reinterpret_cast<__nv_bfloat16*>(smem_bytes);  // [64][kS]
  __nv_bfloat16* dos = qs + kTileRows * kS;                 // [64][kS]
  __nv_bfloat16* ks = dos + kTileRows * kS;                 // [kKeys][kS]
  __nv_bfloat16* vs = ks + kKeys * kS;                      // [kKeys][kS]

  const int T = s.seq, H = s.heads, KV = s.kv_heads;
  const int b = blockIdx.z, h = blockIdx.y, kvh = h / (H / KV);
  const int i0 = (gridDim.x - 1 - blockIdx.x) * kTileRows;  // the longest tiles start first
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int warp_row = i0 + warp * kRowsPerWarp;
  const int row0 = warp_row + g;  // this lane's rows: row0 and row0 + 8
  const float scale_log2 = s.scale * kLog2e;

  const int64_t q_stride = int64_t(H) * kHd, kv_stride = int64_t(KV) * kHd;
  const int64_t head_rows = int64_t(b) * T * H + h;
  stage_rows<kHd, kTileRows>(qs, q + head_rows * kHd, q_stride, i0, T);
  stage_rows<kHd, kTileRows>(dos, dout + head_rows * kHd, q_stride, i0, T);
  float row_lse[2], row_delta[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int i = row0 + 8 * r;
    const int64_t at = (int64_t(b) * H + h) * T + i;
    row_lse[r] = i < T ? lse[at] * kLog2e : 0.0f;
    row_delta[r] = i < T ? delta[at] : 0.0f;
  }
  __syncthreads();
  uint32_t qf[kHd / 16][4], dof[kHd / 16][4];
#pragma unroll
  for (int c = 0; c < kHd / 16; ++c) {
    load_a<kHd>(qf[c], qs, warp * kRowsPerWarp, c * 16, lane);
    load_a<kHd>(dof[c], dos, warp * kRowsPerWarp, c * 16, lane);
  }
  float dq_acc[kHd / 8][4];
#pragma unroll
  for (int n = 0; n < kHd / 8; ++n) dq_acc[n][0] = dq_acc[n][1] = dq_acc[n][2] = dq_acc[n][3] = 0.0f;

  const float* k_base = k + (int64_t(b) * T * KV + kvh) * kHd;
  const float* v_base = v + (int64_t(b) * T * KV + kvh) * kHd;
  const int i_last = min(T - 1, i0 + kTileRows - 1);
  const int j_first = first_key(i0, s.window) / kKeys * kKeys;
  [[maybe_unused]] RowStage<kHd, kKeys> k_next, v_next;
  if constexpr (kPrefetch) {
    k_next.load(k_base, kv_stride, j_first, T);
    v_next.load(v_base, kv_stride, j_first, T);
  }
  for (int j0 = j_first; j0 <= i_last; j0 += kKeys) {
    __syncthreads();  // the previous tile is consumed (and Q, dO are staged)
    if constexpr (kPrefetch) {
      k_next.store(ks);
      v_next.store(vs);
    } else {
      stage_rows<kHd, kKeys>(ks, k_base, kv_stride, j0, T);
      stage_rows<kHd, kKeys>(vs, v_base, kv_stride, j0, T);
    }
    __syncthreads();
    if constexpr (kPrefetch) {
      if (j0 + kKeys <= i_last) {
        k_next.load(k_base, kv_stride, j0 + kKeys, T);
        v_next.load(v_base, kv_stride, j0 + kKeys, T);
      }
    }
    if (j0 > warp_row + kRowsPerWarp - 1 || warp_row >= T) continue;
    if (s.window > 0 && warp_row - (j0 + kKeys - 1) >= s.window) continue;

    float sc[kKeys / 8][4], dp[kKeys / 8][4];
#pragma unroll
    for (int n = 0; n < kKeys / 8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) sc[n][e] = dp[n][e] = 0.0f;
#pragma unroll
    for (int c = 0; c < kHd / 16; ++c) {
#pragma unroll
      for (int np = 0; np < kKeys / 16; ++np) {
        uint32_t kf[4], vf[4];
        load_b_transposed<kHd>(kf, ks, np * 16, c * 16, lane);
        load_b_transposed<kHd>(vf, vs, np * 16, c * 16, lane);
        mma(sc[2 * np], qf[c], kf[0], kf[1]);
        mma(sc[2 * np + 1], qf[c], kf[2], kf[3]);
        mma(dp[2 * np], dof[c], vf[0], vf[1]);
        mma(dp[2 * np + 1], dof[c], vf[2], vf[3]);
      }
    }
    const bool full = j0 + kKeys - 1 <= warp_row && warp_row + kRowsPerWarp <= T &&
                      (s.window <= 0 || warp_row + kRowsPerWarp - 1 - j0 < s.window);
#pragma unroll
    for (int n = 0; n < kKeys / 8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int j = j0 + n * 8 + 2 * t + (e & 1), r = e / 2;
        float p = 0.0f;
        if (full || visible(row0 + 8 * r, j, T, s.window))
          p = exp2_approx(sc[n][e] * scale_log2 - row_lse[r]);
        dp[n][e] = p * (dp[n][e] - row_delta[r]) * s.scale;
      }
#pragma unroll
    for (int kk = 0; kk < kKeys / 16; ++kk) {
      uint32_t dsf[4];
      c_to_a(dsf, dp, kk);
#pragma unroll
      for (int d = 0; d < kHd / 16; ++d) {
        uint32_t kf[4];
        load_b<kHd>(kf, ks, kk * 16, d * 16, lane);
        mma(dq_acc[2 * d], dsf, kf[0], kf[1]);
        mma(dq_acc[2 * d + 1], dsf, kf[2], kf[3]);
      }
    }
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int i = row0 + 8 * r;
    if (i >= T) continue;
    float* dqr = dq + ((int64_t(b) * T + i) * H + h) * kHd + 2 * t;
#pragma unroll
    for (int n = 0; n < kHd / 8; ++n) {
      auto* p = reinterpret_cast<float2*>(dqr + n * 8);
      const float2 old = *p;
      *p = make_float2(old.x + dq_acc[n][2 * r], old.y + dq_acc[n][2 * r + 1]);
    }
  }
}

template <int kHd, bool kPrefetch>
void launch_backward(cudaStream_t stream, float* dq, float* dk, float* dv, const float* dout, const float* q,
                     const float* k, const float* v, const float* lse, const float* delta,
                     const AttentionShape& s) {
  constexpr int kOther = other_rows<kHd>();
  const unsigned tiles = unsigned((s.seq + kTileRows - 1) / kTileRows);
  const std::size_t tile_bytes = sizeof(__nv_bfloat16) * 2 * (kTileRows + kOther) * stride<kHd>();

  auto dkdv_kernel = attention_tc_dkdv_kernel<kHd, kPrefetch>;
  const std::size_t dkdv_bytes = tile_bytes + sizeof(float) * 2 * kOther;
  allow_shared_memory(dkdv_kernel, dkdv_bytes);
  dkdv_kernel<<<dim3(tiles, unsigned(s.kv_heads), unsigned(s.batch)), kThreads, dkdv_bytes, stream>>>(
      dk, dv, dout, q, k, v, lse, delta, s);
  LIVS_CUDA_CHECK_LAUNCH();

  auto dq_kernel = attention_tc_dq_kernel<kHd, kPrefetch>;
  allow_shared_memory(dq_kernel, tile_bytes);
  dq_kernel<<<dim3(tiles, unsigned(s.heads), unsigned(s.batch)), kThreads, tile_bytes, stream>>>(
      dq, dout, q, k, v, lse, delta, s);
  LIVS_CUDA_CHECK_LAUNCH();
}

}  // namespace

void attention_tc_backward(cudaStream_t stream, float* dq, float* dk, float* dv, const float* dout,
                           const float* q, const float* k, const float* v, const float* lse,
                           const float* delta, const AttentionShape& s) {
  if (s.batch <= 0 || s.seq <= 0) return;
  switch (s.head_dim) {
    case 16:
      return launch_backward<16, true>(stream, dq, dk, dv, dout, q, k, v, lse, delta, s);
    case 32:
      return launch_backward<32, true>(stream, dq, dk, dv, dout, q, k, v, lse, delta, s);
    case 64:
      return launch_backward<64, true>(stream, dq, dk, dv, dout, q, k, v, lse, delta, s);
    case 128:
      return launch_backward<128, false>(stream, dq, dk, dv, dout, q, k, v, lse, delta, s);
    default:
      throw std::invalid_argument("tensor-core attention: head_dim " + std::to_string(s.head_dim) +
                                  " is not 16, 32, 64 or 128");
  }
}

}  // namespace livs::evaluator::cuda
