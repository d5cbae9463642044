// Ungated causal linear attention in chunks of kChunk steps, per (batch, head):
//   out_c = (Q_c K_c^T o M) V_c + Q_c S_c,   S_c = sum_{c' < c} K_c'^T V_c'
// (M the causal mask inside the chunk, S_c the state entering chunk c). The
// sequential kernel of linear_attention.cu walks every step with two block
// barriers each; here every (batch, head, chunk) is a block of its own doing
// small matrix products in shared memory, so a step of T = 256 is 4 chunk
// blocks in parallel per head instead of 256 dependent steps.
//
// Backward, with G_c = sum_{c' > c} Q_c'^T dO_c' (the gradient of the state
// from later chunks) and P = dO_c V_c^T o M, A = Q_c K_c^T o M:
//   dQ_c = P K_c + dO_c S_c^T,  dK_c = P^T Q_c + V_c G_c^T,  dV_c = A^T dO_c + K_c G_c.
// The chunk states (K^T V, and Q^T dO for backward) come from a first kernel
// into scratch; each chunk block sums the ones it needs in chunk order, so
// the results are deterministic (their summation order is not the CPU's).
// A bf16 backend runs the same chunks on the tensor cores (linear_attention_tc.cu).
// Gated linear attention keeps the sequential kernel: its chunked form needs
// decays relative to the chunk start, which overflow without secondary chunking.
#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/device_math.cuh"
#include "evaluator/cuda/grid_dependency.cuh"
#include "evaluator/cuda/kernels.hpp"

namespace livs::evaluator::cuda {

namespace {

constexpr int kChunk = 64, kThreads = 256, kMaxHeadDim = 64;

struct ChunkLayout {
  int64_t seq, heads, hd, chunks;
  __device__ int64_t row(int64_t b, int64_t t, int64_t h) const { return ((b * seq + t) * heads + h) * hd; }
};

int64_t chunk_count(const LinearAttentionShape& s) { return (int64_t(s.seq) + kChunk - 1) / kChunk; }

// Loads rows t0 .. t0+kChunk-1 of one head of x into a [kChunk][hd + 1]
// tile, zero past the end of the sequence.
__device__ void load_chunk(float* tile, const float* x, const ChunkLayout& at, int64_t b, int64_t h,
                           int64_t t0) {
  const int hd = int(at.hd), stride = hd + 1;
  for (int e = threadIdx.x; e < kChunk * hd; e += blockDim.x) {
    const int t = e / hd, i = e % hd;
    tile[t * stride + i] = t0 + t < at.seq ? x[at.row(b, t0 + t, h) + i] : 0.0f;
  }
}

// states[task][chunk] = X_c^T Y_c ([hd][hd]) for one (task, chunk) per block:
// K^T V in forward, Q^T dO as well in backward (second output).
__global__ void __launch_bounds__(kThreads)
    chunk_states_kernel(float* kv_states, float* qdo_states, const float* q, const float* k, const float* v,
                        const float* dout, ChunkLayout at) {
  await_prior_grids();
  extern __shared__ float smem[];
  const int hd = int(at.hd), stride = hd + 1;
  const int64_t task = blockIdx.x / at.chunks, chunk = blockIdx.x % at.chunks;
  const int64_t b = task / at.heads, h = task % at.heads, t0 = chunk * kChunk;
  float *xs = smem, *ys = xs + kChunk * stride;
  const int passes = qdo_states ? 2 : 1;
  for (int pass = 0; pass < passes; ++pass) {
    __syncthreads();
    load_chunk(xs, pass == 0 ? k : q, at, b, h, t0);
    load_chunk(ys, pass == 0 ? v : dout, at, b, h, t0);
    __syncthreads();
    float* out = (pass == 0 ? kv_states : qdo_states) + blockIdx.x * int64_t(hd) * hd;
    for (int e = threadIdx.x; e < hd * hd; e += blockDim.x) {
      const int i = e / hd, j = e % hd;
      float acc = 0.0f;
      for (int t = 0; t < kChunk; ++t) acc = fmaf(xs[t * stride + i], ys[t * stride + j], acc);
      out[e] = acc;
    }
  }
}

// dst[hd][hd + 1] = the sum, in chunk order, of states[task][c] over c in [first, last).
__device__ void sum_states(float* dst, const float* states, int64_t task, int64_t chunks, int64_t first,
                           int64_t last, int hd) {
  for (int e = threadIdx.x; e < hd * hd; e += blockDim.x) {
    float acc = 0.0f;
    for (int64_t c = first; c < last; ++c) acc += states[(task * chunks + c) * hd * hd + e];
    dst[(e / hd) * (hd + 1) + e % hd] = acc;
  }
}

// a[t][s] = s <= t ? x_t . y_s : 0 over the chunk ([kChunk][kChunk + 1]).
__device__ void masked_scores(float* a, const float* xs, const float* ys, int hd) {
  const int stride = hd + 1;
  for (int e = threadIdx.x; e < kChunk * kChunk; e += blockDim.x) {
    const int t = e / kChunk, s = e % kChunk;
    float acc = 0.0f;
    if (s <= t)
      for (int i = 0; i < hd; ++i) acc = fmaf(xs[t * stride + i], ys[s * stride + i], acc);
    a[t * (kChunk + 1) + s] = acc;
  }
}

__global__ void __launch_bounds__(kThreads)
    chunked_forward_kernel(float* out, const float* q, const float* k, const float* v, const float* kv_states,
                           ChunkLayout at) {
  await_prior_grids();
  extern __shared__ float smem[];
  const int hd = int(at.hd), stride = hd + 1;
  const int64_t task = blockIdx.x / at.chunks, chunk = blockIdx.x % at.chunks;
  const int64_t b = task / at.heads, h = task % at.heads, t0 = chunk * kChunk;
  float *qs = smem, *ks = qs + kChunk * stride, *vs = ks + kChunk * stride, *S = vs + kChunk * stride,
        *a = S + hd * stride;
  load_chunk(qs, q, at, b, h, t0);
  load_chunk(ks, k, at, b, h, t0);
  load_chunk(vs, v, at, b, h, t0);
  sum_states(S, kv_states, task, at.chunks, 0, chunk, hd);
  __syncthreads();
  masked_scores(a, qs, ks, hd);
  __syncthreads();
  for (int e = threadIdx.x; e < kChunk * hd; e += blockDim.x) {
    const int t = e / hd, j = e % hd;
    if (t0 + t >= at.seq) break;
    float acc = 0.0f;
    for (int s = 0; s <= t; ++s) acc = fmaf(a[t * (kChunk + 1) + s], vs[s * stride + j], acc);
    for (int i = 0; i < hd; ++i) acc = fmaf(qs[t * stride + i], S[i * stride + j], acc);
    out[at.row(b, t0 + t, h) + j] = acc;
  }
}

__global__ void __launch_bounds__(kThreads)
    chunked_backward_kernel(float* dq, float* dk, float* dv, const float* dout, const float* q,
                            const float* k, const float* v, const float* kv_states, const float* qdo_states,
                            ChunkLayout at, bool accumulate) {
  await_prior_grids();
  extern __shared__ float smem[];
  const int hd = int(at.hd), stride = hd + 1;
  const int64_t task = blockIdx.x / at.chunks, chunk = blockIdx.x % at.chunks;
  const int64_t b = task / at.heads, h = task % at.heads, t0 = chunk * kChunk;
  float *qs = smem, *ks = qs + kChunk * stride, *vs = ks + kChunk * stride, *dos = vs + kChunk * stride,
        *S = dos + kChunk * stride, *G = S + hd * stride, *a = G + hd * stride;
  load_chunk(qs, q, at, b, h, t0);
  load_chunk(ks, k, at, b, h, t0);
  load_chunk(vs, v, at, b, h, t0);
  load_chunk(dos, dout, at, b, h, t0);
  sum_states(S, kv_states, task, at.chunks, 0, chunk, hd);
  sum_states(G, qdo_states, task, at.chunks, chunk + 1, at.chunks, hd);
  __syncthreads();
  masked_scores(a, dos, vs, hd);  // P[t][s] = dO_t . v_s, s <= t
  __syncthreads();
  for (int e = threadIdx.x; e < kChunk * hd; e += blockDim.x) {
    const int t = e / hd, i = e % hd;  // dQ[t][i] = sum_s P[t][s] k_s[i] + sum_j dO_t[j] S[i][j]
    if (t0 + t >= at.seq) break;
    float acc = 0.0f;
    for (int s = 0; s <= t; ++s) acc = fmaf(a[t * (kChunk + 1) + s], ks[s * stride + i], acc);
    for (int j = 0; j < hd; ++j) acc = fmaf(dos[t * stride + j], S[i * stride + j], acc);
    add_or_write(dq[at.row(b, t0 + t, h) + i], acc, accumulate);
  }
  for (int e = threadIdx.x; e < kChunk * hd; e += blockDim.x) {
    const int s = e / hd, i = e % hd;  // dK[s][i] = sum_{t >= s} P[t][s] q_t[i] + sum_j G[i][j] v_s[j]
    if (t0 + s >= at.seq) break;
    float acc = 0.0f;
    for (int t = s; t < kChunk; ++t) acc = fmaf(a[t * (kChunk + 1) + s], qs[t * stride + i], acc);
    for (int j = 0; j < hd; ++j) acc = fmaf(G[i * stride + j], vs[s * stride + j], acc);
    add_or_write(dk[at.row(b, t0 + s, h) + i], acc, accumulate);
  }
  __syncthreads();
  masked_scores(a, qs, ks, hd);  // A[t][s] = q_t . k_s, s <= t
  __syncthreads();
  for (int e = threadIdx.x; e < kChunk * hd; e += blockDim.x) {
    const int s = e / hd, j = e % hd;  // dV[s][j] = sum_{t >= s} A[t][s] dO_t[j] + sum_i k_s[i] G[i][j]
    if (t0 + s >= at.seq) break;
    float acc = 0.0f;
    for (int t = s; t < kChunk; ++t) acc = fmaf(a[t * (kChunk + 1) + s], dos[t * stride + j], acc);
    for (int i = 0; i < hd; ++i) acc = fmaf(ks[s * stride + i], G[i * stride + j], acc);
    add_or_write(dv[at.row(b, t0 + s, h) + j], acc, accumulate);
  }
}

ChunkLayout layout(const LinearAttentionShape& s) { return {s.seq, s.heads, s.head_dim, chunk_count(s)}; }

template <class Kernel>
std::size_t shared_bytes(Kernel kernel, int tiles, int state_tiles, bool scores, int hd) {
  const std::size_t floats = std::size_t(tiles) * kChunk * (hd + 1) +
                             std::size_t(state_tiles) * hd * (hd + 1) +
                             (scores ? std::size_t(kChunk) * (kChunk + 1) : 0);
  const std::size_t bytes = floats * sizeof(float);
  return opt_in_dynamic_shared(kernel, bytes);
}

}  // namespace

bool linear_attention_chunked(const LinearAttentionShape& s, bool gated) {
  return !gated && s.head_dim <= kMaxHeadDim;
}

int64_t linear_attention_chunked_scratch(const LinearAttentionShape& s) {
  return 2 * int64_t(s.batch) * s.heads * chunk_count(s) * s.head_dim * s.head_dim;
}

void linear_attention_chunked_forward(cudaStream_t stream, float* out, const float* q, const float* k,
                                      const float* v, const LinearAttentionShape& s, float* scratch,
                                      bool tensor_cores) {
  if (tensor_cores && linear_attention_tensor_cores_fit(s)) {
    linear_attention_tc_forward(stream, out, q, k, v, s, scratch);
    return;
  }
  const ChunkLayout at = layout(s);
  const unsigned blocks = unsigned(int64_t(s.batch) * s.heads * at.chunks);
  chunk_states_kernel<<<blocks, kThreads, shared_bytes(chunk_states_kernel, 2, 0, false, s.head_dim),
                        stream>>>(scratch, nullptr, q, k, v, nullptr, at);
  LIVS_CUDA_CHECK_LAUNCH();
  chunked_forward_kernel<<<blocks, kThreads, shared_bytes(chunked_forward_kernel, 3, 1, true, s.head_dim),
                           stream>>>(out, q, k, v, scratch, at);
  LIVS_CUDA_CHECK_LAUNCH();
}

void linear_attention_chunked_backward(cudaStream_t stream, float* dq, float* dk, float* dv,
                                       const float* dout, const float* q, const float* k, const float* v,
                                       const LinearAttentionShape& s, float* scratch, bool tensor_cores,
                                       bool accumulate) {
  const ChunkLayout at = layout(s);
  const unsigned blocks = unsigned(int64_t(s.batch) * s.heads * at.chunks);
  float* kv_states = scratch;
  float* qdo_states = scratch + linear_attention_chunked_scratch(s) / 2;
  if (tensor_cores && linear_attention_tensor_cores_fit(s)) {
    linear_attention_tc_backward(stream, dq, dk, dv, dout, q, k, v, s, kv_states, qdo_states, accumulate);
    return;
  }
  chunk_states_kernel<<<blocks, kThreads, shared_bytes(chunk_states_kernel, 2, 0, false, s.head_dim),
                        stream>>>(kv_states, qdo_states, q, k, v, dout, at);
  LIVS_CUDA_CHECK_LAUNCH();
  chunked_backward_kernel<<<blocks, kThreads, shared_bytes(chunked_backward_kernel, 4, 2, true, s.head_dim),
                            stream>>>(dq, dk, dv, dout, q, k, v, kv_states, qdo_states, at, accumulate);
  LIVS_CUDA_CHECK_LAUNCH();
}

}  // namespace livs::evaluator::cuda
