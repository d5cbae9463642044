// Mamba-2's SSD scan in its chunked (state-space duality) form, in fp32.
// Time is cut into chunks of Q = kScanChunk steps; inside a chunk, with
// cum_i the running sum of dt A over the chunk (A < 0, so every exponent
// below is <= 0 and nothing overflows):
//   y_i = sum_{j <= i} (C_i . B_j) e^(cum_i - cum_j) dt_j x_j      (a masked Q x Q matrix product)
//       + e^(cum_i) H_c C_i + D x_i                                (the state entering the chunk)
//   end_c = sum_j e^(cum_last - cum_j) dt_j x_j B_j^T,   H_(c+1) = e^(cum_last) H_c + end_c.
// Forward: (1) per (sequence, chunk, head) block, the chunk's end state and
// total log-decay; (2) one thread per state element carries the states across
// the chunks in order (they land in the checkpoints, which backward reuses);
// (3) per block, the outputs: the Q x Q matrix C B^T masked by the decays,
// times x, plus the entering state's part.
// Backward mirrors it: (1) per block, the gradient each chunk sends to its
// entering state, sum_i e^(cum_i) dy_i C_i^T; (2) a reverse carry turns those
// into the gradient at each chunk's end; (3) per block, dx, dB, dC, ddt and the
// per-block dA and dD from the Q x Q matrices C B^T and dy x^T, the decays'
// gradient through d cum (summed in reverse within the chunk). B and C are
// shared by the heads, so their gradients are written per head and summed
// over heads in order by a last kernel; dA and dD are per-block partials
// summed in order: no atomics, the same bits on every run.
//
// Staging: when a chunk's tiles fit (x, B, C, dy of its steps; the entering
// state H0 and the end gradient Gend: at head_dim 64 and d_state 64 about 100
// KiB for backward), each block first copies them to shared memory, rows
// padded by one float so that a warp reading down a column touches 32 banks,
// and every loop reads them there; larger shapes (d_state in the hundreds)
// read the same tiles from global memory with the same code (Tile). Reading
// x, B, C and the states through L1/L2 in the inner loops made SSD 74-81% of
// a mamba2-hybrid training step on the H200 (ssd_backward 4.1 ms, forward
// 2.0 ms per layer at d 128, T 256, batch 64).
//
// A bf16 backend runs the chunk kernels of ssd_tc.cu instead (the same
// products on the tensor cores) for head_dim and d_state up to 128; these fp32
// kernels serve the exact (fp32) backend and larger shapes.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "common/environment_switch.hpp"
#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/device_math.cuh"
#include "evaluator/cuda/grid_dependency.cuh"
#include "evaluator/cuda/kernels.hpp"
#include "evaluator/cuda/ssd_common.cuh"
#include "evaluator/cuda/ssd_tc.cuh"

namespace livs::evaluator::cuda {

namespace {

using namespace ssd;

constexpr int kBlock = 256;           // threads per (sequence, chunk, head) block
constexpr int kParts = kBlock / kQ;   // threads sharing one step's loop over head_dim
constexpr int kElementThreads = 128;  // threads per block of the element-wise kernels
static_assert(kBlock % kQ == 0, "a block covers whole steps");

// A [rows x cols] tile of one chunk: element (r, c) at p[r * stride + c], in
// shared memory (staged) or in global memory.
struct Tile {
  const float* p;
  int64_t stride;
  __device__ float operator()(int64_t r, int64_t c) const { return p[r * stride + c]; }
};

// At most this much dynamic shared memory per block for the staged tiles: with
// the kernels' static arrays (backward: about 39 KiB) under the 227 KiB a
// Hopper block may use.
constexpr std::size_t kMaxStagedBytes = 160 * 1024;

std::size_t tile_bytes(int64_t rows, int64_t cols) { return std::size_t(rows * (cols + 1)) * sizeof(float); }

// The tile at `src` (row stride `stride`), copied to shared memory at `next`
// when staged (rows past `valid` as zeros; `next` moves past it), else read
// in place. The caller synchronises before reading a staged tile.
__device__ Tile chunk_tile(float*& next, bool staged, const float* src, int64_t stride, int rows, int valid,
                           int64_t cols) {
  if (!staged) return {src, stride};
  float* dst = next;
  const int64_t padded = cols + 1;
  for (int64_t e = threadIdx.x; e < rows * cols; e += blockDim.x) {
    const int64_t r = e / cols, c = e % cols;
    dst[r * padded + c] = r < valid ? src[r * stride + c] : 0.0f;
  }
  next += rows * padded;
  return {dst, padded};
}

unsigned element_blocks(int64_t threads) {
  return unsigned((threads + kElementThreads - 1) / kElementThreads);
}

// Forward pass 1: end_c = sum_j e^(cum_last - cum_j) dt_j x_j B_j^T into the checkpoint slot of chunk c,
// and the chunk's total log-decay.
__global__ void ssd_chunk_state_kernel(float* ends, float* totals, const float* xbc, const float* dt,
                                       const float* a_log, Dims d, bool staged) {
  await_prior_grids();
  extern __shared__ float staging[];
  __shared__ float cum[kQ], dtv[kQ], w[kQ];
  const Chunk k = load_chunk(cum, dtv, dt, a_log, d);
  float* next = staging;
  const float* rows = xbc + (k.b * d.T + k.t0) * d.W;
  const Tile x = chunk_tile(next, staged, rows + k.h * d.P, d.W, kQ, k.len, d.P);
  const Tile B = chunk_tile(next, staged, rows + d.I, d.W, kQ, k.len, d.N);
  const float last = cum[k.len - 1];
  if (threadIdx.x < kQ)
    w[threadIdx.x] = int(threadIdx.x) < k.len ? expf(last - cum[threadIdx.x]) * dtv[threadIdx.x] : 0.0f;
  __syncthreads();
  const int64_t slot = ((k.b * d.chunks + k.c) * d.H + k.h) * d.PN();
  for (int64_t e = threadIdx.x; e < d.PN(); e += blockDim.x) {
    const int64_t p = e / d.N, n = e % d.N;
    float acc = 0.0f;
    for (int j = 0; j < k.len; ++j) acc = fmaf(w[j] * x(j, p), B(j, n), acc);
    ends[slot + e] = acc;
  }
  if (threadIdx.x == 0) totals[(k.b * d.chunks + k.c) * d.H + k.h] = last;
}

// Forward pass 2, one thread per (sequence, head, state element): the end
// states in the checkpoint slots become the states entering each chunk, from
// `state` (or zero); the last state goes back to `state`.
// The carries read kCarryBatch chunks' slots before writing any: one slot
// at a time, each load waited on the store before it (the compiler cannot
// tell them apart), and the scan ran at a tenth of the memory's bandwidth.
constexpr int kCarryBatch = 8;

// carry_c = e^(total_c) carry_{c-1} + slot_c over the chunks in `order`
// (+1 forward, -1 backward); each slot is replaced by the carry entering it.
template <int kOrder>
__device__ float carry_through(float* slots, const float* totals, int64_t first_chunk, int64_t chunks,
                               int64_t slot_stride, int64_t total_stride, float carry) {
  for (int64_t c0 = 0; c0 < chunks; c0 += kCarryBatch) {
    float value[kCarryBatch], decay[kCarryBatch];
#pragma unroll
    for (int u = 0; u < kCarryBatch; ++u) {
      const int64_t c = kOrder > 0 ? c0 + u : chunks - 1 - (c0 + u);
      const bool in = c0 + u < chunks;
      value[u] = in ? slots[c * slot_stride] : 0.0f;
      decay[u] = in ? expf(totals[(first_chunk + c) * total_stride]) : 0.0f;
    }
#pragma unroll
    for (int u = 0; u < kCarryBatch; ++u) {
      if (c0 + u >= chunks) break;
      const int64_t c = kOrder > 0 ? c0 + u : chunks - 1 - (c0 + u);
      slots[c * slot_stride] = carry;
      carry = fmaf(decay[u], carry, value[u]);
    }
  }
  return carry;
}

__global__ void ssd_carry_kernel(float* checkpoints, const float* totals, float* state, Dims d) {
  await_prior_grids();
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= d.batch * d.H * d.PN()) return;
  const int64_t b = idx / (d.H * d.PN()), h = (idx / d.PN()) % d.H, e = idx % d.PN();
  // Chunk c of sequence b, head h: index (b * chunks + c) * H + h.
  const float carry = carry_through<+1>(checkpoints + (b * d.chunks * d.H + h) * d.PN() + e, totals + h,
                                        b * d.chunks, d.chunks, d.H * d.PN(), d.H, state ? state[idx] : 0.0f);
  if (state) state[idx] = carry;
}

// Forward pass 3: the outputs of one chunk and head.
__global__ void ssd_chunk_output_kernel(float* y, const float* checkpoints, const float* xbc, const float* dt,
                                        const float* a_log, const float* D, Dims d, bool staged) {
  await_prior_grids();
  extern __shared__ float staging[];
  __shared__ float cum[kQ], dtv[kQ];
  __shared__ float M[kQ][kQ + 1];  // (C_i . B_j) e^(cum_i - cum_j) dt_j, j <= i
  const Chunk k = load_chunk(cum, dtv, dt, a_log, d);
  float* next = staging;
  const float* rows = xbc + (k.b * d.T + k.t0) * d.W;
  const Tile x = chunk_tile(next, staged, rows + k.h * d.P, d.W, kQ, k.len, d.P);
  const Tile B = chunk_tile(next, staged, rows + d.I, d.W, kQ, k.len, d.N);
  const Tile C = chunk_tile(next, staged, rows + d.I + d.N, d.W, kQ, k.len, d.N);
  const Tile H0 = chunk_tile(next, staged, checkpoints + ((k.b * d.chunks + k.c) * d.H + k.h) * d.PN(), d.N,
                             int(d.P), int(d.P), d.N);
  __syncthreads();
  for (int e = threadIdx.x; e < kQ * kQ; e += blockDim.x) {
    const int i = e / kQ, j = e % kQ;
    float v = 0.0f;
    if (i < k.len && j <= i) {
      float s = 0.0f;
      for (int64_t n = 0; n < d.N; ++n) s = fmaf(C(i, n), B(j, n), s);
      v = s * expf(cum[i] - cum[j]) * dtv[j];
    }
    M[i][j] = v;
  }
  __syncthreads();
  const float dh = D[k.h];
  for (int64_t e = threadIdx.x; e < int64_t(k.len) * d.P; e += blockDim.x) {
    const int i = int(e / d.P);
    const int64_t p = e % d.P, row = k.b * d.T + k.t0 + i;
    float acc = 0.0f;
    for (int j = 0; j <= i; ++j) acc = fmaf(M[i][j], x(j, p), acc);
    float hc = 0.0f;
    for (int64_t n = 0; n < d.N; ++n) hc = fmaf(C(i, n), H0(p, n), hc);
    y[row * d.I + k.h * d.P + p] = fmaf(dh, x(i, p), fmaf(expf(cum[i]), hc, acc));
  }
}

// Decode (no checkpoints): the recurrence itself through `state`, one thread per (sequence, head, channel).
__global__ void ssd_recurrent_kernel(float* y, const float* xbc, const float* dt, const float* a_log,
                                     const float* D, float* state, Dims d) {
  await_prior_grids();
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= d.batch * d.H * d.P) return;
  const int64_t b = idx / (d.H * d.P), h = (idx / d.P) % d.H, p = idx % d.P;
  const float A = -expf(a_log[h]);
  float* H = state + idx * d.N;  // [batch, heads, head_dim, state]
  for (int64_t t = 0; t < d.T; ++t) {
    const int64_t row = b * d.T + t;
    const float* r = xbc + row * d.W;
    const float dl = dt[row * d.H + h], a = expf(dl * A), x = r[h * d.P + p], dx = dl * x;
    float acc = 0.0f;
    for (int64_t n = 0; n < d.N; ++n) {
      const float v = fmaf(a, H[n], dx * r[d.I + n]);
      H[n] = v;
      acc = fmaf(r[d.I + d.N + n], v, acc);
    }
    y[row * d.I + h * d.P + p] = fmaf(D[h], x, acc);
  }
}

// Backward pass 1: what chunk c's outputs send to its entering state, sum_i e^(cum_i) dy_i C_i^T.
__global__ void ssd_chunk_adjoint_kernel(float* G, float* totals, const float* dy, const float* xbc,
                                         const float* dt, const float* a_log, Dims d, bool staged) {
  await_prior_grids();
  extern __shared__ float staging[];
  __shared__ float cum[kQ], dtv[kQ];
  const Chunk k = load_chunk(cum, dtv, dt, a_log, d);
  float* next = staging;
  const Tile dY = chunk_tile(next, staged, dy + (k.b * d.T + k.t0) * d.I + k.h * d.P, d.I, kQ, k.len, d.P);
  const Tile C = chunk_tile(next, staged, xbc + (k.b * d.T + k.t0) * d.W + d.I + d.N, d.W, kQ, k.len, d.N);
  __syncthreads();
  const int64_t slot = ((k.b * d.chunks + k.c) * d.H + k.h) * d.PN();
  for (int64_t e = threadIdx.x; e < d.PN(); e += blockDim.x) {
    const int64_t p = e / d.N, n = e % d.N;
    float acc = 0.0f;
    for (int i = 0; i < k.len; ++i) acc = fmaf(expf(cum[i]) * dY(i, p), C(i, n), acc);
    G[slot + e] = acc;
  }
  if (threadIdx.x == 0) totals[(k.b * d.chunks + k.c) * d.H + k.h] = cum[k.len - 1];
}

// Backward pass 2: the gradient at each chunk's end, G_end(c) = G_in(c + 1),
// G_in(c) = local(c) + e^(total_c) G_end(c), in reverse chunk order.
__global__ void ssd_adjoint_carry_kernel(float* G, const float* totals, Dims d) {
  await_prior_grids();
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= d.batch * d.H * d.PN()) return;
  const int64_t b = idx / (d.H * d.PN()), h = (idx / d.PN()) % d.H, e = idx % d.PN();
  carry_through<-1>(G + (b * d.chunks * d.H + h) * d.PN() + e, totals + h, b * d.chunks, d.chunks,
                    d.H * d.PN(), d.H, 0.0f);
}

// Backward pass 3, per (sequence, chunk, head), with H0 the entering state
// (checkpoint), Gend the gradient at the chunk's end, S = C B^T, X = dy x^T
// (X[i][j] = dy_i . x_j), E(i, j) = e^(cum_i - cum_j):
//   R_j[p] = sum_{i >= j} E(i,j) S[i][j] dy_i[p] + e^(cum_last - cum_j) (Gend B_j)[p]
//   dx_j += D dy_j + dt_j R_j;  ddt_j += x_j . R_j + A dl_j
//   dC_i[n] += e^(cum_i) (dy_i^T H0)[n] + sum_{j <= i} E(i,j) dt_j X[i][j] B_j[n]
//   dB_j[n] += dt_j (sum_{i >= j} E(i,j) X[i][j] C_i[n] + e^(cum_last - cum_j) (x_j^T Gend)[n])
// where dl_t = sum_{k >= t} dcum_k and dcum_k gathers every term's
// dependence on cum_k: T1(i, j) = X[i][j] S[i][j] E(i,j) dt_j (+ at i, - at j),
// T2(i) = e^(cum_i) dy_i^T H0 C_i (+ at i), T4(j) = e^(cum_last - cum_j) dt_j x_j^T Gend B_j
// (- at j, + at last), T3 = e^(cum_last) <Gend, H0> (+ at last). Summed as
// written, the + and - parts of T1 and T4 cancel in fp32 (errors near 3e-5
// in dA); dl_t is summed in the closed form below instead, where they do not.
__global__ void ssd_chunk_backward_kernel(float* dxbc, float* ddt, float* bc_partials, float* param_partials,
                                          const float* dy, const float* checkpoints, const float* Gend_all,
                                          const float* xbc, const float* dt, const float* a_log,
                                          const float* D, Dims d, bool staged) {
  await_prior_grids();
  extern __shared__ float staging[];
  __shared__ float cum[kQ], dtv[kQ], dcum[kQ], in_sum[kQ], t2[kQ], t4[kQ], d_sum[kQ];
  __shared__ float S[kQ][kQ + 1], X[kQ][kQ + 1];
  __shared__ float parts[4][kQ][kParts];  // x.R, x^T Gend B, dy.x, dy^T H0 C per step, per part
  __shared__ float t3_parts[kBlock];
  const Chunk k = load_chunk(cum, dtv, dt, a_log, d);
  const int64_t chunk = (k.b * d.chunks + k.c) * d.H + k.h;
  const float last = cum[k.len - 1], dh = D[k.h];
  auto row_of = [&](int i) { return k.b * d.T + k.t0 + i; };
  float* next = staging;
  const float* rows = xbc + row_of(0) * d.W;
  const Tile x = chunk_tile(next, staged, rows + k.h * d.P, d.W, kQ, k.len, d.P);
  const Tile B = chunk_tile(next, staged, rows + d.I, d.W, kQ, k.len, d.N);
  const Tile C = chunk_tile(next, staged, rows + d.I + d.N, d.W, kQ, k.len, d.N);
  const Tile dY = chunk_tile(next, staged, dy + row_of(0) * d.I + k.h * d.P, d.I, kQ, k.len, d.P);
  const Tile H0 = chunk_tile(next, staged, checkpoints + chunk * d.PN(), d.N, int(d.P), int(d.P), d.N);
  const Tile G = chunk_tile(next, staged, Gend_all + chunk * d.PN(), d.N, int(d.P), int(d.P), d.N);
  __syncthreads();
  for (int e = threadIdx.x; e < kQ * kQ; e += blockDim.x) {
    const int i = e / kQ, j = e % kQ;
    float s = 0.0f, xx = 0.0f;
    if (i < k.len && j < k.len) {
      for (int64_t n = 0; n < d.N; ++n) s = fmaf(C(i, n), B(j, n), s);
      for (int64_t p = 0; p < d.P; ++p) xx = fmaf(dY(i, p), x(j, p), xx);
    }
    S[i][j] = s;
    X[i][j] = xx;
  }
  float t3 = 0.0f;
  for (int64_t e = threadIdx.x; e < d.PN(); e += blockDim.x)
    t3 = fmaf(G(e / d.N, e % d.N), H0(e / d.N, e % d.N), t3);
  t3_parts[threadIdx.x] = t3;
  __syncthreads();

  {  // per step j and part: the loops over head_dim
    const int j = threadIdx.x / kParts, part = threadIdx.x % kParts;
    float acc_in = 0.0f, acc_t4 = 0.0f, acc_d = 0.0f, acc_t2 = 0.0f;
    if (j < k.len) {
      float* dxj = dxbc + row_of(j) * d.W + k.h * d.P;
      const float to_end = expf(last - cum[j]);
      for (int64_t p = part; p < d.P; p += kParts) {
        float gb = 0.0f, hc = 0.0f;
        for (int64_t n = 0; n < d.N; ++n) {
          gb = fmaf(G(p, n), B(j, n), gb);
          hc = fmaf(H0(p, n), C(j, n), hc);
        }
        float r = to_end * gb;
        for (int i = j; i < k.len; ++i) r = fmaf(expf(cum[i] - cum[j]) * S[i][j], dY(i, p), r);
        const float xj = x(j, p), dyj = dY(j, p);
        dxj[p] = fmaf(dh, dyj, dtv[j] * r);
        acc_in = fmaf(xj, r, acc_in);
        acc_t4 = fmaf(xj, gb, acc_t4);
        acc_d = fmaf(dyj, xj, acc_d);
        acc_t2 = fmaf(dyj, hc, acc_t2);
      }
    }
    parts[0][j][part] = acc_in;
    parts[1][j][part] = acc_t4;
    parts[2][j][part] = acc_d;
    parts[3][j][part] = acc_t2;
  }
  __syncthreads();
  // T1 in place of S (S is not read again): T1(i, j) = X S E(i, j) dt_j for j <= i.
  for (int e = threadIdx.x; e < kQ * kQ; e += blockDim.x) {
    const int i = e / kQ, j = e % kQ;
    S[i][j] = i < k.len && j <= i ? X[i][j] * S[i][j] * expf(cum[i] - cum[j]) * dtv[j] : 0.0f;
  }
  __syncthreads();
  // d l_t = sum_{k >= t} d cum_k, summed in closed form so that nothing cancels:
  //   sum_{i >= t, j < t} T1(i, j) + sum_{i >= t} T2(i) + T3 + sum_{j < t} T4(j).
  if (threadIdx.x < kQ) {
    const int m = threadIdx.x;
    float sums[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int q = 0; q < 4; ++q)
      for (int part = 0; part < kParts; ++part) sums[q] += parts[q][m][part];
    double t1 = 0.0;  // dA sums many terms of both signs: double where it is cheap
    if (m < k.len)
      for (int i = m; i < k.len; ++i)
        for (int j = 0; j < m; ++j) t1 += S[i][j];
    dcum[m] = float(t1);
    t2[m] = m < k.len ? expf(cum[m]) * sums[3] : 0.0f;
    t4[m] = m < k.len ? expf(last - cum[m]) * dtv[m] * sums[1] : 0.0f;
    in_sum[m] = sums[0];
    d_sum[m] = m < k.len ? sums[2] : 0.0f;
  }
  __syncthreads();
  if (threadIdx.x < 32) {  // the suffix and prefix sums, the block's dA and dD
    double t3 = 0.0;
    for (int t = int(threadIdx.x); t < kBlock; t += 32) t3 += t3_parts[t];
    t3 = warp_sum(t3);
    chunk_decay_gradient(dcum, t2, t4, d_sum, dtv, t3 * exp(double(last)), k.len, param_partials + 2 * chunk);
  }
  __syncthreads();
  if (int(threadIdx.x) < k.len)
    ddt[row_of(threadIdx.x) * d.H + k.h] = fmaf(k.A, dcum[threadIdx.x], in_sum[threadIdx.x]);
  // dB and dC of this head, per (step, state): summed over the heads by ssd_bc_kernel.
  for (int64_t e = threadIdx.x; e < int64_t(k.len) * d.N; e += blockDim.x) {
    const int m = int(e / d.N);
    const int64_t n = e % d.N;
    float dyh = 0.0f, xg = 0.0f;
    for (int64_t p = 0; p < d.P; ++p) {
      dyh = fmaf(dY(m, p), H0(p, n), dyh);
      xg = fmaf(x(m, p), G(p, n), xg);
    }
    float dc = expf(cum[m]) * dyh;
    for (int j = 0; j <= m; ++j) dc = fmaf(expf(cum[m] - cum[j]) * dtv[j] * X[m][j], B(j, n), dc);
    float db = expf(last - cum[m]) * xg;
    for (int i = m; i < k.len; ++i) db = fmaf(expf(cum[i] - cum[m]) * X[i][m], C(i, n), db);
    float* out = bc_partials + (row_of(m) * d.H + k.h) * 2 * d.N;
    out[n] = dtv[m] * db;
    out[d.N + n] = dc;
  }
}

// dB and dC (columns I .. I + 2N of dxbc) = the heads' partials, summed in head order.
__global__ void ssd_bc_kernel(float* dxbc, const float* bc_partials, Dims d) {
  await_prior_grids();
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= d.batch * d.T * 2 * d.N) return;
  const int64_t row = idx / (2 * d.N), n2 = idx % (2 * d.N);
  float s = 0.0f;
  for (int64_t h = 0; h < d.H; ++h) s += bc_partials[(row * d.H + h) * 2 * d.N + n2];
  dxbc[row * d.W + d.I + n2] = s;
}

// da_log[h] += A_h sum dA, dD[h] += sum dD over the (sequence, chunk)
// blocks: a warp per head, each lane a strided share of the blocks, then a
// fixed butterfly (a thread per head walking every block took 28 us a call).
__global__ void ssd_params_kernel(float* da_log, float* dD, const float* param_partials, const float* a_log,
                                  Dims d) {
  await_prior_grids();
  const int64_t h = blockIdx.x;
  double da = 0.0, dd = 0.0;
  for (int64_t bc = threadIdx.x; bc < d.batch * d.chunks; bc += kWarpSize) {
    da += param_partials[2 * (bc * d.H + h)];
    dd += param_partials[2 * (bc * d.H + h) + 1];
  }
  da = warp_sum(da);
  dd = warp_sum(dd);
  if (threadIdx.x != 0) return;
  da_log[h] += float(-exp(double(a_log[h])) * da);
  dD[h] += float(dd);
}

// Whether a kernel stages its tiles (`bytes` of them) in shared memory; opts
// it in to that much dynamic shared memory when it does.
// LIVSEARCH_SSD_STAGED=0 reads every tile from global memory (for comparison).
template <class Kernel>
bool stage_tiles(Kernel kernel, std::size_t bytes) {
  static const bool enabled = enabled_unless_zero("LIVSEARCH_SSD_STAGED");
  if (!enabled || bytes > kMaxStagedBytes) return false;
  opt_in_dynamic_shared(kernel, bytes);
  return true;
}

void check_shape(const char* kernel, const SsdShape& s) {
  if (s.batch < 1 || s.seq < 1 || s.heads < 1 || s.head_dim < 1 || s.state < 1 || s.state > 1024)
    throw std::invalid_argument(std::string(kernel) + ": invalid shape (state at most 1024)");
}

}  // namespace

int64_t ssd_forward_scratch(const SsdShape& s) { return int64_t(s.batch) * scan_chunks(s.seq) * s.heads; }

void ssd_forward(cudaStream_t stream, float* y, float* checkpoints, const float* xbc, const float* dt,
                 const float* a_log, const float* D, float* state, const SsdShape& s, float* scratch,
                 bool tensor_cores) {
  check_shape("ssd_forward", s);
  if (!checkpoints && !state) throw std::invalid_argument("ssd_forward: needs checkpoints or a state");
  const Dims d(s);
  if (!checkpoints) {  // decode: the recurrence through the state
    ssd_recurrent_kernel<<<element_blocks(d.batch * d.H * d.P), kElementThreads, 0, stream>>>(
        y, xbc, dt, a_log, D, state, d);
    LIVS_CUDA_CHECK_LAUNCH();
    return;
  }
  const bool tc = tensor_cores && tensor_cores_fit(s);
  const dim3 grid(unsigned(d.batch * d.chunks), unsigned(d.H));
  if (tc) {
    tc_chunk_states(stream, checkpoints, scratch, xbc, dt, a_log, d);
  } else {
    const std::size_t state_bytes = tile_bytes(kQ, d.P) + tile_bytes(kQ, d.N);
    const bool state_staged = stage_tiles(ssd_chunk_state_kernel, state_bytes);
    ssd_chunk_state_kernel<<<grid, kBlock, state_staged ? state_bytes : 0, stream>>>(
        checkpoints, scratch, xbc, dt, a_log, d, state_staged);
    LIVS_CUDA_CHECK_LAUNCH();
  }
  ssd_carry_kernel<<<element_blocks(d.batch * d.H * d.PN()), kElementThreads, 0, stream>>>(checkpoints,
                                                                                           scratch, state, d);
  LIVS_CUDA_CHECK_LAUNCH();
  if (tc) {
    tc_chunk_outputs(stream, y, checkpoints, xbc, dt, a_log, D, d);
    return;
  }
  const std::size_t output_bytes = tile_bytes(kQ, d.P) + 2 * tile_bytes(kQ, d.N) + tile_bytes(d.P, d.N);
  const bool output_staged = stage_tiles(ssd_chunk_output_kernel, output_bytes);
  ssd_chunk_output_kernel<<<grid, kBlock, output_staged ? output_bytes : 0, stream>>>(
      y, checkpoints, xbc, dt, a_log, D, d, output_staged);
  LIVS_CUDA_CHECK_LAUNCH();
}

int64_t ssd_backward_scratch(const SsdShape& s) {
  const int64_t blocks = int64_t(s.batch) * scan_chunks(s.seq) * s.heads;
  const int64_t rows = int64_t(s.batch) * s.seq;
  return blocks                                   // totals
         + blocks * s.head_dim * s.state          // the gradients at the chunks' ends
         + rows * s.heads * 2 * int64_t(s.state)  // dB, dC per head
         + 2 * blocks;                            // dA, dD per block
}

void ssd_backward(cudaStream_t stream, float* dxbc, float* ddt, float* da_log, float* dD, const float* dy,
                  const float* checkpoints, const float* xbc, const float* dt, const float* a_log,
                  const float* D, const SsdShape& s, float* scratch, bool tensor_cores) {
  check_shape("ssd_backward", s);
  const Dims d(s);
  const int64_t blocks = d.batch * d.chunks * d.H, rows = d.batch * d.T;
  float* totals = scratch;
  float* G = totals + blocks;
  float* bc_partials = G + blocks * d.PN();
  float* param_partials = bc_partials + rows * d.H * 2 * d.N;
  const bool tc = tensor_cores && tensor_cores_fit(s);
  const dim3 grid(unsigned(d.batch * d.chunks), unsigned(d.H));
  if (tc) {
    tc_chunk_adjoints(stream, G, totals, dy, xbc, dt, a_log, d);
  } else {
    const std::size_t adjoint_bytes = tile_bytes(kQ, d.P) + tile_bytes(kQ, d.N);
    const bool adjoint_staged = stage_tiles(ssd_chunk_adjoint_kernel, adjoint_bytes);
    ssd_chunk_adjoint_kernel<<<grid, kBlock, adjoint_staged ? adjoint_bytes : 0, stream>>>(
        G, totals, dy, xbc, dt, a_log, d, adjoint_staged);
    LIVS_CUDA_CHECK_LAUNCH();
  }
  ssd_adjoint_carry_kernel<<<element_blocks(d.batch * d.H * d.PN()), kElementThreads, 0, stream>>>(G, totals,
                                                                                                   d);
  LIVS_CUDA_CHECK_LAUNCH();
  if (tc) {
    tc_chunk_backward(stream, dxbc, ddt, bc_partials, param_partials, dy, checkpoints, G, xbc, dt, a_log, D,
                      d);
  } else {
    const std::size_t backward_bytes =
        2 * tile_bytes(kQ, d.P) + 2 * tile_bytes(kQ, d.N) + 2 * tile_bytes(d.P, d.N);
    const bool backward_staged = stage_tiles(ssd_chunk_backward_kernel, backward_bytes);
    ssd_chunk_backward_kernel<<<grid, kBlock, backward_staged ? backward_bytes : 0, stream>>>(
        dxbc, ddt, bc_partials, param_partials, dy, checkpoints, G, xbc, dt, a_log, D, d, backward_staged);
    LIVS_CUDA_CHECK_LAUNCH();
  }
  ssd_bc_kernel<<<element_blocks(rows * 2 * d.N), kElementThreads, 0, stream>>>(dxbc, bc_partials, d);
  LIVS_CUDA_CHECK_LAUNCH();
  ssd_params_kernel<<<unsigned(d.H), kWarpSize, 0, stream>>>(da_log, dD, param_partials, a_log, d);
  LIVS_CUDA_CHECK_LAUNCH();
}

}  // namespace livs::evaluator::cuda
