// The chunked delta rule's backward: the reverse scan for dS_end and dW,
// then every local gradient per chunk (deltanet_chunked.cuh has the equations).
#include <cuda_runtime.h>

#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/deltanet_chunked.cuh"
#include "evaluator/cuda/device_math.cuh"
#include "evaluator/cuda/grid_dependency.cuh"
#include "evaluator/cuda/kernels.hpp"

namespace livs::evaluator::cuda {

namespace {

using namespace deltanet_chunked;

// Backward 1, a block per (sequence, head, kSlab columns of S): the reverse scan.
// Keeps dS_end per chunk and dW = P^T dO + (e^(g_L - g) o K) dS_end;
// dS0 = (gamma o Q)^T dO + gamma_L dS_end - Wk^T dW.
__global__ void __launch_bounds__(kThreads)
    state_gradients_kernel(float* scratch, const float* dout, const float* checkpoints, const float* q,
                           const float* k, const float* log_alpha, Geometry G) {
  await_prior_grids();
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
  await_prior_grids();
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

std::size_t state_gradients_bytes(int n) {
  return floats_bytes(3 * std::size_t(kC) * (n + 1) + kC * kCC + std::size_t(n) * kSlabLd + 2 * kC * kSlabLd +
                      kC);
}
std::size_t local_gradients_bytes(int n) {
  return floats_bytes(4 * std::size_t(kC) * kCC + 8 * std::size_t(kC) * (n + 1) + std::size_t(n) * (n + 1) +
                      4 * kC + 32);
}

}  // namespace

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
