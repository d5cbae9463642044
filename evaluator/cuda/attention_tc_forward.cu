// Tensor-core attention forward, FlashAttention-2 style: one block per
// (query tile, head, batch), each warp owning 16 or 32 query rows. Key/value tiles of
// 64 rows are staged as bf16 in two alternating shared buffers (one barrier
// per tile); S = Q K^T and O += P V run as bf16 mma with fp32 accumulators,
// the online softmax (base 2, scale folded into the exponent) stays in fp32
// registers. Key tiles wholly before a sliding window or after the tile's last
// query are never visited, and masks are applied only to the tiles that cross
// the diagonal, the window's edge or the sequence's end.
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "common/environment_switch.hpp"
#include "evaluator/cuda/attention_common.cuh"
#include "evaluator/cuda/attention_tc.cuh"
#include "evaluator/cuda/attention_tc_common.cuh"
#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/grid_dependency.cuh"

namespace livs::evaluator::cuda {

namespace {

using namespace tc;

// A block per (query tile, head, batch): kWarps warps of kM m-tiles (16 kM
// query rows) each. kMinBlocks: blocks that must fit on a multiprocessor at
// once (a register cap for the compiler). kStaging: how key/value tile j + 1
// is loaded while tile j is computed (attention_tc_common.cuh). kKeys: rows of
// a key/value tile. Every query row sees the same operations in the same
// order whatever kWarps, kM, kMinBlocks and kStaging are (same bits).
template <int kHd, int kWarps, int kM, int kMinBlocks, Staging kStaging, int kKeys>
__global__ void __launch_bounds__(kWarps * 32, kMinBlocks)
    attention_tc_forward_kernel(float* out, __nv_bfloat16* out16, float* lse, const float* q, const float* k,
                                const float* v, AttentionShape s) {
  await_prior_grids();
  constexpr int kThreads = kWarps * 32, kWarpRows = kM * kMmaRows, kRows = kWarps * kWarpRows,
                kS = stride<kHd>();
  extern __shared__ __align__(16) unsigned char smem_bytes[];
  auto* qs = reinterpret_cast<__nv_bfloat16*>(smem_bytes);  // [kRows][kS]
  __nv_bfloat16* kv_tiles = qs + kRows * kS;                // [2 buffers][K, V][kKeys][kS]
  using Stage = TileStage<kHd, kKeys, kThreads, kStaging>;
  auto* staging = reinterpret_cast<float*>(kv_tiles + 4 * kKeys * kS);  // K, V (async_copy only)

  const int T = s.seq, H = s.heads, KV = s.kv_heads;
  const TileOrder order = tile_order(H, s.batch);  // the longest tiles (the last queries) first
  const int b = order.batch, h = order.head, kvh = h / (H / KV);
  const int i0 = ((T + kRows - 1) / kRows - 1 - order.rank) * kRows;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int warp_row = i0 + warp * kWarpRows;  // this warp's first query
  const int row0 = warp_row + g;               // this lane's rows: row0 + 16 m + 8 r
  const float scale_log2 = s.scale * kLog2e;   // > 0 (attention_tc_supported)

  const int64_t q_stride = int64_t(H) * kHd, kv_stride = int64_t(KV) * kHd;
  const float* k_base = k + (int64_t(b) * T * KV + kvh) * kHd;
  const float* v_base = v + (int64_t(b) * T * KV + kvh) * kHd;
  const int i_last = min(T - 1, i0 + kRows - 1);
  const int j_first = first_key(i0, s.window) / kKeys * kKeys;
  Stage k_stage(staging), v_stage(staging + Stage::kStagingBytes / sizeof(float));
  k_stage.fetch(k_base, kv_stride, j_first, T);  // in flight while Q is staged
  v_stage.fetch(v_base, kv_stride, j_first, T);
  stage_rows<kHd, kRows, kThreads>(qs, q + (int64_t(b) * T * H + h) * kHd, q_stride, i0, T);
  __syncthreads();
  uint32_t qf[kM][kHd / 16][4];
  load_rows_a<kM, kHd>(qf, qs, warp * kWarpRows, lane);

  float o[kM][kHd / 8][4];
  zero(o);
  // m: the running maximum raw score; l: this lane's part of the row sum.
  float m[kM][2], l[kM][2];
#pragma unroll
  for (int mi = 0; mi < kM; ++mi) m[mi][0] = m[mi][1] = -INFINITY, l[mi][0] = l[mi][1] = 0.0f;

  for (int j0 = j_first, buffer = 0; j0 <= i_last; j0 += kKeys, buffer ^= 1) {
    // Two buffers: the one written here was last read two tiles ago, before
    // every thread passed the previous tile's barrier.
    __nv_bfloat16* ks = kv_tiles + buffer * 2 * kKeys * kS;
    __nv_bfloat16* vs = ks + kKeys * kS;
    k_stage.put(ks, k_base, kv_stride, j0, T);
    v_stage.put(vs, v_base, kv_stride, j0, T);
    __syncthreads();
    if (j0 + kKeys <= i_last) {  // the next tile's loads fly while this one is computed
      k_stage.fetch(k_base, kv_stride, j0 + kKeys, T);
      v_stage.fetch(v_base, kv_stride, j0 + kKeys, T);
    }
    // Warp-uniform: keys wholly after this warp's rows, or wholly before its window.
    if (j0 > warp_row + kWarpRows - 1 || warp_row >= T) continue;
    if (s.window > 0 && warp_row - (j0 + kKeys - 1) >= s.window) continue;

    float sc[kM][kKeys / 8][4];
    zero(sc);
    mma_a_tile_t<kM, kHd, kKeys>(sc, qf, ks, lane);
    // Masking only where some pair of this warp's rows can be invisible.
    const bool full = j0 + kKeys - 1 <= warp_row && warp_row + kWarpRows <= T &&
                      (s.window <= 0 || warp_row + kWarpRows - 1 - j0 < s.window);
    if (!full) {
#pragma unroll
      for (int mi = 0; mi < kM; ++mi)
#pragma unroll
        for (int n = 0; n < kKeys / 8; ++n)
#pragma unroll
          for (int e = 0; e < 4; ++e)
            if (!visible(row0 + 16 * mi + (e / 2) * 8, j0 + n * 8 + 2 * t + (e & 1), T, s.window))
              sc[mi][n][e] = -INFINITY;
    }
#pragma unroll
    for (int mi = 0; mi < kM; ++mi)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float tile_max = -INFINITY;
#pragma unroll
        for (int n = 0; n < kKeys / 8; ++n)
          tile_max = fmaxf(tile_max, fmaxf(sc[mi][n][2 * r], sc[mi][n][2 * r + 1]));
        const float new_m = fmaxf(m[mi][r], quad_max(tile_max));
        // p = 2^(score scale log2(e) - base): one FFMA and one ex2 per score. A
        // row with no key yet keeps base 0 and stays all zero.
        const float base = new_m == -INFINITY ? 0.0f : new_m * scale_log2;
        const float alpha = exp2_approx(m[mi][r] * scale_log2 - base);
        m[mi][r] = new_m;
        float sum = 0.0f;
#pragma unroll
        for (int n = 0; n < kKeys / 8; ++n) {
          sc[mi][n][2 * r] = exp2_approx(fmaf(sc[mi][n][2 * r], scale_log2, -base));
          sc[mi][n][2 * r + 1] = exp2_approx(fmaf(sc[mi][n][2 * r + 1], scale_log2, -base));
          sum += sc[mi][n][2 * r] + sc[mi][n][2 * r + 1];
        }
        l[mi][r] = l[mi][r] * alpha + sum;
#pragma unroll
        for (int n = 0; n < kHd / 8; ++n) {
          o[mi][n][2 * r] *= alpha;
          o[mi][n][2 * r + 1] *= alpha;
        }
      }
    mma_p_tile<kM, kHd, kKeys>(o, sc, vs, lane);
  }

#pragma unroll
  for (int mi = 0; mi < kM; ++mi)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const float total = quad_sum(l[mi][r]);
      const int i = row0 + 16 * mi + 8 * r;
      if (i >= T) continue;
      const float inv = 1.0f / total;
      const int64_t at = ((int64_t(b) * T + i) * H + h) * kHd + 2 * t;
#pragma unroll
      for (int n = 0; n < kHd / 8; ++n) {
        const float2 value = make_float2(o[mi][n][2 * r] * inv, o[mi][n][2 * r + 1] * inv);
        *reinterpret_cast<float2*>(out + at + n * 8) = value;
        if (out16) *reinterpret_cast<uint32_t*>(out16 + at + n * 8) = pack_bf16(value.x, value.y);
      }
      if (t == 0) lse[(int64_t(b) * H + h) * T + i] = (m[mi][r] * scale_log2 + log2f(total)) * kLn2;
    }
}

template <int kHd, int kWarps, int kM, int kMinBlocks, Staging kStaging, int kKeys = 64>
void launch_forward(cudaStream_t stream, float* out, void* out16, float* lse, const float* q, const float* k,
                    const float* v, const AttentionShape& s) {
  constexpr int kRows = kWarps * kM * kMmaRows;
  auto kernel = attention_tc_forward_kernel<kHd, kWarps, kM, kMinBlocks, kStaging, kKeys>;
  const std::size_t bytes = sizeof(__nv_bfloat16) * (kRows + 4 * kKeys) * stride<kHd>() +
                            2 * TileStage<kHd, kKeys, kWarps * 32, kStaging>::kStagingBytes;
  allow_shared_memory(kernel, bytes);
  const dim3 grid = tile_order_grid((s.seq + kRows - 1) / kRows, s.heads, s.batch);
  kernel<<<grid, kWarps * 32, bytes, stream>>>(out, static_cast<__nv_bfloat16*>(out16), lse, q, k, v, s);
  LIVS_CUDA_CHECK_LAUNCH();
}

}  // namespace

bool attention_tc_enabled() {
  static const bool enabled = enabled_unless_zero("LIVSEARCH_ATTENTION_TC");
  return enabled;
}

bool attention_tc_supported(const AttentionShape& s, std::initializer_list<const void*> pointers) {
  if (!attention_tc_enabled()) return false;
  if (s.head_dim != 16 && s.head_dim != 32 && s.head_dim != 64 && s.head_dim != 128) return false;
  if (!(s.scale > 0.0f)) return false;         // the online softmax keeps raw-score maxima
  if (s.dv16_stride() % 8 != 0) return false;  // dv16's rows keep the alignment of its base
  for (const void* p : pointers)
    if (reinterpret_cast<std::uintptr_t>(p) % 16 != 0) return false;
  return true;
}

void attention_tc_forward(cudaStream_t stream, float* out, void* out16, float* lse, const float* q,
                          const float* k, const float* v, const AttentionShape& s) {
  if (s.batch <= 0 || s.seq <= 0) return;
  // Chosen by timing variants on an H100 at B 16, T 1024, d 512 (docs/architecture.md):
  // launch_forward<head_dim, warps, m-tiles per warp, min blocks per SM, staging>.
  switch (s.head_dim) {
    case 16:
      return launch_forward<16, 8, 1, 2, Staging::async_copy>(stream, out, out16, lse, q, k, v, s);
    case 32:
      return launch_forward<32, 8, 1, 2, Staging::async_copy>(stream, out, out16, lse, q, k, v, s);
    case 64:
      return launch_forward<64, 8, 1, 1, Staging::registers>(stream, out, out16, lse, q, k, v, s);
    case 128:
      return launch_forward<128, 4, 1, 1, Staging::direct>(stream, out, out16, lse, q, k, v, s);
    default:
      throw std::invalid_argument("tensor-core attention: head_dim " + std::to_string(s.head_dim) +
                                  " is not 16, 32, 64 or 128");
  }
}

}  // namespace livs::evaluator::cuda
