// The chunked delta rule's forward: prepare, the scan over chunks, the
// outputs (deltanet_chunked.cuh has the equations).
#include <cuda_runtime.h>

#include "common/environment_switch.hpp"
#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/deltanet_chunked.cuh"
#include "evaluator/cuda/device_math.cuh"
#include "evaluator/cuda/grid_dependency.cuh"
#include "evaluator/cuda/kernels.hpp"

namespace livs::evaluator::cuda {

namespace {

using namespace deltanet_chunked;

// Forward 1, a block per (sequence, head, chunk): A, then U and Wk by
// solving with [beta o V | beta gamma o K].
__global__ void __launch_bounds__(kThreads)
    prepare_kernel(float* checkpoints, const float* k, const float* v, const float* log_alpha,
                   const float* beta, Geometry G) {
  await_prior_grids();
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
  await_prior_grids();
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
  await_prior_grids();
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

std::size_t prepare_bytes(int n) { return floats_bytes(3 * std::size_t(kC) * (n + 1) + kC * kCC + 2 * kC); }
std::size_t states_bytes(int n) {
  return floats_bytes(std::size_t(n) * kSlabLd + kC * kSlabLd + 2 * kC * (n + 1) + kC);
}
std::size_t output_bytes(int n) {
  return floats_bytes(2 * std::size_t(kC) * (n + 1) + kC * kCC + std::size_t(n) * kSlabLd + kC * kSlabLd +
                      kC);
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

}  // namespace livs::evaluator::cuda
