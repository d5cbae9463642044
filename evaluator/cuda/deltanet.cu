// deltanet's kernels in fp32: the (gated) delta rule and Gated DeltaNet's decay.
//
// The delta rule (Backend::delta_rule_forward) runs one block per (sequence,
// head), sequential in time, with the head's state S [d_k, d_v] in shared
// memory: thread j owns column j of S, so a step is three column loops
// (decay and u_j = sum_i S'_ij k_i, the rank-1 update, o_j = sum_i S_ij q_i)
// with no reduction across threads, in the CPU backend's order of fmas. The
// forward keeps S at every kScanChunk boundary (checkpoints). Backward
// recomputes one chunk's states from its checkpoint into `scratch` (global
// memory, [kScanChunk, d_k, d_v] per block), then walks the chunk backwards
// with dS in shared memory; the row sums (dq, dk) are done by thread i over
// row i, the scalar sums (dbeta, dlog_alpha) by block reductions. Each output
// row belongs to one block: no atomics, deterministic.
//
// Speed limits: one block per (sequence, head) leaves the GPU idle when
// batch x heads is small, every step waits on __syncthreads, and the
// backward's row loops read the recomputed states from global memory (its
// dS in shared memory is padded, so they no longer conflict on banks there).
// Training and evaluation take the chunked WY / UT-transform form instead
// (deltanet_chunked_*.cu) for head_dim up to 64; these kernels serve decode,
// larger heads and LIVSEARCH_DELTANET_CHUNKED=0.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/device_math.cuh"
#include "evaluator/cuda/grid_dependency.cuh"
#include "evaluator/cuda/kernels.hpp"

namespace livs::evaluator::cuda {

namespace {

constexpr int kMaxHeadDim = 128;  // d_k x d_v fp32 in shared memory: 64 KiB (plus dS in backward: 128 KiB)

__device__ inline float softplus_of(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

struct Layout {
  int seq, heads, n;
  __device__ int64_t vec(int64_t b, int64_t t, int64_t h) const { return ((b * seq + t) * heads + h) * n; }
  __device__ int64_t scalar(int64_t b, int64_t t, int64_t h) const { return (b * seq + t) * heads + h; }
};

int threads_for(int n) { return ((n + 31) / 32) * 32; }

void check_head_dim(const DeltaRuleShape& s) {
  if (s.head_dim < 1 || s.head_dim > kMaxHeadDim)
    throw std::invalid_argument("delta rule (CUDA): head_dim " + std::to_string(s.head_dim) +
                                " outside [1, " + std::to_string(kMaxHeadDim) + "]");
}

std::size_t forward_shared_bytes(int n) { return (std::size_t(n) * n + 2 * n) * sizeof(float); }
// Backward's dS rows are padded to n + 1 floats: thread i reading row i
// (dq, dk) would otherwise hit one bank 32 times per warp at head_dim 32,
// 64 or 128; the column loops stay conflict-free either way.
std::size_t backward_shared_bytes(int n) { return (std::size_t(n) * (n + 1) + 5 * n + 32) * sizeof(float); }

__global__ void delta_rule_forward_kernel(float* o, float* checkpoints, const float* q, const float* k,
                                          const float* v, const float* log_alpha, const float* beta,
                                          float* state, DeltaRuleShape s) {
  await_prior_grids();
  extern __shared__ float shared[];
  const int n = s.head_dim, j = threadIdx.x;
  float* S = shared;           // [n, n]
  float* kv = shared + n * n;  // k_t
  float* qv = kv + n;          // q_t
  const int64_t bh = blockIdx.x, b = bh / s.heads, h = bh % s.heads, nn = int64_t(n) * n;
  const int64_t chunks = (s.seq + kScanChunk - 1) / kScanChunk;
  const Layout at{s.seq, s.heads, n};
  if (j < n)
    for (int i = 0; i < n; ++i) S[i * n + j] = state ? state[bh * nn + i * n + j] : 0.0f;
  for (int t = 0; t < s.seq; ++t) {
    __syncthreads();  // the previous step's reads of k and q are done
    const int64_t vec = at.vec(b, t, h);
    if (j < n) {
      kv[j] = k[vec + j];
      qv[j] = q[vec + j];
    }
    __syncthreads();
    if (j >= n) continue;
    if (checkpoints && t % kScanChunk == 0) {
      float* c = checkpoints + (bh * chunks + t / kScanChunk) * nn;
      for (int i = 0; i < n; ++i) c[i * n + j] = S[i * n + j];
    }
    const float alpha = log_alpha ? expf(log_alpha[at.scalar(b, t, h)]) : 1.0f;
    const float bt = beta[at.scalar(b, t, h)];
    for (int i = 0; i < n; ++i) S[i * n + j] *= alpha;
    float u = 0.0f;
    for (int i = 0; i < n; ++i) u = fmaf(S[i * n + j], kv[i], u);
    const float w = bt * (v[vec + j] - u);
    float acc = 0.0f;
    for (int i = 0; i < n; ++i) {
      S[i * n + j] = fmaf(kv[i], w, S[i * n + j]);
      acc = fmaf(S[i * n + j], qv[i], acc);
    }
    o[vec + j] = acc;
  }
  if (state && j < n)
    for (int i = 0; i < n; ++i) state[bh * nn + i * n + j] = S[i * n + j];
}

__global__ void delta_rule_backward_kernel(float* dq, float* dk, float* dv, float* dlog_alpha, float* dbeta,
                                           float* scratch, const float* dout, const float* checkpoints,
                                           const float* q, const float* k, const float* v,
                                           const float* log_alpha, const float* beta, DeltaRuleShape s) {
  await_prior_grids();
  extern __shared__ float shared[];
  const int n = s.head_dim, j = threadIdx.x;
  const int ld = n + 1;         // dS's row stride (backward_shared_bytes)
  float* dS = shared;           // [n, ld]
  float* kv = shared + n * ld;  // k_t
  float* qv = kv + n;           // q_t
  float* dov = qv + n;          // do_t
  float* wv = dov + n;          // w_t
  float* duv = wv + n;          // du_t
  float* reduce = duv + n;      // 32 floats for block sums
  const int64_t bh = blockIdx.x, b = bh / s.heads, h = bh % s.heads, nn = int64_t(n) * n;
  const int64_t chunks = (s.seq + kScanChunk - 1) / kScanChunk;
  const Layout at{s.seq, s.heads, n};
  float* states = scratch + bh * int64_t(kScanChunk) * nn;
  if (j < n)
    for (int i = 0; i < n; ++i) dS[i * ld + j] = 0.0f;
  for (int64_t c = chunks - 1; c >= 0; --c) {
    const int64_t t0 = c * kScanChunk, t1 = min(int64_t(s.seq), t0 + kScanChunk);
    // Recompute the states entering each step of the chunk (column j by thread j).
    __syncthreads();
    if (j < n)
      for (int i = 0; i < n; ++i) states[i * n + j] = checkpoints[(bh * chunks + c) * nn + i * n + j];
    for (int64_t t = t0; t + 1 < t1; ++t) {
      const int64_t vec = at.vec(b, t, h);
      __syncthreads();
      if (j < n) kv[j] = k[vec + j];
      __syncthreads();
      if (j >= n) continue;
      const float* prev = states + (t - t0) * nn;
      float* next = states + (t - t0 + 1) * nn;
      const float alpha = log_alpha ? expf(log_alpha[at.scalar(b, t, h)]) : 1.0f;
      const float bt = beta[at.scalar(b, t, h)];
      float u = 0.0f;
      for (int i = 0; i < n; ++i) {
        const float sp = prev[i * n + j] * alpha;
        next[i * n + j] = sp;
        u = fmaf(sp, kv[i], u);
      }
      const float w = bt * (v[vec + j] - u);
      for (int i = 0; i < n; ++i) next[i * n + j] = fmaf(kv[i], w, next[i * n + j]);
    }
    for (int64_t t = t1 - 1; t >= t0; --t) {
      const int64_t vec = at.vec(b, t, h), sc = at.scalar(b, t, h);
      const float* prev = states + (t - t0) * nn;
      const float alpha = log_alpha ? expf(log_alpha[sc]) : 1.0f;
      const float bt = beta[sc];
      __syncthreads();  // the previous step's reads of the shared vectors are done
      if (j < n) {
        kv[j] = k[vec + j];
        qv[j] = q[vec + j];
        dov[j] = dout[vec + j];
      }
      __syncthreads();
      float dbeta_part = 0.0f;
      if (j < n) {
        float u = 0.0f;
        for (int i = 0; i < n; ++i) u = fmaf(prev[i * n + j] * alpha, kv[i], u);
        const float w = bt * (v[vec + j] - u);
        wv[j] = w;
        float dw = 0.0f;
        for (int i = 0; i < n; ++i) {
          dS[i * ld + j] = fmaf(qv[i], dov[j], dS[i * ld + j]);
          dw = fmaf(dS[i * ld + j], kv[i], dw);
        }
        dv[vec + j] += bt * dw;
        dbeta_part = dw * (v[vec + j] - u);
        duv[j] = -bt * dw;
      }
      const float dbeta_t = block_sum(dbeta_part, reduce);  // synchronises: wv, duv and dS are complete
      if (j == 0) dbeta[sc] += dbeta_t;
      if (j < n) {  // row j: dq_j = sum_m S_t[j][m] do_m,  dk_j = sum_m dS[j][m] w_m + S'[j][m] du_m
        const int i = j;
        float dq_acc = 0.0f, dk_acc = 0.0f;
        for (int m = 0; m < n; ++m) {
          const float sp = prev[i * n + m] * alpha;
          dq_acc = fmaf(fmaf(kv[i], wv[m], sp), dov[m], dq_acc);
          dk_acc = fmaf(dS[i * ld + m], wv[m], dk_acc);
          dk_acc = fmaf(sp, duv[m], dk_acc);
        }
        dq[vec + i] += dq_acc;
        dk[vec + i] += dk_acc;
      }
      __syncthreads();  // every row read of dS is done before the columns change it
      float dla_part = 0.0f;
      if (j < n)
        for (int i = 0; i < n; ++i) {
          const float g = fmaf(kv[i], duv[j], dS[i * ld + j]);
          dla_part = fmaf(g, prev[i * n + j] * alpha, dla_part);
          dS[i * ld + j] = alpha * g;
        }
      const float dla = block_sum(dla_part, reduce);
      if (j == 0 && dlog_alpha) dlog_alpha[sc] += dla;
    }
  }
}

__global__ void gdn_decay_forward_kernel(float* log_alpha, const float* z, const float* a_log,
                                         const float* dt_bias, int64_t rows, int heads) {
  await_prior_grids();
  const int64_t count = rows * heads;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int h = int(i % heads);
    log_alpha[i] = -expf(a_log[h]) * softplus_of(z[i] + dt_bias[h]);
  }
}

__global__ void gdn_decay_dz_kernel(float* dz, const float* dlog_alpha, const float* z, const float* a_log,
                                    const float* dt_bias, int64_t rows, int heads) {
  await_prior_grids();
  const int64_t count = rows * heads;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int h = int(i % heads);
    dz[i] += -expf(a_log[h]) * sigmoid(z[i] + dt_bias[h]) * dlog_alpha[i];
  }
}

// One block per head: the sums over rows in a fixed order (strided per thread, then a block tree).
__global__ void gdn_decay_sums_kernel(float* da_log, float* ddt_bias, const float* dlog_alpha, const float* z,
                                      const float* a_log, const float* dt_bias, int64_t rows, int heads) {
  await_prior_grids();
  __shared__ float reduce[32];
  const int h = blockIdx.x;
  const float a = expf(a_log[h]);
  float sum_a = 0.0f, sum_dt = 0.0f;
  for (int64_t r = threadIdx.x; r < rows; r += blockDim.x) {
    const int64_t i = r * heads + h;
    const float x = z[i] + dt_bias[h];
    sum_dt += -a * sigmoid(x) * dlog_alpha[i];
    sum_a += dlog_alpha[i] * (-a * softplus_of(x));
  }
  const float total_a = block_sum(sum_a, reduce);
  const float total_dt = block_sum(sum_dt, reduce);
  if (threadIdx.x == 0) {
    da_log[h] += total_a;
    ddt_bias[h] += total_dt;
  }
}

}  // namespace

void delta_rule_forward(cudaStream_t stream, float* o, float* checkpoints, const float* q, const float* k,
                        const float* v, const float* log_alpha, const float* beta, float* state,
                        const DeltaRuleShape& s) {
  check_head_dim(s);
  if (checkpoints && delta_rule_chunked_fits(s))
    return delta_rule_chunked_forward(stream, o, checkpoints, q, k, v, log_alpha, beta, state, s);
  const int n = s.head_dim;
  const std::size_t bytes = forward_shared_bytes(n);
  opt_in_dynamic_shared(delta_rule_forward_kernel, bytes);
  delta_rule_forward_kernel<<<unsigned(s.batch * s.heads), threads_for(n), bytes, stream>>>(
      o, checkpoints, q, k, v, log_alpha, beta, state, s);
  LIVS_CUDA_CHECK_LAUNCH();
}

void delta_rule_backward(cudaStream_t stream, float* dq, float* dk, float* dv, float* dlog_alpha,
                         float* dbeta, float* scratch, const float* dout, const float* checkpoints,
                         const float* q, const float* k, const float* v, const float* log_alpha,
                         const float* beta, const DeltaRuleShape& s) {
  check_head_dim(s);
  if (delta_rule_chunked_fits(s))
    return delta_rule_chunked_backward(stream, dq, dk, dv, dlog_alpha, dbeta, scratch, dout, checkpoints, q,
                                       k, v, log_alpha, beta, s);
  const int n = s.head_dim;
  const std::size_t bytes = backward_shared_bytes(n);
  opt_in_dynamic_shared(delta_rule_backward_kernel, bytes);
  delta_rule_backward_kernel<<<unsigned(s.batch * s.heads), threads_for(n), bytes, stream>>>(
      dq, dk, dv, dlog_alpha, dbeta, scratch, dout, checkpoints, q, k, v, log_alpha, beta, s);
  LIVS_CUDA_CHECK_LAUNCH();
}

void gdn_decay_forward(cudaStream_t stream, float* log_alpha, const float* z, const float* a_log,
                       const float* dt_bias, int64_t rows, int heads) {
  gdn_decay_forward_kernel<<<grid_for(rows * heads), 256, 0, stream>>>(log_alpha, z, a_log, dt_bias, rows,
                                                                       heads);
  LIVS_CUDA_CHECK_LAUNCH();
}

void gdn_decay_backward(cudaStream_t stream, float* dz, float* da_log, float* ddt_bias,
                        const float* dlog_alpha, const float* z, const float* a_log, const float* dt_bias,
                        int64_t rows, int heads) {
  gdn_decay_dz_kernel<<<grid_for(rows * heads), 256, 0, stream>>>(dz, dlog_alpha, z, a_log, dt_bias, rows,
                                                                  heads);
  LIVS_CUDA_CHECK_LAUNCH();
  gdn_decay_sums_kernel<<<unsigned(heads), 256, 0, stream>>>(da_log, ddt_bias, dlog_alpha, z, a_log, dt_bias,
                                                             rows, heads);
  LIVS_CUDA_CHECK_LAUNCH();
}

}  // namespace livs::evaluator::cuda
