// Causal (gated) linear attention, per (batch, head):
//   S_t = diag(alpha_t) S_{t-1} + k_t v_t^T,  out_t = S_t^T q_t.
// One block per (batch, head) runs through time with the hd x hd state in
// shared memory (or, for head dims too large for it, in global scratch);
// thread j owns state column j in the forward, thread i owns row i where
// the backward's sums run along rows. Every sum has the CPU backend's order.
// Ungated attention with head_dim <= 64 takes the chunked kernels instead
// (linear_attention_chunked.cu).
#include <algorithm>

#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/device_math.cuh"
#include "evaluator/cuda/grid_dependency.cuh"
#include "evaluator/cuda/kernels.hpp"

namespace livs::evaluator::cuda {

namespace {

constexpr std::size_t kMaxSharedState = 100 * 1024;  // bytes of state kept in shared memory

struct LinearLayout {
  int64_t seq, heads, hd;
  __device__ int64_t at(int64_t b, int64_t t, int64_t h) const { return ((b * seq + t) * heads + h) * hd; }
};

std::size_t state_bytes(int hd) { return sizeof(float) * std::size_t(hd) * std::size_t(hd + 1); }
bool state_in_shared(int hd) { return state_bytes(hd) <= kMaxSharedState; }
unsigned threads_for(int hd) { return unsigned((hd + 31) / 32 * 32); }

// Shared memory: [rows * hd] staged rows, then the state when it fits.
template <class Kernel>
std::size_t prepare_shared(Kernel kernel, int hd, int rows) {
  std::size_t bytes = sizeof(float) * std::size_t(rows) * hd;
  if (state_in_shared(hd)) bytes += state_bytes(hd);
  return opt_in_dynamic_shared(kernel, bytes);
}

__global__ void linear_attention_forward_kernel(float* out, const float* q, const float* k, const float* v,
                                                const float* log_alpha, LinearAttentionShape s,
                                                float* state_scratch, bool shared_state) {
  await_prior_grids();
  extern __shared__ float smem[];
  const int hd = s.head_dim, stride = hd + 1, j = threadIdx.x;
  const int64_t b = blockIdx.x / s.heads, h = blockIdx.x % s.heads;
  const LinearLayout at{s.seq, s.heads, hd};
  float *qs = smem, *ks = qs + hd, *vs = ks + hd, *as = vs + hd;
  float* S = shared_state ? as + hd : state_scratch + int64_t(blockIdx.x) * hd * stride;
  if (j < hd)
    for (int i = 0; i < hd; ++i) S[i * stride + j] = 0.0f;
  for (int64_t t = 0; t < s.seq; ++t) {
    const int64_t o = at.at(b, t, h);
    __syncthreads();
    if (j < hd) {
      qs[j] = q[o + j];
      ks[j] = k[o + j];
      vs[j] = v[o + j];
      as[j] = log_alpha ? expf(log_alpha[o + j]) : 1.0f;
    }
    __syncthreads();
    if (j >= hd) continue;
    const float vj = vs[j];
    float acc = 0.0f;
    for (int i = 0; i < hd; ++i) {
      float sij = S[i * stride + j];
      if (log_alpha) sij *= as[i];
      sij += ks[i] * vj;
      S[i * stride + j] = sij;
      acc += qs[i] * sij;
    }
    out[o + j] = acc;
  }
}

// Forward in time (thread i owns row i of S): dq_t[i] = sum_j S_t[i][j] dout_t[j] -> local_dq.
// Backward in time with G = dL/dS_t: G = diag(alpha_{t+1}) G + q_t dout_t^T,
// dk_t[i] = sum_j G[i][j] v_t[j] (row i), dv_t[j] = sum_i k_t[i] G[i][j] (column j);
// dlog_alpha_t = sum_{u >= t} (q_u dq_u - k_u dk_u).
__global__ void linear_attention_backward_kernel(float* dq, float* dk, float* dv, float* dlog_alpha,
                                                 const float* dout, const float* q, const float* k,
                                                 const float* v, const float* log_alpha,
                                                 LinearAttentionShape s, float* local_dq,
                                                 float* state_scratch, bool shared_state, bool accumulate) {
  await_prior_grids();
  extern __shared__ float smem[];
  const int hd = s.head_dim, stride = hd + 1, x = threadIdx.x;  // x: row i or column j by phase
  const int64_t b = blockIdx.x / s.heads, h = blockIdx.x % s.heads;
  const LinearLayout at{s.seq, s.heads, hd};
  float *qs = smem, *ks = qs + hd, *vs = ks + hd, *dos = vs + hd, *as = dos + hd;
  float* S = shared_state ? as + hd : state_scratch + int64_t(blockIdx.x) * hd * stride;
  if (x < hd)
    for (int j = 0; j < hd; ++j) S[x * stride + j] = 0.0f;
  for (int64_t t = 0; t < s.seq; ++t) {
    const int64_t o = at.at(b, t, h);
    __syncthreads();
    if (x < hd) {
      ks[x] = k[o + x];
      vs[x] = v[o + x];
      dos[x] = dout[o + x];
    }
    __syncthreads();
    if (x >= hd) continue;
    const float a = log_alpha ? expf(log_alpha[o + x]) : 1.0f, ki = ks[x];
    float acc = 0.0f;
    for (int j = 0; j < hd; ++j) {
      float sij = S[x * stride + j];
      if (log_alpha) sij *= a;
      sij += ki * vs[j];
      S[x * stride + j] = sij;
      acc += sij * dos[j];
    }
    local_dq[o + x] = acc;
  }
  __syncthreads();
  float* G = S;
  if (x < hd)
    for (int j = 0; j < hd; ++j) G[x * stride + j] = 0.0f;
  float running = 0.0f;
  for (int64_t t = s.seq - 1; t >= 0; --t) {
    const int64_t o = at.at(b, t, h);
    __syncthreads();  // the column phase of t + 1 has read G
    if (x < hd) {
      qs[x] = q[o + x];
      ks[x] = k[o + x];
      vs[x] = v[o + x];
      dos[x] = dout[o + x];
    }
    __syncthreads();
    if (x < hd) {  // row phase
      const float a = (log_alpha && t + 1 < s.seq) ? expf(log_alpha[at.at(b, t + 1, h) + x]) : 1.0f;
      const float qi = qs[x];
      float dki = 0.0f;
      for (int j = 0; j < hd; ++j) {
        float gij = G[x * stride + j];
        if (log_alpha && t + 1 < s.seq) gij *= a;
        gij += qi * dos[j];
        G[x * stride + j] = gij;
        dki += gij * vs[j];
      }
      const float dqi = local_dq[o + x];
      add_or_write(dq[o + x], dqi, accumulate);
      add_or_write(dk[o + x], dki, accumulate);
      if (dlog_alpha) {
        running += qi * dqi - ks[x] * dki;
        add_or_write(dlog_alpha[o + x], running, accumulate);
      }
    }
    __syncthreads();
    if (x < hd) {  // column phase
      float dvj = 0.0f;
      for (int i = 0; i < hd; ++i) dvj += ks[i] * G[i * stride + x];
      add_or_write(dv[o + x], dvj, accumulate);
    }
  }
}

// Decode: state [batch * heads, hd (key i), hd (value j)].
__global__ void linear_attention_state_update_kernel(float* state, const float* k, const float* v,
                                                     const float* log_alpha, int64_t tasks, int hd) {
  await_prior_grids();
  const int64_t count = tasks * hd * hd;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < count;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t j = e % hd, i = (e / hd) % hd, task = e / (int64_t(hd) * hd);
    float sij = state[e];
    if (log_alpha) sij *= expf(log_alpha[task * hd + i]);
    state[e] = sij + k[task * hd + i] * v[task * hd + j];
  }
}

__global__ void linear_attention_state_read_kernel(float* out, const float* q, const float* state,
                                                   int64_t tasks, int hd) {
  await_prior_grids();
  const int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (e >= tasks * hd) return;
  const int64_t j = e % hd, task = e / hd;
  const float* st = state + task * hd * hd;
  float acc = 0.0f;
  for (int i = 0; i < hd; ++i) acc += q[task * hd + i] * st[i * hd + j];
  out[e] = acc;
}

}  // namespace

int64_t linear_attention_scratch(const LinearAttentionShape& s) {
  const int64_t tasks = int64_t(s.batch) * s.heads;
  const int64_t local_dq = tasks * s.seq * s.head_dim;
  const int64_t sequential =
      local_dq + (state_in_shared(s.head_dim) ? 0 : tasks * s.head_dim * (s.head_dim + 1));
  return std::max(sequential, linear_attention_chunked(s, false) ? linear_attention_chunked_scratch(s) : 0);
}

void linear_attention_forward(cudaStream_t stream, float* out, const float* q, const float* k, const float* v,
                              const float* log_alpha, const LinearAttentionShape& s, float* scratch,
                              bool tensor_cores) {
  const int64_t tasks = int64_t(s.batch) * s.heads;
  if (tasks <= 0 || s.seq <= 0) return;
  if (linear_attention_chunked(s, log_alpha != nullptr)) {
    linear_attention_chunked_forward(stream, out, q, k, v, s, scratch, tensor_cores);
    return;
  }
  if (s.head_dim > 1024) throw std::invalid_argument("CUDA linear attention: head_dim above 1024");
  const bool shared_state = state_in_shared(s.head_dim);
  const std::size_t bytes = prepare_shared(linear_attention_forward_kernel, s.head_dim, 4);
  float* state_scratch = shared_state ? nullptr : scratch + tasks * s.seq * s.head_dim;
  linear_attention_forward_kernel<<<unsigned(tasks), threads_for(s.head_dim), bytes, stream>>>(
      out, q, k, v, log_alpha, s, state_scratch, shared_state);
  LIVS_CUDA_CHECK_LAUNCH();
}

void linear_attention_backward(cudaStream_t stream, float* dq, float* dk, float* dv, float* dlog_alpha,
                               const float* dout, const float* q, const float* k, const float* v,
                               const float* log_alpha, const LinearAttentionShape& s, float* scratch,
                               bool tensor_cores, bool accumulate) {
  const int64_t tasks = int64_t(s.batch) * s.heads;
  if (tasks <= 0 || s.seq <= 0) return;
  if (linear_attention_chunked(s, log_alpha != nullptr)) {
    linear_attention_chunked_backward(stream, dq, dk, dv, dout, q, k, v, s, scratch, tensor_cores,
                                      accumulate);
    return;
  }
  if (s.head_dim > 1024) throw std::invalid_argument("CUDA linear attention: head_dim above 1024");
  const bool shared_state = state_in_shared(s.head_dim);
  const std::size_t bytes = prepare_shared(linear_attention_backward_kernel, s.head_dim, 5);
  float* local_dq = scratch;
  float* state_scratch = shared_state ? nullptr : scratch + tasks * s.seq * s.head_dim;
  linear_attention_backward_kernel<<<unsigned(tasks), threads_for(s.head_dim), bytes, stream>>>(
      dq, dk, dv, dlog_alpha, dout, q, k, v, log_alpha, s, local_dq, state_scratch, shared_state, accumulate);
  LIVS_CUDA_CHECK_LAUNCH();
}

void linear_attention_state_update(cudaStream_t stream, float* state, const float* k, const float* v,
                                   const float* log_alpha, const LinearAttentionShape& s) {
  const int64_t tasks = int64_t(s.batch) * s.heads, count = tasks * s.head_dim * s.head_dim;
  if (count <= 0) return;
  linear_attention_state_update_kernel<<<grid_for(count), 256, 0, stream>>>(state, k, v, log_alpha, tasks,
                                                                            s.head_dim);
  LIVS_CUDA_CHECK_LAUNCH();
}

void linear_attention_state_read(cudaStream_t stream, float* out, const float* q, const float* state,
                                 const LinearAttentionShape& s) {
  const int64_t tasks = int64_t(s.batch) * s.heads, count = tasks * s.head_dim;
  if (count <= 0) return;
  linear_attention_state_read_kernel<<<unsigned((count + 127) / 128), 128, 0, stream>>>(out, q, state, tasks,
                                                                                        s.head_dim);
  LIVS_CUDA_CHECK_LAUNCH();
}

}  // namespace livs::evaluator::cuda
