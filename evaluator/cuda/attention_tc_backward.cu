// Tensor-core attention backward, deterministic: every gradient row has one
// owner and a fixed summation order, so two runs give the same bits.
//   dk/dv kernel: a block per (key tile, kv head, batch), kWarps warps of 16
//     keys; it loops over the heads of its GQA group, then over the query
//     tiles that see its keys, recomputing S^T = K Q^T and P^T = exp(S^T - lse)
//     and accumulating dV += P^T dO and dK += dS^T Q in fp32 registers.
//   dq kernel: a block per (query tile, head, batch), kWarps warps of 16
//     queries, over the key tiles its queries see: dQ += dS K.
// The tiles of the other side (queries and dO, or keys and values), which
// many blocks read, come from bf16 copies in the caller's scratch, staged by
// 16-byte cp.async copies with no conversion, alternating between two shared
// buffers (one barrier per tile, the next one copied while the current one
// is computed). A pre-kernel makes the copies of q and dO and, in the same
// pass, delta = rowsum(bf16(dO) * O); the dk/dv kernel rounds the key and
// value rows it owns (each read once) and leaves their copies for the dq kernel.
// With dp = dO V^T:
//   ds = p (dp - delta) scale; the mma operand is p (dp - delta), and dK, dQ
//   are multiplied by the scale once when they are written.
// q, k, v, dO, P and dS are bf16 mma operands; everything else is fp32.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "evaluator/cuda/attention_common.cuh"
#include "evaluator/cuda/attention_tc.cuh"
#include "evaluator/cuda/attention_tc_common.cuh"
#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/grid_dependency.cuh"

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
// order whatever kWarps, kM, kMinBlocks and kOther are (same bits).
template <int kHd, int kWarps, int kM, int kMinBlocks, int kOther>
__global__ void __launch_bounds__(kWarps * 32, kMinBlocks)
    attention_tc_dkdv_kernel(float* dk, float* dv, __nv_bfloat16* dv16, __nv_bfloat16* k16,
                             __nv_bfloat16* v16, const __nv_bfloat16* dout, const __nv_bfloat16* q,
                             const float* k, const float* v, const float* lse, const float* delta,
                             AttentionShape s, bool accumulate) {
  await_prior_grids();
  constexpr int kThreads = kWarps * 32, kWarpRows = kM * kMmaRows, kKeys = kWarps * kWarpRows,
                kS = stride<kHd>(), kQueries = kOther;
  static_assert(kQueries <= kThreads, "one thread per query row fetches lse and delta");
  extern __shared__ __align__(16) unsigned char smem_bytes[];
  auto* ks = reinterpret_cast<__nv_bfloat16*>(smem_bytes);              // [kKeys][kS]
  __nv_bfloat16* vs = ks + kKeys * kS;                                  // [kKeys][kS]
  __nv_bfloat16* q_tiles = vs + kKeys * kS;                             // [2 buffers][Q, dO][kQueries][kS]
  auto* stats = reinterpret_cast<float*>(q_tiles + 4 * kQueries * kS);  // [2 buffers][kQueries][lse, delta]

  const int T = s.seq, H = s.heads, KV = s.kv_heads, group = H / KV;
  // The 3-D grid, not tile_order: the 1-D decode cost this kernel spills
  // (20 -> 36 bytes at head_dim 32) and measured 4% slower (75 vs 72 us a
  // call at d 256), where the forward and dq kernels gained 9-10%.
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
  // A pair's Q and dO tiles go into buffer (pair number % 2).
  auto copy_pair = [&](int h, int i0, int buffer) {
    __nv_bfloat16* qs = q_tiles + buffer * 2 * kQueries * kS;
    copy_rows_async<kHd, kQueries, kThreads>(qs, q_rows(h), q_stride, i0, T);
    copy_rows_async<kHd, kQueries, kThreads>(qs + kQueries * kS, do_rows(h), q_stride, i0, T);
  };
  RowStats<kQueries> row_stats;
  copy_pair(kvh * group, j0, 0);
  cp_async_commit();
  row_stats.fetch(lse, delta, stat_base(kvh * group), j0, T);
  // This block's keys and values, rounded while the first pair flies; their
  // bf16 copies are the dq kernel's (each row has one owner block).
  const int64_t kv_base = (int64_t(b) * T * KV + kvh) * kHd;
  stage_rows_and_copy<kHd, kKeys, kThreads>(ks, k16 + kv_base, k + kv_base, kv_stride, j0, T);
  stage_rows_and_copy<kHd, kKeys, kThreads>(vs, v16 + kv_base, v + kv_base, kv_stride, j0, T);
  for (int h = kvh * group, i0 = j0, buffer = 0; h < h_end; next_pair(h, i0), buffer ^= 1) {
    // Two buffers: the one copied into below was last read two pairs ago,
    // before every thread passed this pair's barrier (which also orders K, V).
    const __nv_bfloat16* qs = q_tiles + buffer * 2 * kQueries * kS;
    const __nv_bfloat16* dos = qs + kQueries * kS;
    float* stats_s = stats + buffer * 2 * kQueries;
    cp_async_wait_all();  // this thread's pieces of the pair (the only group in flight)
    row_stats.put(stats_s);
    __syncthreads();
    {  // the next pair's copies fly while this one is computed
      int next_h = h, next_i0 = i0;
      next_pair(next_h, next_i0);
      if (next_h < h_end) {
        copy_pair(next_h, next_i0, buffer ^ 1);
        cp_async_commit();
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
        float2 dk_new = make_float2(dk_acc[mi][n][2 * r] * s.scale, dk_acc[mi][n][2 * r + 1] * s.scale),
               dv_new = make_float2(dv_acc[mi][n][2 * r], dv_acc[mi][n][2 * r + 1]);
        if (accumulate) {
          const float2 dk_old = *dkp, dv_old = *dvp;
          dk_new = make_float2(dk_old.x + dk_new.x, dk_old.y + dk_new.y);
          dv_new = make_float2(dv_old.x + dv_new.x, dv_old.y + dv_new.y);
        }
        *dkp = dk_new;
        *dvp = dv_new;
        if (dv16)
          *reinterpret_cast<uint32_t*>(dv16 + (int64_t(b) * T + j) * s.dv16_stride() + kvh * kHd + 2 * t +
                                       n * 8) = pack_bf16(dv_new.x, dv_new.y);
      }
    }
}

// grid: ceil(T / (16 kWarps kM)) x heads x batch in tile_order; as the dk/dv kernel, with
// queries as the owned rows and kOther keys per tile.
template <int kHd, int kWarps, int kM, int kMinBlocks, int kOther>
__global__ void __launch_bounds__(kWarps * 32, kMinBlocks)
    attention_tc_dq_kernel(float* dq, const __nv_bfloat16* dout, const __nv_bfloat16* q,
                           const __nv_bfloat16* k, const __nv_bfloat16* v, const float* lse,
                           const float* delta, AttentionShape s, bool accumulate) {
  await_prior_grids();
  constexpr int kThreads = kWarps * 32, kWarpRows = kM * kMmaRows, kRows = kWarps * kWarpRows,
                kS = stride<kHd>(), kKeys = kOther;
  extern __shared__ __align__(16) unsigned char smem_bytes[];
  auto* qs = reinterpret_cast<__nv_bfloat16*>(smem_bytes);  // [kRows][kS]
  __nv_bfloat16* dos = qs + kRows * kS;                     // [kRows][kS]
  __nv_bfloat16* kv_tiles = dos + kRows * kS;               // [2 buffers][K, V][kKeys][kS]

  const int T = s.seq, H = s.heads, KV = s.kv_heads;
  const TileOrder order = tile_order(H, s.batch);  // the longest tiles (the last queries) first
  const int b = order.batch, h = order.head, kvh = h / (H / KV);
  const int i0 = ((T + kRows - 1) / kRows - 1 - order.rank) * kRows;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int warp_row = i0 + warp * kWarpRows;
  const int row0 = warp_row + g;  // this lane's rows: row0 + 16 m + 8 r
  const float scale_log2 = s.scale * kLog2e;

  const int64_t q_stride = int64_t(H) * kHd, kv_stride = int64_t(KV) * kHd;
  const int64_t head_rows = int64_t(b) * T * H + h;
  const __nv_bfloat16* k_base = k + (int64_t(b) * T * KV + kvh) * kHd;
  const __nv_bfloat16* v_base = v + (int64_t(b) * T * KV + kvh) * kHd;
  const int i_last = min(T - 1, i0 + kRows - 1);
  const int j_first = first_key(i0, s.window) / kKeys * kKeys;
  // Key tile j goes into buffer (tile number % 2).
  auto copy_keys = [&](int j, int buffer) {
    __nv_bfloat16* ks = kv_tiles + buffer * 2 * kKeys * kS;
    copy_rows_async<kHd, kKeys, kThreads>(ks, k_base, kv_stride, j, T);
    copy_rows_async<kHd, kKeys, kThreads>(ks + kKeys * kS, v_base, kv_stride, j, T);
  };
  copy_rows_async<kHd, kRows, kThreads>(qs, q + head_rows * kHd, q_stride, i0, T);
  copy_rows_async<kHd, kRows, kThreads>(dos, dout + head_rows * kHd, q_stride, i0, T);
  copy_keys(j_first, 0);
  cp_async_commit();
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
  cp_async_wait_all();
  __syncthreads();
  uint32_t qf[kM][kHd / 16][4], dof[kM][kHd / 16][4];
  load_rows_a<kM, kHd>(qf, qs, warp * kWarpRows, lane);
  load_rows_a<kM, kHd>(dof, dos, warp * kWarpRows, lane);
  float dq_acc[kM][kHd / 8][4];
  zero(dq_acc);

  for (int j0 = j_first, buffer = 0; j0 <= i_last; j0 += kKeys, buffer ^= 1) {
    const __nv_bfloat16* ks = kv_tiles + buffer * 2 * kKeys * kS;  // two buffers, as in the dk/dv kernel
    const __nv_bfloat16* vs = ks + kKeys * kS;
    if (j0 != j_first) {  // (the first tile came with Q and dO, before the fragments were loaded)
      cp_async_wait_all();
      __syncthreads();
    }
    if (j0 + kKeys <= i_last) {
      copy_keys(j0 + kKeys, buffer ^ 1);
      cp_async_commit();
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
        float2 dq_new = make_float2(dq_acc[mi][n][2 * r] * s.scale, dq_acc[mi][n][2 * r + 1] * s.scale);
        if (accumulate) {
          const float2 old = *p;
          dq_new = make_float2(old.x + dq_new.x, old.y + dq_new.y);
        }
        *p = dq_new;
      }
    }
}

// The bf16 copies and delta in the caller's scratch: delta first (fp32 per
// query row), then q, dout, k, v, each starting on a 16-byte boundary.
struct BackwardScratch {
  float* delta;
  __nv_bfloat16 *q, *dout, *k, *v;
};
constexpr std::size_t align16(std::size_t bytes) { return (bytes + 15) / 16 * 16; }
BackwardScratch carve(void* base, const AttentionShape& s) {
  const std::size_t rows = std::size_t(s.batch) * s.heads * s.seq,
                    q_bytes = align16(rows * s.head_dim * sizeof(__nv_bfloat16)),
                    kv_bytes = align16(std::size_t(s.batch) * s.seq * s.kv_heads * s.head_dim *
                                       sizeof(__nv_bfloat16));
  auto* bytes = static_cast<unsigned char*>(base);
  BackwardScratch out;
  out.delta = reinterpret_cast<float*>(bytes);
  bytes += align16(rows * sizeof(float));
  out.q = reinterpret_cast<__nv_bfloat16*>(bytes);
  out.dout = reinterpret_cast<__nv_bfloat16*>(bytes + q_bytes);
  out.k = reinterpret_cast<__nv_bfloat16*>(bytes + 2 * q_bytes);
  out.v = reinterpret_cast<__nv_bfloat16*>(bytes + 2 * q_bytes + kv_bytes);
  return out;
}

constexpr int kPrepareThreads = 256;

// One pass over q, dout and out, 4 values per thread: q and dout rounded to
// bf16, and delta = bf16(dout) . out summed over each row (the kHd / 4
// neighbouring lanes of a row, in a fixed order: same bits every run).
// Rounding dout as the mma operands are rounded keeps dp - delta consistent
// where a row attends to one key. (k and v are rounded by the dk/dv kernel,
// which reads each of their rows once.)
template <int kHd>
__global__ void __launch_bounds__(kPrepareThreads)
    attention_tc_prepare_kernel(BackwardScratch out16, const float* q, const float* dout, const float* out,
                                AttentionShape s) {
  await_prior_grids();
  constexpr int kLanesPerRow = kHd / 4;
  static_assert(32 % kLanesPerRow == 0, "a row's lanes sit in one warp");
  const int64_t idx = int64_t(blockIdx.x) * kPrepareThreads + threadIdx.x;  // a float4 of the inputs
  auto round4 = [](const float4& x, __nv_bfloat16* to) {
    uint2 packed;
    packed.x = pack_bf16(x.x, x.y);
    packed.y = pack_bf16(x.z, x.w);
    *reinterpret_cast<uint2*>(to) = packed;
    return packed;
  };
  const int64_t count = int64_t(s.batch) * s.seq * s.heads * kHd / 4;
  if (int64_t(blockIdx.x) * kPrepareThreads >= count) return;  // the whole block (no shuffle below)
  float sum = 0.0f;
  if (idx < count) {  // whole rows are in or out: count is a multiple of kLanesPerRow
    round4(__ldg(reinterpret_cast<const float4*>(q) + idx), out16.q + 4 * idx);
    const uint2 g = round4(__ldg(reinterpret_cast<const float4*>(dout) + idx), out16.dout + 4 * idx);
    const float4 o = __ldg(reinterpret_cast<const float4*>(out) + idx);
    const float2 g01 = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&g.x)),
                 g23 = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&g.y));
    sum = g01.x * o.x + g01.y * o.y + g23.x * o.z + g23.y * o.w;
  }
#pragma unroll
  for (int offset = kLanesPerRow / 2; offset > 0; offset /= 2)
    sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  if (idx < count && idx % kLanesPerRow == 0) {
    const int64_t row = idx / kLanesPerRow;  // (b, i, h) in the layout of q
    const int64_t h = row % s.heads, i = (row / s.heads) % s.seq, b = row / (int64_t(s.heads) * s.seq);
    out16.delta[(b * s.heads + h) * s.seq + i] = sum;
  }
}

// How a kernel runs at a head_dim: warps per block, m-tiles (16 owned rows)
// per warp, the register cap (kMinBlocks blocks per multiprocessor) and the
// rows of the other side's tiles.
template <int kHd, int kWarps, int kM, int kMinBlocks, int kOther>
struct Config {
  static constexpr int hd = kHd, warps = kWarps, m_tiles = kM, min_blocks = kMinBlocks, other = kOther;
};

template <class DkDv, class Dq>
void launch_backward(cudaStream_t stream, float* dq, float* dk, float* dv, const float* dout, const float* q,
                     const float* k, const float* v, const float* out, const float* lse, void* scratch,
                     const AttentionShape& s, bool accumulate, void* dv16) {
  constexpr int kHd = DkDv::hd;
  static_assert(Dq::hd == kHd, "one head_dim");
  constexpr std::size_t kRowBytes = sizeof(__nv_bfloat16) * stride<kHd>();
  const BackwardScratch in16 = carve(scratch, s);

  const int64_t vectors = int64_t(s.batch) * s.seq * s.heads * kHd / 4;
  const unsigned prepare_blocks = unsigned((vectors + kPrepareThreads - 1) / kPrepareThreads);
  attention_tc_prepare_kernel<kHd><<<prepare_blocks, kPrepareThreads, 0, stream>>>(in16, q, dout, out, s);
  LIVS_CUDA_CHECK_LAUNCH();

  auto dkdv_kernel = attention_tc_dkdv_kernel<kHd, DkDv::warps, DkDv::m_tiles, DkDv::min_blocks, DkDv::other>;
  constexpr int kKeys = DkDv::warps * DkDv::m_tiles * kMmaRows;
  const std::size_t dkdv_bytes = kRowBytes * (2 * kKeys + 4 * DkDv::other) + sizeof(float) * 4 * DkDv::other;
  allow_shared_memory(dkdv_kernel, dkdv_bytes);
  const dim3 dkdv_grid(unsigned((s.seq + kKeys - 1) / kKeys), unsigned(s.kv_heads), unsigned(s.batch));
  dkdv_kernel<<<dkdv_grid, DkDv::warps * 32, dkdv_bytes, stream>>>(dk, dv, static_cast<__nv_bfloat16*>(dv16),
                                                                   in16.k, in16.v, in16.dout, in16.q, k, v,
                                                                   lse, in16.delta, s, accumulate);
  LIVS_CUDA_CHECK_LAUNCH();

  auto dq_kernel = attention_tc_dq_kernel<kHd, Dq::warps, Dq::m_tiles, Dq::min_blocks, Dq::other>;
  constexpr int kRows = Dq::warps * Dq::m_tiles * kMmaRows;
  const std::size_t dq_bytes = kRowBytes * (2 * kRows + 4 * Dq::other);
  allow_shared_memory(dq_kernel, dq_bytes);
  const dim3 dq_grid = tile_order_grid((s.seq + kRows - 1) / kRows, s.heads, s.batch);
  dq_kernel<<<dq_grid, Dq::warps * 32, dq_bytes, stream>>>(dq, in16.dout, in16.q, in16.k, in16.v, lse,
                                                           in16.delta, s, accumulate);
  LIVS_CUDA_CHECK_LAUNCH();
}

}  // namespace

std::size_t attention_tc_backward_scratch_bytes(const AttentionShape& s) {
  const std::size_t rows = std::size_t(std::max(s.batch, 0)) * std::max(s.heads, 0) * std::max(s.seq, 0),
                    kv_rows =
                        std::size_t(std::max(s.batch, 0)) * std::max(s.kv_heads, 0) * std::max(s.seq, 0),
                    hd = std::size_t(std::max(s.head_dim, 0));
  return align16(rows * sizeof(float)) + 2 * align16(rows * hd * sizeof(__nv_bfloat16)) +
         2 * align16(kv_rows * hd * sizeof(__nv_bfloat16));
}

void attention_tc_backward(cudaStream_t stream, float* dq, float* dk, float* dv, const float* dout,
                           const float* q, const float* k, const float* v, const float* out, const float* lse,
                           void* scratch, const AttentionShape& s, bool accumulate, void* dv16) {
  if (s.batch <= 0 || s.seq <= 0) return;
  // Chosen by timing variants on an H100 at B 16, T 1024, d 512 (docs/architecture.md):
  // Config<head_dim, warps, m-tiles per warp, min blocks per SM, other-side rows>.
  switch (s.head_dim) {
    case 16:
      return launch_backward<Config<16, 4, 1, 3, 64>, Config<16, 8, 1, 2, 64>>(
          stream, dq, dk, dv, dout, q, k, v, out, lse, scratch, s, accumulate, dv16);
    case 32:
      return launch_backward<Config<32, 4, 1, 4, 64>, Config<32, 4, 2, 3, 32>>(
          stream, dq, dk, dv, dout, q, k, v, out, lse, scratch, s, accumulate, dv16);
    case 64:
      return launch_backward<Config<64, 4, 1, 4, 32>, Config<64, 4, 1, 3, 32>>(
          stream, dq, dk, dv, dout, q, k, v, out, lse, scratch, s, accumulate, dv16);
    case 128:
      return launch_backward<Config<128, 4, 1, 1, 32>, Config<128, 4, 1, 1, 32>>(
          stream, dq, dk, dv, dout, q, k, v, out, lse, scratch, s, accumulate, dv16);
    default:
      throw std::invalid_argument("tensor-core attention: head_dim " + std::to_string(s.head_dim) +
                                  " is not 16, 32, 64 or 128");
  }
}

}  // namespace livs::evaluator::cuda
