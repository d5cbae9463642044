// Tensor-core attention forward, FlashAttention-2 style: one block per
// (64-query tile, head, batch), 4 warps of 16 query rows each. Key/value tiles
// of 64 rows are staged as bf16 in shared memory; S = Q K^T and O += P V run
// as bf16 mma with fp32 accumulators, the online softmax (base 2, scale folded
// in) stays in fp32 registers. Key tiles wholly before a sliding window or
// after the tile's last query are never visited.
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "evaluator/cuda/attention_common.cuh"
#include "evaluator/cuda/attention_tc.cuh"
#include "evaluator/cuda/attention_tc_common.cuh"
#include "evaluator/cuda/cuda_check.hpp"

namespace livs::evaluator::cuda {

namespace {

using namespace tc;

constexpr int kKeys = 64;  // rows of a key/value tile

// kPrefetch: load key/value tile j + 1 into registers while tile j is computed
// (kHd / 2 more registers per thread; used up to head_dim 64, where it took
// the H100 forward at B16 T1024 d512 from 73 to 88 TFLOP/s; at 128 the
// registers run out).
template <int kHd, bool kPrefetch>
__global__ void __launch_bounds__(kThreads)
    attention_tc_forward_kernel(float* out, float* lse, const float* q, const float* k, const float* v,
                                AttentionShape s) {
  constexpr int kS = stride<kHd>();
  extern __shared__ __align__(16) unsigned char smem_bytes[];
  auto* qs = reinterpret_cast<__nv_bfloat16*>(smem_bytes);  // [64][kS]
  __nv_bfloat16* ks = qs + kTileRows * kS;                  // [kKeys][kS]
  __nv_bfloat16* vs = ks + kKeys * kS;                      // [kKeys][kS]

  const int T = s.seq, H = s.heads, KV = s.kv_heads;
  const int b = blockIdx.z, h = blockIdx.y, kvh = h / (H / KV);
  const int i0 = (gridDim.x - 1 - blockIdx.x) * kTileRows;  // the longest tiles start first
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int warp_row = i0 + warp * kRowsPerWarp;  // this warp's first query
  const int row0 = warp_row + g;                  // this lane's rows: row0 and row0 + 8
  const float scale_log2 = s.scale * kLog2e;

  const int64_t q_stride = int64_t(H) * kHd, kv_stride = int64_t(KV) * kHd;
  stage_rows<kHd, kTileRows>(qs, q + (int64_t(b) * T * H + h) * kHd, q_stride, i0, T);
  __syncthreads();
  uint32_t qf[kHd / 16][4];
#pragma unroll
  for (int c = 0; c < kHd / 16; ++c) load_a<kHd>(qf[c], qs, warp * kRowsPerWarp, c * 16, lane);

  float o[kHd / 8][4];
#pragma unroll
  for (int n = 0; n < kHd / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};  // l: this lane's part of the row sum

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
    __syncthreads();  // the previous tile is consumed
    if constexpr (kPrefetch) {
      k_next.store(ks);
      v_next.store(vs);
    } else {
      stage_rows<kHd, kKeys>(ks, k_base, kv_stride, j0, T);
      stage_rows<kHd, kKeys>(vs, v_base, kv_stride, j0, T);
    }
    __syncthreads();
    if constexpr (kPrefetch) {  // the next tile's loads fly while this one is computed
      if (j0 + kKeys <= i_last) {
        k_next.load(k_base, kv_stride, j0 + kKeys, T);
        v_next.load(v_base, kv_stride, j0 + kKeys, T);
      }
    }
    // Warp-uniform: keys wholly after this warp's rows, or wholly before its window.
    if (j0 > warp_row + kRowsPerWarp - 1 || warp_row >= T) continue;
    if (s.window > 0 && warp_row - (j0 + kKeys - 1) >= s.window) continue;

    float sc[kKeys / 8][4];
#pragma unroll
    for (int n = 0; n < kKeys / 8; ++n) sc[n][0] = sc[n][1] = sc[n][2] = sc[n][3] = 0.0f;
#pragma unroll
    for (int c = 0; c < kHd / 16; ++c) {
#pragma unroll
      for (int np = 0; np < kKeys / 16; ++np) {
        uint32_t kf[4];
        load_b_transposed<kHd>(kf, ks, np * 16, c * 16, lane);
        mma(sc[2 * np], qf[c], kf[0], kf[1]);
        mma(sc[2 * np + 1], qf[c], kf[2], kf[3]);
      }
    }
    // Masking only where some pair of this warp's block can be invisible.
    const bool full = j0 + kKeys - 1 <= warp_row && warp_row + kRowsPerWarp <= T &&
                      (s.window <= 0 || warp_row + kRowsPerWarp - 1 - j0 < s.window);
#pragma unroll
    for (int n = 0; n < kKeys / 8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int j = j0 + n * 8 + 2 * t + (e & 1);
        sc[n][e] = (full || visible(row0 + (e / 2) * 8, j, T, s.window)) ? sc[n][e] * scale_log2 : -INFINITY;
      }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float tile_max = -INFINITY;
#pragma unroll
      for (int n = 0; n < kKeys / 8; ++n) tile_max = fmaxf(tile_max, fmaxf(sc[n][2 * r], sc[n][2 * r + 1]));
      const float new_m = fmaxf(m[r], quad_max(tile_max));
      const float base = new_m == -INFINITY ? 0.0f : new_m;  // a row with no key yet stays all zero
      const float alpha = exp2_approx(m[r] - base);
      m[r] = new_m;
      float sum = 0.0f;
#pragma unroll
      for (int n = 0; n < kKeys / 8; ++n) {
        sc[n][2 * r] = exp2_approx(sc[n][2 * r] - base);
        sc[n][2 * r + 1] = exp2_approx(sc[n][2 * r + 1] - base);
        sum += sc[n][2 * r] + sc[n][2 * r + 1];
      }
      l[r] = l[r] * alpha + sum;
#pragma unroll
      for (int n = 0; n < kHd / 8; ++n) {
        o[n][2 * r] *= alpha;
        o[n][2 * r + 1] *= alpha;
      }
    }
#pragma unroll
    for (int kk = 0; kk < kKeys / 16; ++kk) {
      uint32_t pf[4];
      c_to_a(pf, sc, kk);
#pragma unroll
      for (int dp = 0; dp < kHd / 16; ++dp) {
        uint32_t vf[4];
        load_b<kHd>(vf, vs, kk * 16, dp * 16, lane);
        mma(o[2 * dp], pf, vf[0], vf[1]);
        mma(o[2 * dp + 1], pf, vf[2], vf[3]);
      }
    }
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const float total = quad_sum(l[r]);
    const int i = row0 + 8 * r;
    if (i >= T) continue;
    const float inv = 1.0f / total;
    float* orow = out + ((int64_t(b) * T + i) * H + h) * kHd + 2 * t;
#pragma unroll
    for (int n = 0; n < kHd / 8; ++n)
      *reinterpret_cast<float2*>(orow + n * 8) = make_float2(o[n][2 * r] * inv, o[n][2 * r + 1] * inv);
    if (t == 0) lse[(int64_t(b) * H + h) * T + i] = (m[r] + log2f(total)) * kLn2;
  }
}

template <int kHd, bool kPrefetch>
void launch_forward(cudaStream_t stream, float* out, float* lse, const float* q, const float* k,
                    const float* v, const AttentionShape& s) {
  auto kernel = attention_tc_forward_kernel<kHd, kPrefetch>;
  const std::size_t bytes = sizeof(__nv_bfloat16) * (kTileRows + 2 * kKeys) * stride<kHd>();
  allow_shared_memory(kernel, bytes);
  const dim3 grid(unsigned((s.seq + kTileRows - 1) / kTileRows), unsigned(s.heads), unsigned(s.batch));
  kernel<<<grid, kThreads, bytes, stream>>>(out, lse, q, k, v, s);
  LIVS_CUDA_CHECK_LAUNCH();
}

bool environment_says_off(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && std::string(value) == "0";
}

}  // namespace

bool attention_tc_enabled() {
  static const bool enabled = !environment_says_off("LIVSEARCH_ATTENTION_TC");
  return enabled;
}

bool attention_tc_supported(const AttentionShape& s, std::initializer_list<const void*> pointers) {
  if (!attention_tc_enabled()) return false;
  if (s.head_dim != 16 && s.head_dim != 32 && s.head_dim != 64 && s.head_dim != 128) return false;
  for (const void* p : pointers)
    if (reinterpret_cast<std::uintptr_t>(p) % 16 != 0) return false;
  return true;
}

void attention_tc_forward(cudaStream_t stream, float* out, float* lse, const float* q, const float* k,
                          const float* v, const AttentionShape& s) {
  if (s.batch <= 0 || s.seq <= 0) return;
  switch (s.head_dim) {
    case 16:
      return launch_forward<16, true>(stream, out, lse, q, k, v, s);
    case 32:
      return launch_forward<32, true>(stream, out, lse, q, k, v, s);
    case 64:
      return launch_forward<64, true>(stream, out, lse, q, k, v, s);
    case 128:
      return launch_forward<128, false>(stream, out, lse, q, k, v, s);
    default:
      throw std::invalid_argument("tensor-core attention: head_dim " + std::to_string(s.head_dim) +
                                  " is not 16, 32, 64 or 128");
  }
}

}  // namespace livs::evaluator::cuda
