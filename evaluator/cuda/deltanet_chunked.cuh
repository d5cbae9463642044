#pragma once
// The (gated) delta rule in its chunked form (WY / UT transform), for
// training: the same recurrence as deltanet.cu,
//   S_t = alpha_t (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T,  o_t = S_t^T q_t,
// computed a chunk of kC steps at a time, with every chunk's work in parallel
// except a scan of one matrix product per chunk. Within a chunk (rows r, s;
// g_r the log decay summed from the chunk's start through r, gamma = e^g,
// S0 the state entering it):
//   A_rs = beta_r e^(g_r - g_s) k_r.k_s (s < r),  T = (I + A)^-1 (unit lower),
//   U = T (beta o V),  Wk = T (beta gamma o K),  W = U - Wk S0  (the w_t of the recurrence),
//   O = (gamma o Q) S0 + P W,  P_rs = e^(g_r - g_s) q_r.k_s (s <= r),
//   S_end = gamma_L S0 + (e^(g_L - g) o K)^T W.
// T is never formed: U and Wk come from a blocked forward substitution
// (solve_unit_triangular). Forward (deltanet_chunked_forward.cu): prepare (A, U, Wk per chunk) -> states (the
// scan, over slabs of kSlab columns of S) -> output (per chunk). The backward
// (derived by hand, checked against autograd of the recurrence in float64 to
// 1e-14 before it was written here; deltanet_chunked_backward.cu):
//   dW = P^T dO + (e^(g_L - g) o K) dS_end,
//   dS0 = (gamma o Q)^T dO + gamma_L dS_end - Wk^T dW      (a reverse scan),
//   dVb = (I + A)^-T dW,  dKb = -(I + A)^-T (dW S0^T)      (back substitution),
//   dA = -(dVb U^T + dKb Wk^T) on s < r,
// then q, k, v, beta and the decays' gradients from those, per chunk:
// state_gradients (the reverse scan) -> local_gradients.
//
// The forward keeps, in `checkpoints`, the state entering every chunk and the
// chunk's U, Wk and W (delta_rule_checkpoint_floats); the backward's scratch
// holds dS_end per chunk and dW. fp32 throughout, no atomics: every output is
// written by one thread, so runs repeat bit for bit. Head sizes up to 64
// (the local gradients keep twelve 64-row tiles in shared memory, 212 KiB at 64); larger heads
// stay on the recurrent kernels. LIVSEARCH_DELTANET_CHUNKED=0 keeps every
// size on the recurrent kernels (for comparison).
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "evaluator/cuda/kernels.hpp"

namespace livs::evaluator::cuda::deltanet_chunked {

constexpr int kC = kScanChunk;  // steps per chunk (64)
constexpr int kCC = kC + 1;     // row stride of the chunk's square tiles (odd: no bank conflicts)
constexpr int kThreads = 256;
// The local gradients run one block an SM (their tiles fill shared memory),
// so they take twice the warps to hide their loads' latency.
constexpr int kLocalThreads = 512;
constexpr int kSlab = 32;  // columns of S per block in the scans (16 doubled the blocks and was slower)
constexpr int kSlabLd = kSlab + 1;
constexpr int kMaxChunkedHeadDim = 64;

struct Geometry {
  int B, T, H, n, chunks;
  __device__ int64_t vec(int64_t b, int64_t t, int64_t h) const { return ((b * T + t) * H + h) * n; }
  __device__ int64_t scalar(int64_t b, int64_t t, int64_t h) const { return (b * T + t) * H + h; }
  __device__ int64_t index(int64_t bh, int64_t c) const { return bh * chunks + c; }
  // A buffer of per-chunk states [B, H, chunks, n, n] followed by regions of
  // per-chunk rows [B, H, chunks, kC, n] (checkpoints: U, Wk, W; scratch: dW).
  __device__ int64_t state_floats() const { return int64_t(B) * H * chunks * n * n; }
  __device__ float* state(float* base, int64_t bh, int64_t c) const { return base + index(bh, c) * n * n; }
  __device__ const float* state(const float* base, int64_t bh, int64_t c) const {
    return base + index(bh, c) * n * n;
  }
  __device__ int64_t rows_offset(int region, int64_t bh, int64_t c) const {
    return state_floats() + (int64_t(region) * B * H * chunks + index(bh, c)) * kC * n;
  }
};
enum Region { kU = 0, kWk = 1, kW = 2, kdW = 0 };

struct ChunkAt {
  int64_t b, h, bh, c, t0;
  int len;  // steps of the chunk inside the sequence (the last one may be short)
};
__device__ inline ChunkAt chunk_at(int64_t bh, int64_t c, const Geometry& G) {
  const int64_t t0 = c * kC;
  return {bh / G.H, bh % G.H, bh, c, t0, int(min(int64_t(kC), G.T - t0))};
}

// sum_t a[t sa] b[t sb] over t < count, in four partial sums: one chain of
// dependent fmas would wait on every shared-memory load, and these kernels
// run few warps an SM (their tiles are large).
__device__ inline float strided_dot(const float* a, int sa, const float* b, int sb, int count) {
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  int t = 0;
  for (; t + 4 <= count; t += 4)
#pragma unroll
    for (int u = 0; u < 4; ++u) acc[u] = fmaf(a[(t + u) * sa], b[(t + u) * sb], acc[u]);
  for (; t < count; ++t) acc[0] = fmaf(a[t * sa], b[t * sb], acc[0]);
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}
__device__ inline float dot(const float* a, const float* b, int n) { return strided_dot(a, 1, b, 1, n); }

// A chunk's rows of q, k, v or dO into a [kC, ld] tile, zero past the sequence.
__device__ inline void load_rows(float* tile, int ld, const float* src, const Geometry& G,
                                 const ChunkAt& at) {
  for (int e = threadIdx.x; e < kC * G.n; e += blockDim.x) {
    const int r = e / G.n, i = e % G.n;
    tile[r * ld + i] = r < at.len ? src[G.vec(at.b, at.t0 + r, at.h) + i] : 0.0f;
  }
}
// Columns [j0, j0 + kSlab) of a chunk's rows (zero past the sequence and past n).
__device__ inline void load_row_slab(float* tile, const float* src, int j0, const Geometry& G,
                                     const ChunkAt& at) {
  for (int e = threadIdx.x; e < kC * kSlab; e += blockDim.x) {
    const int r = e / kSlab, j = e % kSlab;
    tile[r * kSlabLd + j] = r < at.len && j0 + j < G.n ? src[G.vec(at.b, at.t0 + r, at.h) + j0 + j] : 0.0f;
  }
}
// A region's [kC, n] rows (already zero past the sequence) into a [kC, ld] tile.
__device__ inline void load_region(float* tile, int ld, const float* src, int n) {
  for (int e = threadIdx.x; e < kC * n; e += blockDim.x) tile[(e / n) * ld + e % n] = src[e];
}

// g[r]: the log decays summed from the chunk's start through step r (the
// last step's value past the sequence), beta[r] (0 past it) when asked for.
// Ends with the block synchronised.
__device__ inline void load_decays(float* g, float* beta_rows, const float* log_alpha, const float* beta,
                                   const Geometry& G, const ChunkAt& at) {
  const int r = threadIdx.x;
  if (r < kC) {
    const bool in = r < at.len;
    g[r] = in && log_alpha ? log_alpha[G.scalar(at.b, at.t0 + r, at.h)] : 0.0f;
    if (beta_rows) beta_rows[r] = in ? beta[G.scalar(at.b, at.t0 + r, at.h)] : 0.0f;
  }
  __syncthreads();
  if (threadIdx.x == 0)
    for (int s = 1; s < kC; ++s) g[s] += g[s - 1];
  __syncthreads();
}

// P_rs = e^(g_r - g_s) q_r.k_s on s <= r (0 above the diagonal), [kC, kCC].
__device__ inline void causal_scores(float* P, const float* Q, const float* K, int ld, const float* g,
                                     int n) {
  for (int e = threadIdx.x; e < kC * kC; e += blockDim.x) {
    const int r = e / kC, s = e % kC;
    P[r * kCC + s] = s <= r ? expf(g[r] - g[s]) * dot(Q + r * ld, K + s * ld, n) : 0.0f;
  }
}

// The unit triangular solves with A (A_rs on s < r, [kC, kCC]), in place on
// the n columns of two [kC, ld] tiles X and Y, by the whole block, in blocks
// of kDiag rows: a product with the rows already solved (every thread, every
// column), then the block's own kDiag rows down one column per thread. A
// column a thread all the way down made each step wait on the last, with one
// warp or two busy; the longest chain is now kDiag - 1 steps.
constexpr int kDiag = 16;

__device__ __forceinline__ float* column_tile(float* X, float* Y, int c, int n) {
  return c < n ? X + c : Y + c - n;
}

// (I + A) Z = Z (forward substitution), or with kTransposed (I + A)^T Z = Z
// (back substitution, z_r -= sum_{s > r} A_sr z_s).
template <bool kTransposed>
__device__ inline void solve_unit_triangular(float* X, float* Y, int ld, int n, const float* A) {
  for (int block = 0; block < kC / kDiag; ++block) {
    const int r0 = kTransposed ? kC - kDiag * (block + 1) : kDiag * block;
    const int s0 = kTransposed ? r0 + kDiag : 0, s1 = kTransposed ? kC : r0;  // the rows already solved
    for (int e = threadIdx.x; s1 > s0 && e < kDiag * 2 * n; e += blockDim.x) {
      const int r = r0 + e / (2 * n);
      float* z = column_tile(X, Y, e % (2 * n), n);
      z[r * ld] -= kTransposed ? strided_dot(A + s0 * kCC + r, kCC, z + s0 * ld, ld, s1 - s0)
                               : strided_dot(A + r * kCC + s0, 1, z + s0 * ld, ld, s1 - s0);
    }
    __syncthreads();
    for (int c = threadIdx.x; c < 2 * n; c += blockDim.x) {
      float* z = column_tile(X, Y, c, n) + r0 * ld;
      const float* D = A + r0 * kCC + r0;  // the block's own kDiag x kDiag part
      float x[kDiag];
#pragma unroll
      for (int i = 0; i < kDiag; ++i) x[i] = z[i * ld];
      if constexpr (kTransposed) {
#pragma unroll
        for (int i = kDiag - 2; i >= 0; --i)
#pragma unroll
          for (int j = i + 1; j < kDiag; ++j) x[i] = fmaf(-D[j * kCC + i], x[j], x[i]);
      } else {
#pragma unroll
        for (int i = 1; i < kDiag; ++i)
#pragma unroll
          for (int j = 0; j < i; ++j) x[i] = fmaf(-D[i * kCC + j], x[j], x[i]);
      }
#pragma unroll
      for (int i = 0; i < kDiag; ++i) z[i * ld] = x[i];
    }
    __syncthreads();
  }
}

inline Geometry geometry(const DeltaRuleShape& s) {
  return {s.batch, s.seq, s.heads, s.head_dim, int(scan_chunks(s.seq))};
}
inline std::size_t floats_bytes(std::size_t floats) { return floats * sizeof(float); }
inline dim3 slab_grid(const DeltaRuleShape& s) {
  return dim3(unsigned(int64_t(s.batch) * s.heads), unsigned((s.head_dim + kSlab - 1) / kSlab));
}
inline unsigned chunk_blocks(const DeltaRuleShape& s) {
  return unsigned(int64_t(s.batch) * s.heads * scan_chunks(s.seq));
}

}  // namespace livs::evaluator::cuda::deltanet_chunked
