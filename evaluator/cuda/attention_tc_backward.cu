// Tensor-core attention backward, deterministic: every gradient row has one
// owner and a fixed summation order, so two runs give the same bits.
//   dk/dv kernel: a block per (key tile, kv head, batch), kWarps warps of 16
//     keys; it loops over the heads of its GQA group, then over the query
//     tiles that see its keys, recomputing S^T = K Q^T and P^T = exp(S^T - lse)
//     and accumulating dV += P^T dO and dK += dS^T Q in fp32 registers.
//   dq kernel: a block per (query tile, head, batch), kWarps warps of 16
//     queries, over the key tiles its queries see: dQ += dS K.
// The other side's tiles (queries and dO, or keys and values) are staged in
// two alternating shared buffers, one barrier per tile, the next one's global
// loads in registers while the current one is computed (up to head_dim 64).
// With dp = dO V^T and delta = rowsum(dO * O) (fp32, precomputed):
//   ds = p (dp - delta) scale; the mma operand is p (dp - delta), and dK, dQ
//   are multiplied by the scale once when they are written.
// q, k, v, dO, P and dS are bf16 mma operands; everything else is fp32.
#include <cmath>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "evaluator/cuda/attention_common.cuh"
#include "evaluator/cuda/attention_tc.cuh"
#include "evaluator/cuda/attention_tc_common.cuh"
#include "evaluator/cuda/cuda_check.hpp"

namespace livs::evaluator::cuda {

namespace {

using namespace tc;

// The log-sum-exp (base 2) and delta of a query tile's rows on their way
// into shared memory, fetched with the tile's rows (threads 0..kRows-1).
template <int kRows>
struct RowStats {
  float lse2 = 0.0f, delta = 0.0f;
  __device__ __forceinline__ void fetch(const float* lse, const float* deltas, int64_t row_base, int first,
                                        int rows) {
    const int i = first + int(threadIdx.x);
    if (threadIdx.x < kRows) {
      lse2 = i < rows ? lse[row_base + i] * kLog2e : 0.0f;
      delta = i < rows ? deltas[row_base + i] : 0.0f;
    }
  }
  // Interleaved (lse, delta) per row, so a lane reads two rows' pairs with one 16-byte load.
  __device__ __forceinline__ void put(float* stats) const {
    if (threadIdx.x < kRows) *reinterpret_cast<float2*>(stats + 2 * threadIdx.x) = make_float2(lse2, delta);
  }
};

// grid (ceil(T / (16 kWarps kM)), kv_heads, batch). Each warp owns kM m-tiles
// (16 kM keys). kOther: rows of the other side's tiles (queries here, keys in
// the dq kernel). Every gradient row sees the same operations in the same
// order whatever kWarps, kM, kMinBlocks, kStaging and kOther are (same bits).
template <int kHd, int kWarps, int kM, int kMinBlocks, Staging kStaging, int kOther>
__global__ void __launch_bounds__(kWarps * 32, kMinBlocks)
    attention_tc_dkdv_kernel(float* dk, float* dv, const float* dout, const float* q, const float* k,
                             const float* v, const float* lse, const float* delta, AttentionShape s) {
  constexpr int kThreads = kWarps * 32, kWarpRows = kM * kMmaRows, kKeys = kWarps * kWarpRows,
                kS = stride<kHd>(), kQueries = kOther;
  static_assert(kQueries <= kThreads, "one thread per query row fetches lse and delta");
  extern __shared__ __align__(16) unsigned char smem_bytes[];
  auto* ks = reinterpret_cast<__nv_bfloat16*>(smem_bytes);              // [kKeys][kS]
  __nv_bfloat16* vs = ks + kKeys * kS;                                  // [kKeys][kS]
  __nv_bfloat16* q_tiles = vs + kKeys * kS;                             // [2 buffers][Q, dO][kQueries][kS]
  auto* stats = reinterpret_cast<float*>(q_tiles + 4 * kQueries * kS);  // [2 buffers][kQueries][lse, delta]
  using Stage = TileStage<kHd, kQueries, kThreads, kStaging>;
  float* staging = stats + 4 * kQueries;  // Q, dO (async_copy only)
  constexpr bool kAhead = kStaging != Staging::direct;

  const int T = s.seq, H = s.heads, KV = s.kv_heads, group = H / KV;
  const int b = blockIdx.z, kvh = blockIdx.y, j0 = blockIdx.x * kKeys;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int warp_key = j0 + warp * kWarpRows;  // this warp's first key
  const int key0 = warp_key + g;               // this lane's keys: key0 + 16 m + 8 r
  const float scale_log2 = s.scale * kLog2e;

  const int64_t q_stride = int64_t(H) * kHd, kv_stride = int64_t(KV) * kHd;

  float dk_acc[kM][kHd / 8][4], dv_acc[kM][kHd / 8][4];
  zero(dk_acc);
  zero(dv_acc);

  // The last query that sees a key of this tile.
  const int i_hi = s.window > 0 ? min(T - 1, j0 + kKeys - 1 + s.window - 1) : T - 1;
  // The (head, query tile) pairs in order: heads of the group, then query tiles from j0 to i_hi.
  const int h_end = (kvh + 1) * group;
  auto q_rows = [&](int h) { return q + (int64_t(b) * T * H + h) * kHd; };
  auto do_rows = [&](int h) { return dout + (int64_t(b) * T * H + h) * kHd; };
  auto stat_base = [&](int h) { return (int64_t(b) * H + h) * T; };
  auto next_pair = [&](int& h, int& i0) {
    if (i0 + kQueries > i_hi) {
      ++h;
      i0 = j0;
    } else {
      i0 += kQueries;
    }
  };
  Stage q_stage(staging), do_stage(staging + Stage::kStagingBytes / sizeof(float));
  RowStats<kQueries> row_stats;
  q_stage.fetch(q_rows(kvh * group), q_stride, j0, T);
  do_stage.fetch(do_rows(kvh * group), q_stride, j0, T);
  row_stats.fetch(lse, delta, stat_base(kvh * group), j0, T);
  // K and V staged while the first pair's loads are in flight.
  stage_rows<kHd, kKeys, kThreads>(ks, k + (int64_t(b) * T * KV + kvh) * kHd, kv_stride, j0, T);
  stage_rows<kHd, kKeys, kThreads>(vs, v + (int64_t(b) * T * KV + kvh) * kHd, kv_stride, j0, T);
  for (int h = kvh * group, i0 = j0, buffer = 0; h < h_end; next_pair(h, i0), buffer ^= 1) {
    // Two buffers: the one written here was last read two pairs ago, before
    // every thread passed the previous pair's barrier (which also orders K, V).
    __nv_bfloat16* qs = q_tiles + buffer * 2 * kQueries * kS;
    __nv_bfloat16* dos = qs + kQueries * kS;
    float* stats_s = stats + buffer * 2 * kQueries;
    q_stage.put(qs, q_rows(h), q_stride, i0, T);
    do_stage.put(dos, do_rows(h), q_stride, i0, T);
    if (!kAhead) row_stats.fetch(lse, delta, stat_base(h), i0, T);
    row_stats.put(stats_s);
    __syncthreads();
    if (kAhead) {  // the next pair's loads fly while this one is computed
      int next_h = h, next_i0 = i0;
      next_pair(next_h, next_i0);
      if (next_h < h_end) {
        q_stage.fetch(q_rows(next_h), q_stride, next_i0, T);
        do_stage.fetch(do_rows(next_h), q_stride, next_i0, T);
        row_stats.fetch(lse, delta, stat_base(next_h), next_i0, T);
      }
    }
    // Warp-uniform: every query of the tile before this warp's keys, or past their windows.
    if (i0 + kQueries - 1 < warp_key || warp_key >= T) continue;
    if (s.window > 0 && i0 - (warp_key + kWarpRows - 1) >= s.window) continue;

    float st[kM][kQueries / 8][4], dpt[kM][kQueries / 8][4];
    zero(st);
    zero(dpt);
    {
      uint32_t kf[kM][kHd / 16][4], vf[kM][kHd / 16][4];
      load_rows_a<kM, kHd>(kf, ks, warp * kWarpRows, lane);
      load_rows_a<kM, kHd>(vf, vs, warp * kWarpRows, lane);
      mma_a_tile_t<kM, kHd, kQueries>(st, kf, qs, lane);
      mma_a_tile_t<kM, kHd, kQueries>(dpt, vf, dos, lane);
    }
    // st becomes P^T, dpt dS^T / scale (the scale is applied to dK once, at
    // the end); the visibility test only where some pair can be invisible.
    auto probabilities = [&](auto masked) {
#pragma unroll
      for (int n = 0; n < kQueries / 8; ++n) {
        // (lse, delta) of query columns n * 8 + 2t and n * 8 + 2t + 1.
        const float4 pair = *reinterpret_cast<const float4*>(stats_s + 2 * (n * 8 + 2 * t));
#pragma unroll
        for (int mi = 0; mi < kM; ++mi)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int c = n * 8 + 2 * t + (e & 1);
            const float row_lse = e & 1 ? pair.z : pair.x, row_delta = e & 1 ? pair.w : pair.y;
            float p = 0.0f;
            if (!decltype(masked)::value || visible(i0 + c, key0 + 16 * mi + (e / 2) * 8, T, s.window))
              p = exp2_approx(fmaf(st[mi][n][e], scale_log2, -row_lse));
            st[mi][n][e] = p;
            dpt[mi][n][e] = p * (dpt[mi][n][e] - row_delta);
          }
      }
    };
    const bool full = i0 >= warp_key + kWarpRows - 1 && i0 + kQueries <= T &&
                      (s.window <= 0 || i0 + kQueries - 1 - warp_key < s.window);
    if (full)
      probabilities(std::false_type{});
    else
      probabilities(std::true_type{});
    mma_p_tile<kM, kHd, kQueries>(dv_acc, st, dos, lane);
    mma_p_tile<kM, kHd, kQueries>(dk_acc, dpt, qs, lane);
  }

#pragma unroll
  for (int mi = 0; mi < kM; ++mi)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int j = key0 + 16 * mi + 8 * r;
      if (j >= T) continue;
      const int64_t at = ((int64_t(b) * T + j) * KV + kvh) * kHd + 2 * t;
#pragma unroll
      for (int n = 0; n < kHd / 8; ++n) {
        auto* dkp = reinterpret_cast<float2*>(dk + at + n * 8);
        auto* dvp = reinterpret_cast<float2*>(dv + at + n * 8);
        const float2 dk_old = *dkp, dv_old = *dvp;
        *dkp = make_float2(dk_old.x + dk_acc[mi][n][2 * r] * s.scale,
                           dk_old.y + dk_acc[mi][n][2 * r + 1] * s.scale);
        *dvp = make_float2(dv_old.x + dv_acc[mi][n][2 * r], dv_old.y + dv_acc[mi][n][2 * r + 1]);
      }
    }
}

// grid (ceil(T / (16 kWarps kM)), heads, batch); as the dk/dv kernel, with
// queries as the owned rows and kOther keys per tile.
template <int kHd, int kWarps, int kM, int kMinBlocks, Staging kStaging, int kOther>
__global__ void __launch_bounds__(kWarps * 32, kMinBlocks)
    attention_tc_dq_kernel(float* dq, const float* dout, const float* q, const float* k, const float* v,
                           const float* lse, const float* delta, AttentionShape s) {
  constexpr int kThreads = kWarps * 32, kWarpRows = kM * kMmaRows, kRows = kWarps * kWarpRows,
                kS = stride<kHd>(), kKeys = kOther;
  extern __shared__ __align__(16) unsigned char smem_bytes[];
  auto* qs = reinterpret_cast<__nv_bfloat16*>(smem_bytes);  // [kRows][kS]
  __nv_bfloat16* dos = qs + kRows * kS;                     // [kRows][kS]
  __nv_bfloat16* kv_tiles = dos + kRows * kS;               // [2 buffers][K, V][kKeys][kS]
  using Stage = TileStage<kHd, kKeys, kThreads, kStaging>;
  auto* staging = reinterpret_cast<float*>(kv_tiles + 4 * kKeys * kS);  // K, V (async_copy only)

  const int T = s.seq, H = s.heads, KV = s.kv_heads;
  const int b = blockIdx.z, h = blockIdx.y, kvh = h / (H / KV);
  const int i0 = (gridDim.x - 1 - blockIdx.x) * kRows;  // the longest tiles start first
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int warp_row = i0 + warp * kWarpRows;
  const int row0 = warp_row + g;  // this lane's rows: row0 + 16 m + 8 r
  const float scale_log2 = s.scale * kLog2e;

  const int64_t q_stride = int64_t(H) * kHd, kv_stride = int64_t(KV) * kHd;
  const int64_t head_rows = int64_t(b) * T * H + h;
  const float* k_base = k + (int64_t(b) * T * KV + kvh) * kHd;
  const float* v_base = v + (int64_t(b) * T * KV + kvh) * kHd;
  const int i_last = min(T - 1, i0 + kRows - 1);
  const int j_first = first_key(i0, s.window) / kKeys * kKeys;
  Stage k_stage(staging), v_stage(staging + Stage::kStagingBytes / sizeof(float));
  k_stage.fetch(k_base, kv_stride, j_first, T);  // in flight while Q and dO are staged
  v_stage.fetch(v_base, kv_stride, j_first, T);
  stage_rows<kHd, kRows, kThreads>(qs, q + head_rows * kHd, q_stride, i0, T);
  stage_rows<kHd, kRows, kThreads>(dos, dout + head_rows * kHd, q_stride, i0, T);
  float row_lse[kM][2], row_delta[kM][2];
#pragma unroll
  for (int mi = 0; mi < kM; ++mi)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int i = row0 + 16 * mi + 8 * r;
      const int64_t at = (int64_t(b) * H + h) * T + i;
      row_lse[mi][r] = i < T ? lse[at] * kLog2e : 0.0f;
      row_delta[mi][r] = i < T ? delta[at] : 0.0f;
    }
  __syncthreads();
  uint32_t qf[kM][kHd / 16][4], dof[kM][kHd / 16][4];
  load_rows_a<kM, kHd>(qf, qs, warp * kWarpRows, lane);
  load_rows_a<kM, kHd>(dof, dos, warp * kWarpRows, lane);
  float dq_acc[kM][kHd / 8][4];
  zero(dq_acc);

  for (int j0 = j_first, buffer = 0; j0 <= i_last; j0 += kKeys, buffer ^= 1) {
    __nv_bfloat16* ks = kv_tiles + buffer * 2 * kKeys * kS;  // two buffers, as in the forward
    __nv_bfloat16* vs = ks + kKeys * kS;
    k_stage.put(ks, k_base, kv_stride, j0, T);
    v_stage.put(vs, v_base, kv_stride, j0, T);
    __syncthreads();
    if (j0 + kKeys <= i_last) {
      k_stage.fetch(k_base, kv_stride, j0 + kKeys, T);
      v_stage.fetch(v_base, kv_stride, j0 + kKeys, T);
    }
    if (j0 > warp_row + kWarpRows - 1 || warp_row >= T) continue;
    if (s.window > 0 && warp_row - (j0 + kKeys - 1) >= s.window) continue;

    float sc[kM][kKeys / 8][4], dp[kM][kKeys / 8][4];
    zero(sc);
    zero(dp);
    mma_a_tile_t<kM, kHd, kKeys>(sc, qf, ks, lane);
    mma_a_tile_t<kM, kHd, kKeys>(dp, dof, vs, lane);
    auto gradients = [&](auto masked) {  // dp becomes dS / scale (the scale is applied to dQ at the end)
#pragma unroll
      for (int mi = 0; mi < kM; ++mi)
#pragma unroll
        for (int n = 0; n < kKeys / 8; ++n)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int j = j0 + n * 8 + 2 * t + (e & 1), r = e / 2;
            float p = 0.0f;
            if (!decltype(masked)::value || visible(row0 + 16 * mi + 8 * r, j, T, s.window))
              p = exp2_approx(fmaf(sc[mi][n][e], scale_log2, -row_lse[mi][r]));
            dp[mi][n][e] = p * (dp[mi][n][e] - row_delta[mi][r]);
          }
    };
    const bool full = j0 + kKeys - 1 <= warp_row && warp_row + kWarpRows <= T &&
                      (s.window <= 0 || warp_row + kWarpRows - 1 - j0 < s.window);
    if (full)
      gradients(std::false_type{});
    else
      gradients(std::true_type{});
    mma_p_tile<kM, kHd, kKeys>(dq_acc, dp, ks, lane);
  }

#pragma unroll
  for (int mi = 0; mi < kM; ++mi)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int i = row0 + 16 * mi + 8 * r;
      if (i >= T) continue;
      float* dqr = dq + ((int64_t(b) * T + i) * H + h) * kHd + 2 * t;
#pragma unroll
      for (int n = 0; n < kHd / 8; ++n) {
        auto* p = reinterpret_cast<float2*>(dqr + n * 8);
        const float2 old = *p;
        *p = make_float2(old.x + dq_acc[mi][n][2 * r] * s.scale, old.y + dq_acc[mi][n][2 * r + 1] * s.scale);
      }
    }
}

// How a kernel runs at a head_dim: warps per block, m-tiles (16 owned rows)
// per warp, the register cap (kMinBlocks blocks per multiprocessor), how the
// next tile is staged, and the rows of the other side's tiles.
template <int kHd, int kWarps, int kM, int kMinBlocks, Staging kStaging, int kOther>
struct Config {
  static constexpr int hd = kHd, warps = kWarps, m_tiles = kM, min_blocks = kMinBlocks, other = kOther;
  static constexpr Staging staging = kStaging;
  static constexpr std::size_t staging_bytes =
      2 * TileStage<kHd, kOther, kWarps * 32, kStaging>::kStagingBytes;
};

template <class DkDv, class Dq>
void launch_backward(cudaStream_t stream, float* dq, float* dk, float* dv, const float* dout, const float* q,
                     const float* k, const float* v, const float* lse, const float* delta,
                     const AttentionShape& s) {
  constexpr int kHd = DkDv::hd;
  static_assert(Dq::hd == kHd, "one head_dim");
  constexpr std::size_t kRowBytes = sizeof(__nv_bfloat16) * stride<kHd>();

  auto dkdv_kernel =
      attention_tc_dkdv_kernel<kHd, DkDv::warps, DkDv::m_tiles, DkDv::min_blocks, DkDv::staging, DkDv::other>;
  constexpr int kKeys = DkDv::warps * DkDv::m_tiles * kMmaRows;
  const std::size_t dkdv_bytes =
      kRowBytes * (2 * kKeys + 4 * DkDv::other) + sizeof(float) * 4 * DkDv::other + DkDv::staging_bytes;
  allow_shared_memory(dkdv_kernel, dkdv_bytes);
  const dim3 dkdv_grid(unsigned((s.seq + kKeys - 1) / kKeys), unsigned(s.kv_heads), unsigned(s.batch));
  dkdv_kernel<<<dkdv_grid, DkDv::warps * 32, dkdv_bytes, stream>>>(dk, dv, dout, q, k, v, lse, delta, s);
  LIVS_CUDA_CHECK_LAUNCH();

  auto dq_kernel =
      attention_tc_dq_kernel<kHd, Dq::warps, Dq::m_tiles, Dq::min_blocks, Dq::staging, Dq::other>;
  constexpr int kRows = Dq::warps * Dq::m_tiles * kMmaRows;
  const std::size_t dq_bytes = kRowBytes * (2 * kRows + 4 * Dq::other) + Dq::staging_bytes;
  allow_shared_memory(dq_kernel, dq_bytes);
  const dim3 dq_grid(unsigned((s.seq + kRows - 1) / kRows), unsigned(s.heads), unsigned(s.batch));
  dq_kernel<<<dq_grid, Dq::warps * 32, dq_bytes, stream>>>(dq, dout, q, k, v, lse, delta, s);
  LIVS_CUDA_CHECK_LAUNCH();
}

}  // namespace

void attention_tc_backward(cudaStream_t stream, float* dq, float* dk, float* dv, const float* dout,
                           const float* q, const float* k, const float* v, const float* lse,
                           const float* delta, const AttentionShape& s) {
  if (s.batch <= 0 || s.seq <= 0) return;
  // Chosen by timing variants on an H100 at B 16, T 1024, d 512 (docs/architecture.md):
  // Config<head_dim, warps, m-tiles per warp, min blocks per SM, staging, other-side rows>.
  constexpr Staging kAsync = Staging::async_copy;
  switch (s.head_dim) {
    case 16:
      return launch_backward<Config<16, 4, 1, 3, kAsync, 64>, Config<16, 8, 1, 2, kAsync, 64>>(
          stream, dq, dk, dv, dout, q, k, v, lse, delta, s);
    case 32:
      return launch_backward<Config<32, 4, 2, 3, kAsync, 32>, Config<32, 4, 2, 3, kAsync, 32>>(
          stream, dq, dk, dv, dout, q, k, v, lse, delta, s);
    case 64:
      return launch_backward<Config<64, 4, 1, 3, kAsync, 32>, Config<64, 4, 2, 2, kAsync, 32>>(
          stream, dq, dk, dv, dout, q, k, v, lse, delta, s);
    case 128:
      return launch_backward<Config<128, 4, 1, 1, Staging::direct, 32>,
                             Config<128, 4, 1, 1, Staging::direct, 32>>(stream, dq, dk, dv, dout, q, k, v,
                                                                        lse, delta, s);
    default:
      throw std::invalid_argument("tensor-core attention: head_dim " + std::to_string(s.head_dim) +
                                  " is not 16, 32, 64 or 128");
  }
}

}  // namespace livs::evaluator::cuda
