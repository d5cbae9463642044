// Mamba-2's SSD chunk kernels on the tensor cores: the same products as
// ssd.cu's fp32 kernels (the equations are written there), as bf16
// mma.sync m16n8k16 tiles with fp32 accumulation. One block of eight warps
// per (sequence, chunk, head); warps w and w + 4 own rows 16w..16w+15 of the
// chunk's 64 steps and split the columns of each product. Each block copies its chunk's x, B, C (and dy, the
// entering state and the end gradient in backward) into bf16 shared tiles, widths rounded up to 16 with
// zeros, and every product reads its operands there through ldmatrix in the orientation it needs
// (mma_tiles.cuh):
//   forward   S = C B^T, M = S o L (L: the decays, lower triangle), y = M x + e^cum C H0^T + D x;
//   states    end = (w o x)^T B, w_j = e^(cum_last - cum_j) dt_j;  adjoint: G = (e^cum o dy)^T C;
//   backward  S = C B^T and X = dy x^T (the warp's rows, kept in registers);
//             dC = e^cum dy H0 + (E o dt o X) B;  dB = dt o ((E o X)^T C + e^(cum_last - cum) x G);
//             R = (E o S)^T dy + e^(cum_last - cum) B G^T, dx += D dy + dt R.
// E o S and E o X are needed transposed, so they go through shared memory; the
// rest stays in registers (an accumulator of 16 columns is the A fragment of
// the next product over those columns). The decays' gradient is summed in the
// closed form of ssd.cu (T1 in fp32 shared memory, a row prefix and a column
// suffix pass). Every operand after staging is read from the bf16 tiles (the
// dot products dy . x, <G, H0>, the D terms too): with four warps a block,
// each global read in the epilogues was latency the SM could not hide. No
// atomics: the same bits on every run.
#include <cuda_bf16.h>

#include <cstddef>

#include "common/environment_switch.hpp"
#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/grid_dependency.cuh"
#include "evaluator/cuda/mma_tiles.cuh"
#include "evaluator/cuda/ssd_tc.cuh"

namespace livs::evaluator::cuda::ssd {

namespace {

using namespace tc;  // bf16, SharedTile, carve, stage, tile_bytes, padded16

// Each 16 steps of the chunk (a row block) have two warps, which split the
// columns of every product after the first: four warps a block left most of
// each SM's time waiting on memory (two blocks fit an SM's shared memory).
constexpr int kRowBlocks = kQ / tc::kMmaRows;
constexpr int kWarps = 2 * kRowBlocks;
constexpr int kThreads = 32 * kWarps;
constexpr int kTiles = kQ / 8;  // n-tiles across the chunk's steps
constexpr int kMaxWidth = 128;  // head_dim and d_state on this path
static_assert(kQ % tc::kMmaRows == 0, "whole m-tiles per chunk");

// out[p][n] = sum_j w_j U_j[p] V_j[n] over the chunk's steps j: the end
// states (U = x, V = B, w_j = e^(cum_last - cum_j) dt_j) or the adjoints
// (U = dy, V = C, w_j = e^(cum_j)); totals[chunk] = cum_last.
__global__ void __launch_bounds__(kThreads)
    chunk_outer_kernel(float* out, float* totals, const float* u, int64_t u_stride, const float* v,
                       const float* dt, const float* a_log, Dims d, bool adjoint) {
  await_prior_grids();
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  __shared__ float cum[kQ], dtv[kQ], w[kQ];
  const Chunk k = load_chunk(cum, dtv, dt, a_log, d);
  const int P16 = padded16(d.P), N16 = padded16(d.N);
  const float last = cum[k.len - 1];
  if (threadIdx.x < kQ) {
    const int j = int(threadIdx.x);
    w[j] = j < k.len ? (adjoint ? expf(cum[j]) : expf(last - cum[j]) * dtv[j]) : 0.0f;
  }
  __syncthreads();
  bf16* next = reinterpret_cast<bf16*>(shared_bytes);
  const SharedTile U = carve(next, kQ, P16), V = carve(next, kQ, N16);
  const int64_t row0 = k.b * d.T + k.t0, chunk = (k.b * d.chunks + k.c) * d.H + k.h;
  stage(U, kQ, P16, u + row0 * u_stride + k.h * d.P, u_stride, k.len, d.P, w);
  stage(V, kQ, N16, v + row0 * d.W, d.W, k.len, d.N);
  __syncthreads();
  tc::store_transposed_product(out + chunk * d.PN(), d.N, U, V, kQ, int(d.P), int(d.N));
  if (threadIdx.x == 0) totals[chunk] = last;
}

// The outputs of one chunk and head.
__global__ void __launch_bounds__(kThreads)
    chunk_output_kernel(float* y, const float* checkpoints, const float* xbc, const float* dt,
                        const float* a_log, const float* D, Dims d) {
  await_prior_grids();
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  __shared__ float cum[kQ], dtv[kQ];
  const Chunk k = load_chunk(cum, dtv, dt, a_log, d);
  const int P16 = padded16(d.P), N16 = padded16(d.N);
  bf16* next = reinterpret_cast<bf16*>(shared_bytes);
  const SharedTile X = carve(next, kQ, P16), Bt = carve(next, kQ, N16), C = carve(next, kQ, N16),
                   H0 = carve(next, P16, N16);
  const int64_t row0 = k.b * d.T + k.t0, chunk = (k.b * d.chunks + k.c) * d.H + k.h;
  const float* rows = xbc + row0 * d.W;
  stage(X, kQ, P16, rows + k.h * d.P, d.W, k.len, d.P);
  stage(Bt, kQ, N16, rows + d.I, d.W, k.len, d.N);
  stage(C, kQ, N16, rows + d.I + d.N, d.W, k.len, d.N);
  stage(H0, P16, N16, checkpoints + chunk * d.PN(), d.N, int(d.P), d.N);
  __syncthreads();
  const int warp = int(threadIdx.x) / 32 % kRowBlocks, half = int(threadIdx.x) / 32 / kRowBlocks,
            lane = int(threadIdx.x) % 32, r0 = warp * tc::kMmaRows;
  auto C_rows = [&](auto& a, int n0) { tc::load_a(a, C, r0, n0, lane); };

  // M = C B^T masked by the decays, the warp's rows; column blocks past the diagonal block stay 0.
  float m[kTiles][4] = {};
  tc::lower_products<kRowBlocks>(m, C, Bt, N16, warp, lane);
#pragma unroll
  for (int tile = 0; tile < kTiles; ++tile)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int i = r0 + tc::fragment_row(lane, e), j = tc::fragment_col(lane, tile, e);
      m[tile][e] = j <= i && i < k.len ? m[tile][e] * expf(cum[i] - cum[j]) * dtv[j] : 0.0f;
    }

  const float dh = D[k.h];
  const bool paired = d.P % 2 == 0 && d.I % 2 == 0 && reinterpret_cast<uintptr_t>(y) % 8 == 0;
  for (int p0 = 16 * half; p0 < P16; p0 += 32) {
    float inside[2][4] = {}, entering[2][4] = {};
    tc::lower_times<kRowBlocks>(inside, m, X, p0, warp, lane);
    tc::mma_pair(entering[0], entering[1], 0, N16, C_rows,
                 [&](auto& b, int n0) { tc::load_b_transposed(b, H0, n0, p0, lane); });
    tc::for_each_pair_at<2>(lane, [&](int r, int c, int tile, int e) {
      const int i = r0 + r, p = p0 + c;
      if (i >= k.len || p >= d.P) return;
      const float decay = expf(cum[i]);
      auto out = [&](int f) {  // past P: X's padding, and entering and inside are 0 there too
        return fmaf(dh, __bfloat162float(X(i, p + f)),
                    fmaf(decay, entering[tile][e + f], inside[tile][e + f]));
      };
      tc::store2(y + (row0 + i) * d.I + k.h * d.P + p, out(0), out(1), paired, p + 1 < d.P);
    });
  }
}

// The sums over the 4 lanes holding a row of the warp's C fragments, into
// out[r0 + row] (rows g and g + 8).
__device__ void store_row_sums(float* out, const float (&part)[2], int r0, int lane) {
  for (int half = 0; half < 2; ++half) {
    const float v = tc::row_sum(part[half]);
    if ((lane & 3) == 0) out[r0 + (lane >> 2) + 8 * half] = v;
  }
}

__global__ void __launch_bounds__(kThreads)
    chunk_backward_kernel(float* dxbc, float* ddt, float* bc_partials, float* param_partials, const float* dy,
                          const float* checkpoints, const float* Gend_all, const float* xbc, const float* dt,
                          const float* a_log, const float* D, Dims d) {
  await_prior_grids();
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  __shared__ float cum[kQ], dtv[kQ], dcum[kQ], t2[kQ], t4[kQ], in_sum[kQ], d_sum[kQ];
  __shared__ float halves[4][2][kQ];  // t2, t4, in_sum, d_sum from each half's columns
  __shared__ float T1[kQ][kQ + 1];    // T1(i, j) = X S E dt_j, then its row prefix sums
  __shared__ float t3_parts[kWarps];
  const Chunk k = load_chunk(cum, dtv, dt, a_log, d);
  const int P16 = padded16(d.P), N16 = padded16(d.N);
  const int64_t row0 = k.b * d.T + k.t0, chunk = (k.b * d.chunks + k.c) * d.H + k.h;
  const float last = cum[k.len - 1], dh = D[k.h];
  const float* Hin = checkpoints + chunk * d.PN();
  const float* Gend = Gend_all + chunk * d.PN();
  bf16* next = reinterpret_cast<bf16*>(shared_bytes);
  const SharedTile X = carve(next, kQ, P16), dY = carve(next, kQ, P16), Bt = carve(next, kQ, N16),
                   C = carve(next, kQ, N16), H0 = carve(next, P16, N16), G = carve(next, P16, N16),
                   ES = carve(next, kQ, kQ), EX = carve(next, kQ, kQ);
  const float* rows = xbc + row0 * d.W;
  const float* dy_rows = dy + row0 * d.I + k.h * d.P;
  stage(X, kQ, P16, rows + k.h * d.P, d.W, k.len, d.P);
  stage(dY, kQ, P16, dy_rows, d.I, k.len, d.P);
  stage(Bt, kQ, N16, rows + d.I, d.W, k.len, d.N);
  stage(C, kQ, N16, rows + d.I + d.N, d.W, k.len, d.N);
  stage(H0, P16, N16, Hin, d.N, int(d.P), d.N);
  stage(G, P16, N16, Gend, d.N, int(d.P), d.N);
  __syncthreads();
  const int warp = int(threadIdx.x) / 32 % kRowBlocks, half = int(threadIdx.x) / 32 / kRowBlocks,
            lane = int(threadIdx.x) % 32, r0 = warp * tc::kMmaRows;

  // S = C B^T and X = dy x^T on the warp's rows i (column blocks j <= i's
  // block), by both warps of the row block (the tensor cores are idle).
  float s[kTiles][4] = {}, xm[kTiles][4] = {};
  tc::lower_products<kRowBlocks>(s, C, Bt, N16, warp, lane);
  tc::lower_products<kRowBlocks>(xm, dY, X, P16, warp, lane);
  // E o S and E o X to shared memory (read transposed below), T1 for the decays'
  // gradient; xm becomes E o dt o X, the left operand of dC.
  tc::for_each_pair_at<kTiles>(lane, [&](int r, int j, int tile, int e) {
    const int i = r0 + r;
    float es[2], exs[2];
#pragma unroll
    for (int f = 0; f < 2; ++f) {
      const float E = j + f <= i && i < k.len ? expf(cum[i] - cum[j + f]) : 0.0f, ex = E * xm[tile][e + f];
      es[f] = E * s[tile][e + f];
      exs[f] = ex;
      if (half == 0) T1[i][j + f] = ex * s[tile][e + f] * dtv[j + f];
      xm[tile][e + f] = ex * dtv[j + f];
    }
    if (half == 0) {
      tc::store_pair(ES, i, j, es[0], es[1]);
      tc::store_pair(EX, i, j, exs[0], exs[1]);
    }
  });
  __syncthreads();
  // The epilogues write two adjacent columns at once where the rows allow.
  const bool bc_paired = d.N % 2 == 0 && reinterpret_cast<uintptr_t>(bc_partials) % 8 == 0,
             dx_paired = d.P % 2 == 0 && d.W % 2 == 0 && reinterpret_cast<uintptr_t>(dxbc) % 8 == 0;

  float part[2] = {0.0f, 0.0f};  // per row of the warp: rows g and g + 8
  // dC = e^cum (dy H0) + (E o dt o X) B on rows i; T2's dot product (dy H0) . C.
  for (int n0 = 16 * half; n0 < N16; n0 += 32) {
    float hc[2][4] = {}, dc[2][4] = {};
    tc::mma_pair(
        hc[0], hc[1], 0, P16, [&](auto& a, int p0) { tc::load_a(a, dY, r0, p0, lane); },
        [&](auto& b, int p0) { tc::load_b(b, H0, p0, n0, lane); });
    tc::lower_times<kRowBlocks>(dc, xm, Bt, n0, warp, lane);
    tc::for_each_pair_at<2>(lane, [&](int r, int c, int tile, int e) {
      const int i = r0 + r, n = n0 + c;
      if (i >= k.len || n >= d.N) return;
      const float decay = expf(cum[i]);
      float v[2];
#pragma unroll
      for (int f = 0; f < 2; ++f) {  // past N: C's padding, hc and dc 0
        v[f] = fmaf(decay, hc[tile][e + f], dc[tile][e + f]);
        part[e >> 1] = fmaf(hc[tile][e + f], __bfloat162float(C(i, n + f)), part[e >> 1]);
      }
      tc::store2(bc_partials + ((row0 + i) * d.H + k.h) * 2 * d.N + d.N + n, v[0], v[1], bc_paired,
                 n + 1 < d.N);
    });
  }
  store_row_sums(halves[0][half], part, r0, lane);

  // dB = dt o ((E o X)^T C + e^(cum_last - cum) x G) on rows j; T4's dot product (x G) . B.
  part[0] = part[1] = 0.0f;
  for (int n0 = 16 * half; n0 < N16; n0 += 32) {
    float cb[2][4] = {}, xg[2][4] = {};
    tc::lower_transposed_times<kRowBlocks>(cb, EX, C, n0, warp, lane);
    tc::mma_pair(
        xg[0], xg[1], 0, P16, [&](auto& a, int p0) { tc::load_a(a, X, r0, p0, lane); },
        [&](auto& b, int p0) { tc::load_b(b, G, p0, n0, lane); });
    tc::for_each_pair_at<2>(lane, [&](int r, int c, int tile, int e) {
      const int j = r0 + r, n = n0 + c;
      if (j >= k.len || n >= d.N) return;
      const float decay = expf(last - cum[j]);
      float v[2];
#pragma unroll
      for (int f = 0; f < 2; ++f) {  // past N: B's padding, xg and cb 0
        v[f] = dtv[j] * fmaf(decay, xg[tile][e + f], cb[tile][e + f]);
        part[e >> 1] = fmaf(xg[tile][e + f], __bfloat162float(Bt(j, n + f)), part[e >> 1]);
      }
      tc::store2(bc_partials + ((row0 + j) * d.H + k.h) * 2 * d.N + n, v[0], v[1], bc_paired, n + 1 < d.N);
    });
  }
  store_row_sums(halves[1][half], part, r0, lane);

  // R = (E o S)^T dy + e^(cum_last - cum) B G^T on rows j; dx += D dy + dt R; x . R and dy . x.
  part[0] = part[1] = 0.0f;
  float dyx[2] = {0.0f, 0.0f};
  for (int p0 = 16 * half; p0 < P16; p0 += 32) {
    float sd[2][4] = {}, bg[2][4] = {};
    tc::lower_transposed_times<kRowBlocks>(sd, ES, dY, p0, warp, lane);
    tc::mma_pair(
        bg[0], bg[1], 0, N16, [&](auto& a, int n0) { tc::load_a(a, Bt, r0, n0, lane); },
        [&](auto& b, int n0) { tc::load_b_transposed(b, G, n0, p0, lane); });
    tc::for_each_pair_at<2>(lane, [&](int rr, int c, int tile, int e) {
      const int j = r0 + rr, p = p0 + c;
      if (j >= k.len || p >= d.P) return;
      const float decay = expf(last - cum[j]);
      float v[2];
#pragma unroll
      for (int f = 0; f < 2; ++f) {  // past P: dy's and x's padding, sd and bg 0
        const float r = fmaf(decay, bg[tile][e + f], sd[tile][e + f]), g = __bfloat162float(dY(j, p + f)),
                    x = __bfloat162float(X(j, p + f));
        v[f] = fmaf(dh, g, dtv[j] * r);
        part[e >> 1] = fmaf(x, r, part[e >> 1]);
        dyx[e >> 1] = fmaf(g, x, dyx[e >> 1]);
      }
      tc::store2(dxbc + (row0 + j) * d.W + k.h * d.P + p, v[0], v[1], dx_paired, p + 1 < d.P);
    });
  }
  store_row_sums(halves[2][half], part, r0, lane);
  store_row_sums(halves[3][half], dyx, r0, lane);

  // T3 = <Gend, H0>; T1's row prefix sums.
  float t3 = 0.0f;
  for (int e = threadIdx.x; e < P16 * N16; e += kThreads) {
    const int p = e / N16, n = e % N16;
    t3 = fmaf(__bfloat162float(G(p, n)), __bfloat162float(H0(p, n)), t3);
  }
  for (int offset = 16; offset > 0; offset /= 2) t3 += __shfl_xor_sync(0xffffffffu, t3, offset);
  if (lane == 0) t3_parts[threadIdx.x / 32] = t3;
  if (threadIdx.x < kQ) {
    const int t = int(threadIdx.x);
    float before = 0.0f;  // T1[t][m] becomes sum_{j < m} T1(t, j)
    for (int m = 0; m < kQ; ++m) {
      const float here = T1[t][m];
      T1[t][m] = before;
      before += here;
    }
  }
  __syncthreads();
  if (threadIdx.x < kQ) {  // sum_{i >= m, j < m} T1(i, j); T2 and T4 get their decays
    const int m = int(threadIdx.x);
    double sum = 0.0;
    for (int i = m; i < k.len; ++i) sum += T1[i][m];
    dcum[m] = float(sum);
    t2[m] = m < k.len ? expf(cum[m]) * (halves[0][0][m] + halves[0][1][m]) : 0.0f;
    t4[m] = m < k.len ? expf(last - cum[m]) * dtv[m] * (halves[1][0][m] + halves[1][1][m]) : 0.0f;
    in_sum[m] = halves[2][0][m] + halves[2][1][m];
    d_sum[m] = halves[3][0][m] + halves[3][1][m];
  }
  __syncthreads();
  if (threadIdx.x < 32) {
    double t3_sum = 0.0;
    for (int w = 0; w < kWarps; ++w) t3_sum += t3_parts[w];
    chunk_decay_gradient(dcum, t2, t4, d_sum, dtv, t3_sum * exp(double(last)), k.len,
                         param_partials + 2 * chunk);
  }
  __syncthreads();
  if (int(threadIdx.x) < k.len)
    ddt[(row0 + threadIdx.x) * d.H + k.h] = fmaf(k.A, dcum[threadIdx.x], in_sum[threadIdx.x]);
}

dim3 chunk_grid(const Dims& d) { return dim3(unsigned(d.batch * d.chunks), unsigned(d.H)); }

void launch_outer(cudaStream_t stream, float* out, float* totals, const float* u, int64_t u_stride,
                  const float* v, const float* dt, const float* a_log, const Dims& d, bool adjoint) {
  const std::size_t bytes = tile_bytes(kQ, padded16(d.P)) + tile_bytes(kQ, padded16(d.N));
  opt_in_dynamic_shared(chunk_outer_kernel, bytes);
  chunk_outer_kernel<<<chunk_grid(d), kThreads, bytes, stream>>>(out, totals, u, u_stride, v, dt, a_log, d,
                                                                 adjoint);
  LIVS_CUDA_CHECK_LAUNCH();
}

}  // namespace

// LIVSEARCH_SSD_TENSOR_CORES=0 keeps a bf16 backend on the fp32 kernels (for comparison).
bool tensor_cores_fit(const SsdShape& s) {
  static const bool enabled = enabled_unless_zero("LIVSEARCH_SSD_TENSOR_CORES");
  return enabled && s.head_dim <= kMaxWidth && s.state <= kMaxWidth;
}

void tc_chunk_states(cudaStream_t stream, float* ends, float* totals, const float* xbc, const float* dt,
                     const float* a_log, const Dims& d) {
  launch_outer(stream, ends, totals, xbc, d.W, xbc + d.I, dt, a_log, d, false);
}

void tc_chunk_adjoints(cudaStream_t stream, float* G, float* totals, const float* dy, const float* xbc,
                       const float* dt, const float* a_log, const Dims& d) {
  launch_outer(stream, G, totals, dy, d.I, xbc + d.I + d.N, dt, a_log, d, true);
}

void tc_chunk_outputs(cudaStream_t stream, float* y, const float* checkpoints, const float* xbc,
                      const float* dt, const float* a_log, const float* D, const Dims& d) {
  const int P16 = padded16(d.P), N16 = padded16(d.N);
  const std::size_t bytes = tile_bytes(kQ, P16) + 2 * tile_bytes(kQ, N16) + tile_bytes(P16, N16);
  opt_in_dynamic_shared(chunk_output_kernel, bytes);
  chunk_output_kernel<<<chunk_grid(d), kThreads, bytes, stream>>>(y, checkpoints, xbc, dt, a_log, D, d);
  LIVS_CUDA_CHECK_LAUNCH();
}

void tc_chunk_backward(cudaStream_t stream, float* dxbc, float* ddt, float* bc_partials,
                       float* param_partials, const float* dy, const float* checkpoints, const float* Gend,
                       const float* xbc, const float* dt, const float* a_log, const float* D, const Dims& d) {
  const int P16 = padded16(d.P), N16 = padded16(d.N);
  const std::size_t bytes =
      2 * tile_bytes(kQ, P16) + 2 * tile_bytes(kQ, N16) + 2 * tile_bytes(P16, N16) + 2 * tile_bytes(kQ, kQ);
  opt_in_dynamic_shared(chunk_backward_kernel, bytes);
  chunk_backward_kernel<<<chunk_grid(d), kThreads, bytes, stream>>>(
      dxbc, ddt, bc_partials, param_partials, dy, checkpoints, Gend, xbc, dt, a_log, D, d);
  LIVS_CUDA_CHECK_LAUNCH();
}

}  // namespace livs::evaluator::cuda::ssd
