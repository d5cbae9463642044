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
// T is never formed: U and Wk come from forward substitution, one column per
// thread in registers. Forward: prepare (A, U, Wk per chunk) -> states (the
// scan, over slabs of kSlab columns of S) -> output (per chunk). The backward
// (derived by hand, checked against autograd of the recurrence in float64 to
// 1e-14 before it was written here):
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

#include <algorithm>
#include <cstdint>

#include "common/environment_switch.hpp"
#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/device_math.cuh"
#include "evaluator/cuda/kernels.hpp"

namespace livs::evaluator::cuda {

namespace {

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
__device__ ChunkAt chunk_at(int64_t bh, int64_t c, const Geometry& G) {
  const int64_t t0 = c * kC;
  return {bh / G.H, bh % G.H, bh, c, t0, int(min(int64_t(kC), G.T - t0))};
}

// sum_t a[t sa] b[t sb] over t < count, in four partial sums: one chain of
// dependent fmas would wait on every shared-memory load, and these kernels
// run few warps an SM (their tiles are large).
__device__ float strided_dot(const float* a, int sa, const float* b, int sb, int count) {
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  int t = 0;
  for (; t + 4 <= count; t += 4)
#pragma unroll
    for (int u = 0; u < 4; ++u) acc[u] = fmaf(a[(t + u) * sa], b[(t + u) * sb], acc[u]);
  for (; t < count; ++t) acc[0] = fmaf(a[t * sa], b[t * sb], acc[0]);
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}
__device__ float dot(const float* a, const float* b, int n) { return strided_dot(a, 1, b, 1, n); }

// A chunk's rows of q, k, v or dO into a [kC, ld] tile, zero past the sequence.
__device__ void load_rows(float* tile, int ld, const float* src, const Geometry& G, const ChunkAt& at) {
  for (int e = threadIdx.x; e < kC * G.n; e += blockDim.x) {
    const int r = e / G.n, i = e % G.n;
    tile[r * ld + i] = r < at.len ? src[G.vec(at.b, at.t0 + r, at.h) + i] : 0.0f;
  }
}
// Columns [j0, j0 + kSlab) of a chunk's rows (zero past the sequence and past n).
__device__ void load_row_slab(float* tile, const float* src, int j0, const Geometry& G, const ChunkAt& at) {
  for (int e = threadIdx.x; e < kC * kSlab; e += blockDim.x) {
    const int r = e / kSlab, j = e % kSlab;
    tile[r * kSlabLd + j] = r < at.len && j0 + j < G.n ? src[G.vec(at.b, at.t0 + r, at.h) + j0 + j] : 0.0f;
  }
}
// A region's [kC, n] rows (already zero past the sequence) into a [kC, ld] tile.
__device__ void load_region(float* tile, int ld, const float* src, int n) {
  for (int e = threadIdx.x; e < kC * n; e += blockDim.x) tile[(e / n) * ld + e % n] = src[e];
}

// g[r]: the log decays summed from the chunk's start through step r (the
// last step's value past the sequence), beta[r] (0 past it) when asked for.
// Ends with the block synchronised.
__device__ void load_decays(float* g, float* beta_rows, const float* log_alpha, const float* beta,
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
__device__ void causal_scores(float* P, const float* Q, const float* K, int ld, const float* g, int n) {
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
__device__ void solve_unit_triangular(float* X, float* Y, int ld, int n, const float* A) {
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

// Forward 1, a block per (sequence, head, chunk): A, then U and Wk by
// solving with [beta o V | beta gamma o K].
__global__ void __launch_bounds__(kThreads)
    prepare_kernel(float* checkpoints, const float* k, const float* v, const float* log_alpha,
                   const float* beta, Geometry G) {
  extern __shared__ float shared[];
  const int n = G.n, ld = n + 1;
  float* K = shared;          // [kC, ld]
  float* Vb = K + kC * ld;    // [kC, ld]: beta o V, then U
  float* Kb = Vb + kC * ld;   // [kC, ld]: beta gamma o K, then Wk
  float* A = Kb + kC * ld;    // [kC, kCC]: beta_r e^(g_r - g_s) k_r.k_s on s < r
  float* g = A + kC * kCC;    // [kC]
  float* beta_rows = g + kC;  // [kC]
  const ChunkAt at = chunk_at(blockIdx.x / G.chunks, blockIdx.x % G.chunks, G);
  load_rows(K, ld, k, G, at);
  load_rows(Vb, ld, v, G, at);
  load_decays(g, beta_rows, log_alpha, beta, G, at);
  for (int e = threadIdx.x; e < kC * kC; e += blockDim.x) {
    const int r = e / kC, s = e % kC;
    A[r * kCC + s] = s < r ? beta_rows[r] * expf(g[r] - g[s]) * dot(K + r * ld, K + s * ld, n) : 0.0f;
  }
  for (int e = threadIdx.x; e < kC * n; e += blockDim.x) {
    const int r = e / n, i = e % n;
    Vb[r * ld + i] *= beta_rows[r];
    Kb[r * ld + i] = beta_rows[r] * expf(g[r]) * K[r * ld + i];
  }
  __syncthreads();
  solve_unit_triangular<false>(Vb, Kb, ld, n, A);
  float* U = checkpoints + G.rows_offset(kU, at.bh, at.c);
  float* Wk = checkpoints + G.rows_offset(kWk, at.bh, at.c);
  for (int e = threadIdx.x; e < kC * n; e += blockDim.x) {
    const int r = e / n, i = e % n;
    U[e] = Vb[r * ld + i];
    Wk[e] = Kb[r * ld + i];
  }
}

// Forward 2, a block per (sequence, head, kSlab columns of S): the scan over
// chunks. Keeps S0 per chunk and W = U - Wk S0; S_end = gamma_L S0 + (e^(g_L - g) o K)^T W.
__global__ void __launch_bounds__(kThreads)
    states_kernel(float* checkpoints, float* state, const float* k, const float* log_alpha, Geometry G) {
  extern __shared__ float shared[];
  const int n = G.n, ld = n + 1, j0 = int(blockIdx.y) * kSlab;
  const int64_t bh = blockIdx.x, nn = int64_t(n) * n;
  float* S = shared;            // [n, kSlabLd]
  float* W = S + n * kSlabLd;   // [kC, kSlabLd]
  float* K = W + kC * kSlabLd;  // [kC, ld]
  float* Wk = K + kC * ld;      // [kC, ld]
  float* g = Wk + kC * ld;      // [kC]
  for (int e = threadIdx.x; e < n * kSlab; e += blockDim.x) {
    const int i = e / kSlab, j = e % kSlab;
    S[i * kSlabLd + j] = state && j0 + j < n ? state[bh * nn + i * n + j0 + j] : 0.0f;
  }
  for (int c = 0; c < G.chunks; ++c) {
    const ChunkAt at = chunk_at(bh, c, G);
    __syncthreads();  // S is complete (and the last chunk's K, Wk and W are read)
    float* S0 = G.state(checkpoints, bh, c);
    for (int e = threadIdx.x; e < n * kSlab; e += blockDim.x) {
      const int i = e / kSlab, j = e % kSlab;
      if (j0 + j < n) S0[i * n + j0 + j] = S[i * kSlabLd + j];
    }
    load_rows(K, ld, k, G, at);
    load_region(Wk, ld, checkpoints + G.rows_offset(kWk, bh, c), n);
    load_decays(g, nullptr, log_alpha, nullptr, G, at);
    const float* U = checkpoints + G.rows_offset(kU, bh, c);
    float* W_out = checkpoints + G.rows_offset(kW, bh, c);
    for (int e = threadIdx.x; e < kC * kSlab; e += blockDim.x) {
      const int r = e / kSlab, j = e % kSlab;
      float w = 0.0f;
      if (j0 + j < n) {
        w = U[r * n + j0 + j] - strided_dot(Wk + r * ld, 1, S + j, kSlabLd, n);
        W_out[r * n + j0 + j] = w;
      }
      W[r * kSlabLd + j] = w;
    }
    const float gL = g[at.len - 1], gammaL = expf(gL);
    for (int e = threadIdx.x; e < kC * n; e += blockDim.x) K[(e / n) * ld + e % n] *= expf(gL - g[e / n]);
    __syncthreads();
    for (int e = threadIdx.x; e < n * kSlab; e += blockDim.x) {
      const int i = e / kSlab, j = e % kSlab;
      S[i * kSlabLd + j] = fmaf(gammaL, S[i * kSlabLd + j], strided_dot(K + i, ld, W + j, kSlabLd, at.len));
    }
  }
  __syncthreads();
  if (state)
    for (int e = threadIdx.x; e < n * kSlab; e += blockDim.x) {
      const int i = e / kSlab, j = e % kSlab;
      if (j0 + j < n) state[bh * nn + i * n + j0 + j] = S[i * kSlabLd + j];
    }
}

// Forward 3, a block per (sequence, head, chunk): O = (gamma o Q) S0 + P W,
// kSlab columns at a time.
__global__ void __launch_bounds__(kThreads)
    output_kernel(float* o, const float* checkpoints, const float* q, const float* k, const float* log_alpha,
                  Geometry G) {
  extern __shared__ float shared[];
  const int n = G.n, ld = n + 1;
  float* Q = shared;             // [kC, ld]
  float* K = Q + kC * ld;        // [kC, ld]
  float* P = K + kC * ld;        // [kC, kCC]
  float* Ss = P + kC * kCC;      // [n, kSlabLd]: S0's slab
  float* Ws = Ss + n * kSlabLd;  // [kC, kSlabLd]: W's slab
  float* g = Ws + kC * kSlabLd;  // [kC]
  const ChunkAt at = chunk_at(blockIdx.x / G.chunks, blockIdx.x % G.chunks, G);
  const float* S0 = G.state(checkpoints, at.bh, at.c);
  const float* W = checkpoints + G.rows_offset(kW, at.bh, at.c);
  load_rows(Q, ld, q, G, at);
  load_rows(K, ld, k, G, at);
  load_decays(g, nullptr, log_alpha, nullptr, G, at);
  causal_scores(P, Q, K, ld, g, n);
  for (int j0 = 0; j0 < n; j0 += kSlab) {
    for (int e = threadIdx.x; e < n * kSlab; e += blockDim.x) {
      const int i = e / kSlab, j = e % kSlab;
      Ss[i * kSlabLd + j] = j0 + j < n ? S0[i * n + j0 + j] : 0.0f;
    }
    for (int e = threadIdx.x; e < kC * kSlab; e += blockDim.x) {
      const int r = e / kSlab, j = e % kSlab;
      Ws[r * kSlabLd + j] = j0 + j < n ? W[r * n + j0 + j] : 0.0f;
    }
    __syncthreads();
    for (int e = threadIdx.x; e < kC * kSlab; e += blockDim.x) {
      const int r = e / kSlab, j = e % kSlab;
      if (r >= at.len || j0 + j >= n) continue;
      const float entering = strided_dot(Q + r * ld, 1, Ss + j, kSlabLd, n),
                  inside = strided_dot(P + r * kCC, 1, Ws + j, kSlabLd, r + 1);
      o[G.vec(at.b, at.t0 + r, at.h) + j0 + j] = fmaf(expf(g[r]), entering, inside);
    }
    __syncthreads();
  }
}

// Backward 1, a block per (sequence, head, kSlab columns of S): the reverse scan.
// Keeps dS_end per chunk and dW = P^T dO + (e^(g_L - g) o K) dS_end;
// dS0 = (gamma o Q)^T dO + gamma_L dS_end - Wk^T dW.
__global__ void __launch_bounds__(kThreads)
    state_gradients_kernel(float* scratch, const float* dout, const float* checkpoints, const float* q,
                           const float* k, const float* log_alpha, Geometry G) {
  extern __shared__ float shared[];
  const int n = G.n, ld = n + 1, j0 = int(blockIdx.y) * kSlab;
  const int64_t bh = blockIdx.x;
  float* Q = shared;              // [kC, ld]
  float* K = Q + kC * ld;         // [kC, ld]
  float* Wk = K + kC * ld;        // [kC, ld]
  float* P = Wk + kC * ld;        // [kC, kCC]
  float* dS = P + kC * kCC;       // [n, kSlabLd]
  float* dW = dS + n * kSlabLd;   // [kC, kSlabLd]
  float* dO = dW + kC * kSlabLd;  // [kC, kSlabLd]
  float* g = dO + kC * kSlabLd;   // [kC]
  for (int e = threadIdx.x; e < n * kSlab; e += blockDim.x) dS[(e / kSlab) * kSlabLd + e % kSlab] = 0.0f;
  for (int c = G.chunks - 1; c >= 0; --c) {
    const ChunkAt at = chunk_at(bh, c, G);
    __syncthreads();  // dS is complete (and the last chunk's tiles are read)
    float* dS_end = G.state(scratch, bh, c);
    for (int e = threadIdx.x; e < n * kSlab; e += blockDim.x) {
      const int i = e / kSlab, j = e % kSlab;
      if (j0 + j < n) dS_end[i * n + j0 + j] = dS[i * kSlabLd + j];
    }
    load_rows(Q, ld, q, G, at);
    load_rows(K, ld, k, G, at);
    load_region(Wk, ld, checkpoints + G.rows_offset(kWk, bh, c), n);
    load_row_slab(dO, dout, j0, G, at);
    load_decays(g, nullptr, log_alpha, nullptr, G, at);
    causal_scores(P, Q, K, ld, g, n);
    __syncthreads();
    const float gL = g[at.len - 1];
    float* dW_out = scratch + G.rows_offset(kdW, bh, c);
    for (int e = threadIdx.x; e < kC * kSlab; e += blockDim.x) {
      const int r = e / kSlab, j = e % kSlab;
      const float from_out = strided_dot(P + r * kCC + r, kCC, dO + r * kSlabLd + j, kSlabLd, kC - r),
                  from_state = strided_dot(K + r * ld, 1, dS + j, kSlabLd, n);
      const float w = fmaf(expf(gL - g[r]), from_state, from_out);
      dW[r * kSlabLd + j] = w;
      if (j0 + j < n) dW_out[r * n + j0 + j] = w;
    }
    for (int e = threadIdx.x; e < kC * n; e += blockDim.x) Q[(e / n) * ld + e % n] *= expf(g[e / n]);
    __syncthreads();
    const float gammaL = expf(gL);
    for (int e = threadIdx.x; e < n * kSlab; e += blockDim.x) {
      const int i = e / kSlab, j = e % kSlab;
      const float from_out = strided_dot(Q + i, ld, dO + j, kSlabLd, at.len),
                  through_w = strided_dot(Wk + i, ld, dW + j, kSlabLd, at.len);
      dS[i * kSlabLd + j] = fmaf(gammaL, dS[i * kSlabLd + j], from_out - through_w);
    }
  }
}

// Backward 2, a block per (sequence, head, chunk): every gradient of the
// chunk's q, k, v, beta and decays from S0, U, Wk, W (checkpoints), dS_end and
// dW (scratch). The pairwise terms of the decays' gradient (dg_r += G_rs,
// dg_s -= G_rs) are gathered in G and summed by rows and columns.
__global__ void __launch_bounds__(kLocalThreads, 1)
    local_gradients_kernel(float* dq, float* dk, float* dv, float* dlog_alpha, float* dbeta,
                           const float* scratch, const float* dout, const float* checkpoints, const float* q,
                           const float* k, const float* v, const float* log_alpha, const float* beta,
                           Geometry G) {
  extern __shared__ float shared[];
  const int n = G.n, ld = n + 1, lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = kLocalThreads / 32;
  float* M = shared;           // [kC, kCC]: e^(g_r - g_s) k_r.k_s (s < r), then H = dA o M
  float* dP = M + kC * kCC;    // [kC, kCC]: e^(g_r - g_s) dO_r.W_s (s <= r)
  float* Gp = dP + kC * kCC;   // [kC, kCC]: the decays' pairwise terms
  float* dKK = Gp + kC * kCC;  // [kC, kCC]: dA_rs beta_r e^(g_r - g_s)
  float* K = dKK + kC * kCC;   // [kC, ld]
  float* X1 = K + kC * ld;     // [kC, ld]: W, then dVb
  float* X2 = X1 + kC * ld;    // [kC, ld]: dKb
  float* U = X2 + kC * ld;     // [kC, ld]: U, then W
  float* Wk = U + kC * ld;     // [kC, ld]
  float* Q = Wk + kC * ld;     // [kC, ld]
  float* dO = Q + kC * ld;     // [kC, ld]
  float* dWt = dO + kC * ld;   // [kC, ld]
  float* Sq = dWt + kC * ld;   // [n, ld]: S0, then dS_end
  float* g = Sq + n * ld;      // [kC]
  float* beta_rows = g + kC;   // [kC]
  float* dg = beta_rows + kC;  // [kC]
  float* D = dg + kC;          // [kC]
  float* reduce = D + kC;      // [32]
  const ChunkAt at = chunk_at(blockIdx.x / G.chunks, blockIdx.x % G.chunks, G);
  const float* S0 = G.state(checkpoints, at.bh, at.c);
  const float* dS_end = G.state(scratch, at.bh, at.c);
  const float* W = checkpoints + G.rows_offset(kW, at.bh, at.c);
  const float* dW = scratch + G.rows_offset(kdW, at.bh, at.c);
  load_rows(K, ld, k, G, at);
  load_region(X1, ld, W, n);
  load_rows(Q, ld, q, G, at);
  load_rows(dO, ld, dout, G, at);
  load_region(dWt, ld, dW, n);
  load_region(U, ld, checkpoints + G.rows_offset(kU, at.bh, at.c), n);
  load_region(Wk, ld, checkpoints + G.rows_offset(kWk, at.bh, at.c), n);
  for (int e = threadIdx.x; e < n * n; e += blockDim.x) Sq[(e / n) * ld + e % n] = S0[e];
  load_decays(g, beta_rows, log_alpha, beta, G, at);

  // The chunk's square matrices.
  for (int e = threadIdx.x; e < kC * kC; e += blockDim.x) {
    const int r = e / kC, s = e % kC;
    float kk = 0.0f, dp = 0.0f, qk = 0.0f;
    if (s <= r) {
      const float decay = expf(g[r] - g[s]);
      if (s < r) kk = decay * dot(K + r * ld, K + s * ld, n);
      if (r < at.len) {
        dp = decay * dot(dO + r * ld, X1 + s * ld, n);
        qk = dot(Q + r * ld, K + s * ld, n);
      }
    }
    M[r * kCC + s] = kk;
    dKK[r * kCC + s] = beta_rows[r] * kk;  // A, until the solves are done
    dP[r * kCC + s] = dp;
    Gp[r * kCC + s] = dp * qk;
  }
  __syncthreads();

  // dVb = (I + A)^-T dW and dKb = -(I + A)^-T (dW S0^T).
  for (int e = threadIdx.x; e < kC * n; e += blockDim.x) {
    const int r = e / n, c = e % n;
    X1[r * ld + c] = dWt[r * ld + c];
    X2[r * ld + c] = -dot(dWt + r * ld, Sq + c * ld, n);
  }
  __syncthreads();
  solve_unit_triangular<true>(X1, X2, ld, n, dKK);

  // dA = -(dVb U^T + dKb Wk^T) on s < r, as H = dA o M (for beta and the
  // decays) and dKK (for k).
  for (int e = threadIdx.x; e < kC * kC; e += blockDim.x) {
    const int r = e / kC, s = e % kC;
    float h = 0.0f, dkk = 0.0f;
    if (s < r) {
      const float dA = -(dot(X1 + r * ld, U + s * ld, n) + dot(X2 + r * ld, Wk + s * ld, n));
      h = dA * M[r * kCC + s];
      dkk = dA * beta_rows[r] * expf(g[r] - g[s]);
      Gp[r * kCC + s] = fmaf(beta_rows[r], h, Gp[r * kCC + s]);
    }
    M[r * kCC + s] = h;
    dKK[r * kCC + s] = dkk;
  }
  __syncthreads();

  // Rows (a warp each, lanes across columns): dq, dv, the A and P parts of
  // dk, dbeta, and dg without the end state's terms.
  for (int r = warp; r < at.len; r += warps) {
    const int64_t row = G.vec(at.b, at.t0 + r, at.h), sc = G.scalar(at.b, at.t0 + r, at.h);
    const float gamma = expf(g[r]), bt = beta_rows[r];
    float q_dq1 = 0.0f, db = 0.0f, dgr = 0.0f;
    for (int c = lane; c < n; c += 32) {
      const float dq1 = gamma * dot(dO + r * ld, Sq + c * ld, n);
      const float dqv = dq1 + strided_dot(dP + r * kCC, 1, K + c, ld, r + 1);
      dq[row + c] += dqv;
      q_dq1 = fmaf(Q[r * ld + c], dq1, q_dq1);
      dv[row + c] += bt * X1[r * ld + c];
      const float kb = X2[r * ld + c] * K[r * ld + c];
      db = fmaf(X1[r * ld + c], v[row + c], db);
      db = fmaf(gamma, kb, db);
      dgr = fmaf(gamma * bt, kb, dgr);
      const float dkv =
          bt * gamma * X2[r * ld + c] + strided_dot(dP + r * kCC + r, kCC, Q + r * ld + c, ld, at.len - r) +
          strided_dot(dKK + r * kCC, 1, K + c, ld, kC) + strided_dot(dKK + r, kCC, K + c, ld, kC);
      dk[row + c] += dkv;
    }
    for (int s = lane; s < kC; s += 32) {
      db += M[r * kCC + s];
      dgr += Gp[r * kCC + s] - Gp[s * kCC + r];
    }
    db = warp_sum(db);
    dgr = warp_sum(dgr) + warp_sum(q_dq1);
    if (lane == 0) {
      dbeta[sc] += db;
      dg[r] = dgr;
    }
  }

  // The end state's terms: dk += e^(g_L - g) o (W dS_end^T), and the decays'
  // gamma_L <dS_end, S0> + sum_s D_s on the last step, -D_s on step s.
  __syncthreads();
  float overlap = 0.0f;
  for (int e = threadIdx.x; e < n * n; e += blockDim.x) {
    const int i = e / n, j = e % n;
    overlap = fmaf(dS_end[e], Sq[i * ld + j], overlap);
    Sq[i * ld + j] = dS_end[e];
  }
  load_region(U, ld, W, n);
  overlap = block_sum(overlap, reduce);  // synchronises: Sq holds dS_end, U holds W
  const float gL = g[at.len - 1];
  for (int r = warp; r < kC; r += warps) {
    float d = 0.0f;
    if (r < at.len) {
      const int64_t row = G.vec(at.b, at.t0 + r, at.h);
      const float decay = expf(gL - g[r]);
      for (int c = lane; c < n; c += 32) {
        const float acc = decay * dot(U + r * ld, Sq + c * ld, n);
        dk[row + c] += acc;
        d = fmaf(K[r * ld + c], acc, d);
      }
    }
    d = warp_sum(d);
    if (lane == 0) D[r] = d;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    float total = expf(gL) * overlap;
    for (int r = 0; r < at.len; ++r) total += D[r];
    dg[at.len - 1] += total;
  }
  __syncthreads();
  // dlog_alpha_t = sum of dg over steps t.. of the chunk (g sums the decays).
  const int t = threadIdx.x;
  if (dlog_alpha && t < at.len) {
    float acc = 0.0f;
    for (int r = t; r < at.len; ++r) acc += dg[r] - D[r];
    dlog_alpha[G.scalar(at.b, at.t0 + t, at.h)] += acc;
  }
}

Geometry geometry(const DeltaRuleShape& s) {
  return {s.batch, s.seq, s.heads, s.head_dim, int(scan_chunks(s.seq))};
}
std::size_t floats_bytes(std::size_t floats) { return floats * sizeof(float); }
std::size_t prepare_bytes(int n) { return floats_bytes(3 * std::size_t(kC) * (n + 1) + kC * kCC + 2 * kC); }
std::size_t states_bytes(int n) {
  return floats_bytes(std::size_t(n) * kSlabLd + kC * kSlabLd + 2 * kC * (n + 1) + kC);
}
std::size_t output_bytes(int n) {
  return floats_bytes(2 * std::size_t(kC) * (n + 1) + kC * kCC + std::size_t(n) * kSlabLd + kC * kSlabLd +
                      kC);
}
std::size_t state_gradients_bytes(int n) {
  return floats_bytes(3 * std::size_t(kC) * (n + 1) + kC * kCC + std::size_t(n) * kSlabLd + 2 * kC * kSlabLd +
                      kC);
}
std::size_t local_gradients_bytes(int n) {
  return floats_bytes(4 * std::size_t(kC) * kCC + 8 * std::size_t(kC) * (n + 1) + std::size_t(n) * (n + 1) +
                      4 * kC + 32);
}
dim3 slab_grid(const DeltaRuleShape& s) {
  return dim3(unsigned(int64_t(s.batch) * s.heads), unsigned((s.head_dim + kSlab - 1) / kSlab));
}
unsigned chunk_blocks(const DeltaRuleShape& s) {
  return unsigned(int64_t(s.batch) * s.heads * scan_chunks(s.seq));
}

}  // namespace

bool delta_rule_chunked_fits(const DeltaRuleShape& s) {
  static const bool enabled = enabled_unless_zero("LIVSEARCH_DELTANET_CHUNKED");
  return enabled && s.head_dim >= 1 && s.head_dim <= kMaxChunkedHeadDim;
}

void delta_rule_chunked_forward(cudaStream_t stream, float* o, float* checkpoints, const float* q,
                                const float* k, const float* v, const float* log_alpha, const float* beta,
                                float* state, const DeltaRuleShape& s) {
  const Geometry G = geometry(s);
  const int n = s.head_dim;
  prepare_kernel<<<chunk_blocks(s), kThreads, opt_in_dynamic_shared(prepare_kernel, prepare_bytes(n)),
                   stream>>>(checkpoints, k, v, log_alpha, beta, G);
  LIVS_CUDA_CHECK_LAUNCH();
  states_kernel<<<slab_grid(s), kThreads, opt_in_dynamic_shared(states_kernel, states_bytes(n)), stream>>>(
      checkpoints, state, k, log_alpha, G);
  LIVS_CUDA_CHECK_LAUNCH();
  output_kernel<<<chunk_blocks(s), kThreads, opt_in_dynamic_shared(output_kernel, output_bytes(n)), stream>>>(
      o, checkpoints, q, k, log_alpha, G);
  LIVS_CUDA_CHECK_LAUNCH();
}

void delta_rule_chunked_backward(cudaStream_t stream, float* dq, float* dk, float* dv, float* dlog_alpha,
                                 float* dbeta, float* scratch, const float* dout, const float* checkpoints,
                                 const float* q, const float* k, const float* v, const float* log_alpha,
                                 const float* beta, const DeltaRuleShape& s) {
  const Geometry G = geometry(s);
  const int n = s.head_dim;
  state_gradients_kernel<<<slab_grid(s), kThreads,
                           opt_in_dynamic_shared(state_gradients_kernel, state_gradients_bytes(n)), stream>>>(
      scratch, dout, checkpoints, q, k, log_alpha, G);
  LIVS_CUDA_CHECK_LAUNCH();
  local_gradients_kernel<<<chunk_blocks(s), kLocalThreads,
                           opt_in_dynamic_shared(local_gradients_kernel, local_gradients_bytes(n)), stream>>>(
      dq, dk, dv, dlog_alpha, dbeta, scratch, dout, checkpoints, q, k, v, log_alpha, beta, G);
  LIVS_CUDA_CHECK_LAUNCH();
}

}  // namespace livs::evaluator::cuda
