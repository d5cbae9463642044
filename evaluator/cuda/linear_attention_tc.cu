// Ungated causal linear attention in chunks on the tensor cores: the
// products of linear_attention_chunked.cu (the equations are written there)
// as bf16 mma.sync tiles with fp32 accumulation, for a bf16 backend. One
// block of four warps per (sequence, head, chunk of 64 steps); warp w owns
// rows 16w..16w+15 of the chunk. Q, K, V (and dO) of the chunk and the state
// sums S (earlier chunks' K^T V) and G (later chunks' Q^T dO) are staged as
// bf16 tiles, head_dim rounded up to 16 with zeros:
//   forward   A = Q K^T o M (registers), out = A V + Q S;
//   backward  P = dO V^T o M and A = Q K^T o M (registers, and to shared
//             memory for their transposes);
//             dQ = P K + dO S^T,  dK = P^T Q + V G^T,  dV = A^T dO + K G
//             (added into the gradients, or written: each row has one block).
// The chunk states are summed in chunk order in fp32 before rounding, so the
// results are deterministic.
#include <cuda_bf16.h>

#include <cstddef>

#include "common/environment_switch.hpp"
#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/grid_dependency.cuh"
#include "evaluator/cuda/kernels.hpp"
#include "evaluator/cuda/mma_tiles.cuh"

namespace livs::evaluator::cuda {

namespace {

using namespace tc;  // bf16, SharedTile, carve, stage, tile_bytes, padded16

constexpr int kChunk = 64, kWarps = kChunk / tc::kMmaRows, kThreads = 32 * kWarps, kTiles = kChunk / 8;
constexpr int kMaxHeadDim = 64;

struct Layout {
  int64_t seq, heads, hd, chunks;
  explicit Layout(const LinearAttentionShape& s)
      : seq(s.seq), heads(s.heads), hd(s.head_dim), chunks((int64_t(s.seq) + kChunk - 1) / kChunk) {}
};

// The block's (sequence, head, chunk) from blockIdx.x = task * chunks + chunk.
struct Block {
  int64_t task, chunk, b, h, t0;
  int len, hd, hd16;
  __device__ explicit Block(const Layout& at)
      : task(blockIdx.x / at.chunks),
        chunk(blockIdx.x % at.chunks),
        b(task / at.heads),
        h(task % at.heads),
        t0(chunk * kChunk),
        len(int(at.seq - t0 < kChunk ? at.seq - t0 : kChunk)),
        hd(int(at.hd)),
        hd16(padded16(at.hd)) {}
  // Row t of the chunk in a [batch, seq, heads, head_dim] array.
  __device__ int64_t offset(const Layout& at, int t) const {
    return ((b * at.seq + t0 + t) * at.heads + h) * at.hd;
  }
};

// The chunk's rows of x into a tile.
__device__ void stage_chunk(SharedTile t, const float* x, const Layout& at, const Block& k) {
  stage(t, kChunk, k.hd16, x + k.offset(at, 0), at.heads * at.hd, k.len, k.hd);
}

// The sum of the chunk states [first, last) of the block's task, in chunk order, into a tile.
__device__ void stage_state_sum(SharedTile t, const float* states, const Layout& at, const Block& k,
                                int64_t first, int64_t last) {
  const int64_t area = at.hd * at.hd;
  const float* task_states = states + k.task * at.chunks * area;
  if (k.hd % 4 == 0) {  // quads: 16-byte loads (the states are hd x hd, hd a multiple of 4)
    block_quads<4>(
        k.hd16, k.hd16 / 4,
        [&](int r, int c) {
          float4 acc{0.0f, 0.0f, 0.0f, 0.0f};
          if (r < k.hd && 4 * c < k.hd)
            for (int64_t chunk = first; chunk < last; ++chunk)
              acc += load4(task_states + chunk * area + r * k.hd, c);
          return acc;
        },
        [&](int r, int c, float4 v) { store4_bf16(t.p + r * t.stride, c, v); });
    return;
  }
  for (int e = threadIdx.x; e < k.hd16 * k.hd16; e += blockDim.x) {
    const int r = e / k.hd16, c = e % k.hd16;
    float acc = 0.0f;
    if (r < k.hd && c < k.hd)
      for (int64_t chunk = first; chunk < last; ++chunk) acc += task_states[chunk * area + r * k.hd + c];
    t(r, c) = __float2bfloat16_rn(acc);
  }
}

// acc = (X Y^T) o M on the warp's rows (column blocks past the diagonal stay 0).
__device__ void masked_scores(float (&acc)[kTiles][4], SharedTile X, SharedTile Y, int hd16, int warp,
                              int lane) {
  const int r0 = warp * tc::kMmaRows;
  tc::lower_products<kWarps>(acc, X, Y, hd16, warp, lane);
#pragma unroll
  for (int tile = 0; tile < kTiles; ++tile)
#pragma unroll
    for (int e = 0; e < 4; ++e)
      if (tc::fragment_col(lane, tile, e) > r0 + tc::fragment_row(lane, e)) acc[tile][e] = 0.0f;
}

// The warp's scores into a shared tile.
__device__ void store_scores(SharedTile t, const float (&scores)[kTiles][4], int warp, int lane) {
  tc::for_each_pair(scores, lane, [&](int r, int c, float a, float b) {
    tc::store_pair(t, warp * tc::kMmaRows + r, c, a, b);
  });
}

// dst (rows of the chunk, `accumulate`: +=) from a warp's 16 x 16 output block
// at column c0; two adjacent columns in one 8-byte access when head_dim is
// even and dst 8-byte aligned.
__device__ void write_rows(float* dst, const float (&acc)[2][4], const Layout& at, const Block& k, int c0,
                           int warp, int lane, bool accumulate) {
  const bool paired = k.hd % 2 == 0 && reinterpret_cast<uintptr_t>(dst) % 8 == 0;
  tc::for_each_pair(acc, lane, [&](int r, int c, float a, float b) {
    const int t = warp * tc::kMmaRows + r;
    c += c0;
    if (t >= k.len || c >= k.hd) return;
    float* out = dst + k.offset(at, t) + c;
    if (accumulate)
      tc::add2(out, a, b, paired, c + 1 < k.hd);
    else
      tc::store2(out, a, b, paired, c + 1 < k.hd);
  });
}

// states[task][chunk] = X_c^T Y_c: K^T V, and Q^T dO as well in backward.
__global__ void __launch_bounds__(kThreads)
    chunk_states_kernel(float* kv_states, float* qdo_states, const float* q, const float* k, const float* v,
                        const float* dout, Layout at) {
  await_prior_grids();
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  const Block blk(at);
  bf16* next = reinterpret_cast<bf16*>(shared_bytes);
  const SharedTile X = carve(next, kChunk, blk.hd16), Y = carve(next, kChunk, blk.hd16);
  const int passes = qdo_states ? 2 : 1;
  for (int pass = 0; pass < passes; ++pass) {
    __syncthreads();
    stage_chunk(X, pass == 0 ? k : q, at, blk);
    stage_chunk(Y, pass == 0 ? v : dout, at, blk);
    __syncthreads();
    float* out = (pass == 0 ? kv_states : qdo_states) + blockIdx.x * at.hd * at.hd;
    tc::store_transposed_product(out, at.hd, X, Y, kChunk, blk.hd, blk.hd);
  }
}

__global__ void __launch_bounds__(kThreads)
    forward_kernel(float* out, const float* q, const float* k, const float* v, const float* kv_states,
                   Layout at) {
  await_prior_grids();
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  const Block blk(at);
  bf16* next = reinterpret_cast<bf16*>(shared_bytes);
  const SharedTile Q = carve(next, kChunk, blk.hd16), K = carve(next, kChunk, blk.hd16),
                   V = carve(next, kChunk, blk.hd16), S = carve(next, blk.hd16, blk.hd16);
  stage_chunk(Q, q, at, blk);
  stage_chunk(K, k, at, blk);
  stage_chunk(V, v, at, blk);
  stage_state_sum(S, kv_states, at, blk, 0, blk.chunk);
  __syncthreads();
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32, r0 = warp * tc::kMmaRows;
  float a[kTiles][4] = {};
  masked_scores(a, Q, K, blk.hd16, warp, lane);
  for (int j0 = 0; j0 < blk.hd16; j0 += 16) {
    float acc[2][4] = {};
    tc::lower_times<kWarps>(acc, a, V, j0, warp, lane);
    tc::mma_pair(
        acc[0], acc[1], 0, blk.hd16, [&](auto& f, int i0) { tc::load_a(f, Q, r0, i0, lane); },
        [&](auto& f, int i0) { tc::load_b(f, S, i0, j0, lane); });
    write_rows(out, acc, at, blk, j0, warp, lane, false);
  }
}

__global__ void __launch_bounds__(kThreads)
    backward_kernel(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                    const float* v, const float* kv_states, const float* qdo_states, Layout at,
                    bool accumulate) {
  await_prior_grids();
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  const Block blk(at);
  bf16* next = reinterpret_cast<bf16*>(shared_bytes);
  const int hd16 = blk.hd16;
  const SharedTile Q = carve(next, kChunk, hd16), K = carve(next, kChunk, hd16),
                   V = carve(next, kChunk, hd16), dO = carve(next, kChunk, hd16), S = carve(next, hd16, hd16),
                   G = carve(next, hd16, hd16), Ps = carve(next, kChunk, kChunk),
                   As = carve(next, kChunk, kChunk);
  stage_chunk(Q, q, at, blk);
  stage_chunk(K, k, at, blk);
  stage_chunk(V, v, at, blk);
  stage_chunk(dO, dout, at, blk);
  stage_state_sum(S, kv_states, at, blk, 0, blk.chunk);
  stage_state_sum(G, qdo_states, at, blk, blk.chunk + 1, at.chunks);
  __syncthreads();
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32, r0 = warp * tc::kMmaRows;
  float p[kTiles][4] = {};
  masked_scores(p, dO, V, hd16, warp, lane);  // P[t][s] = dO_t . v_s, s <= t
  store_scores(Ps, p, warp, lane);
  {
    float a[kTiles][4] = {};
    masked_scores(a, Q, K, hd16, warp, lane);  // A[t][s] = q_t . k_s, s <= t
    store_scores(As, a, warp, lane);
  }
  __syncthreads();
  for (int c0 = 0; c0 < hd16; c0 += 16) {
    float acc[2][4] = {};  // dQ = P K + dO S^T
    tc::lower_times<kWarps>(acc, p, K, c0, warp, lane);
    tc::mma_pair(
        acc[0], acc[1], 0, hd16, [&](auto& f, int j0) { tc::load_a(f, dO, r0, j0, lane); },
        [&](auto& f, int j0) { tc::load_b_transposed(f, S, j0, c0, lane); });
    write_rows(dq, acc, at, blk, c0, warp, lane, accumulate);
  }
  for (int c0 = 0; c0 < hd16; c0 += 16) {
    float acc[2][4] = {};  // dK = P^T Q + V G^T
    tc::lower_transposed_times<kWarps>(acc, Ps, Q, c0, warp, lane);
    tc::mma_pair(
        acc[0], acc[1], 0, hd16, [&](auto& f, int j0) { tc::load_a(f, V, r0, j0, lane); },
        [&](auto& f, int j0) { tc::load_b_transposed(f, G, j0, c0, lane); });
    write_rows(dk, acc, at, blk, c0, warp, lane, accumulate);
  }
  for (int c0 = 0; c0 < hd16; c0 += 16) {
    float acc[2][4] = {};  // dV = A^T dO + K G
    tc::lower_transposed_times<kWarps>(acc, As, dO, c0, warp, lane);
    tc::mma_pair(
        acc[0], acc[1], 0, hd16, [&](auto& f, int i0) { tc::load_a(f, K, r0, i0, lane); },
        [&](auto& f, int i0) { tc::load_b(f, G, i0, c0, lane); });
    write_rows(dv, acc, at, blk, c0, warp, lane, accumulate);
  }
}

}  // namespace

// LIVSEARCH_LINEAR_ATTENTION_TENSOR_CORES=0 keeps a bf16 backend on the fp32 chunk kernels (for comparison).
bool linear_attention_tensor_cores_fit(const LinearAttentionShape& s) {
  static const bool enabled = enabled_unless_zero("LIVSEARCH_LINEAR_ATTENTION_TENSOR_CORES");
  return enabled && s.head_dim <= kMaxHeadDim;
}

void linear_attention_tc_forward(cudaStream_t stream, float* out, const float* q, const float* k,
                                 const float* v, const LinearAttentionShape& s, float* scratch) {
  const Layout at(s);
  const unsigned blocks = unsigned(int64_t(s.batch) * s.heads * at.chunks);
  const int hd16 = padded16(s.head_dim);
  chunk_states_kernel<<<blocks, kThreads,
                        opt_in_dynamic_shared(chunk_states_kernel, 2 * tile_bytes(kChunk, hd16)), stream>>>(
      scratch, nullptr, q, k, v, nullptr, at);
  LIVS_CUDA_CHECK_LAUNCH();
  const std::size_t bytes = 3 * tile_bytes(kChunk, hd16) + tile_bytes(hd16, hd16);
  forward_kernel<<<blocks, kThreads, opt_in_dynamic_shared(forward_kernel, bytes), stream>>>(out, q, k, v,
                                                                                             scratch, at);
  LIVS_CUDA_CHECK_LAUNCH();
}

void linear_attention_tc_backward(cudaStream_t stream, float* dq, float* dk, float* dv, const float* dout,
                                  const float* q, const float* k, const float* v,
                                  const LinearAttentionShape& s, float* kv_states, float* qdo_states,
                                  bool accumulate) {
  const Layout at(s);
  const unsigned blocks = unsigned(int64_t(s.batch) * s.heads * at.chunks);
  const int hd16 = padded16(s.head_dim);
  chunk_states_kernel<<<blocks, kThreads,
                        opt_in_dynamic_shared(chunk_states_kernel, 2 * tile_bytes(kChunk, hd16)), stream>>>(
      kv_states, qdo_states, q, k, v, dout, at);
  LIVS_CUDA_CHECK_LAUNCH();
  const std::size_t bytes =
      4 * tile_bytes(kChunk, hd16) + 2 * tile_bytes(hd16, hd16) + 2 * tile_bytes(kChunk, kChunk);
  backward_kernel<<<blocks, kThreads, opt_in_dynamic_shared(backward_kernel, bytes), stream>>>(
      dq, dk, dv, dout, q, k, v, kv_states, qdo_states, at, accumulate);
  LIVS_CUDA_CHECK_LAUNCH();
}

}  // namespace livs::evaluator::cuda
