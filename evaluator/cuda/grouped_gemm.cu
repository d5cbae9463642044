// The MoE experts' grouped GEMMs with their sizes in device memory: the
// dispatched rows are grouped by expert (moe_dispatch's offsets) and every
// block reads the offsets itself, so a launch depends only on static bounds
// (the row capacity rows * top_k and the number of experts) and a step with
// MoE can be captured as a CUDA graph. cuBLAS's grouped GEMMs take their
// sizes from the host, which is what this replaces.
//
// Every product is C (+)= A B on 64 x 64 tiles of C, the reduction staged 32
// deep through shared memory (the next slice loaded into registers while the
// current one is multiplied):
// - rows grouped (y = x W_e^T, dx = dy W_e): the M tiles of all experts are
//   numbered one after the other; a grid of ceil(capacity / 64) + experts
//   tiles along M covers any split of the rows (each expert wastes less than
//   one tile), and a block past the last tile returns;
// - weight gradient (dW_e += dy_e^T x_e): a block per (expert, n tile, k
//   tile) walks the expert's rows; an expert without rows returns at once.
// - pairs (MoE's gate and up projections, which share x or add into one dx):
//   one launch does both products, so the second one's blocks fill the
//   first one's last wave instead of waiting for it; every output element
//   still gets the operations of two separate launches, in their order;
// - SwiGLU in the epilogue (MoE's hidden layer): a block computes its gate
//   tile, then its up tile and h = silu(gate) up from them; backward, the
//   down projection's dh tile becomes dgate and dup where it is computed
//   (swiglu_math.cuh, so the bits are those of the separate kernels);
// - a rows product and a weight gradient with independent outputs in one
//   launch (MoE's backward: grouped_swiglu_backward, grouped_gate_up_backward),
//   the rows blocks first, the weight gradient's after them;
// - apart: two products into two outputs, each block one of them: MoE's
//   gate and up input products (a block of the summed pair walked both
//   reductions, 16 dependent slices at d 128, on one block an SM), or the two
//   halves of one reduction (grouped_matmul_halves: the down projection).
// bf16 mode: inputs rounded to bf16 as they are staged, WMMA m16n16k16 on
// tensor cores with fp32 accumulation (4 warps, 32 x 32 each). fp32 mode:
// the same tiles in fp32 FMAs, each output summed over the reduction in
// order (the exact path the tests compare with the CPU). Every output element
// has one owner and a fixed order of additions: deterministic, no atomics.
// Tails (and empty experts, an empty reduction) are handled by bounds: staged
// values outside the problem are zeros and only elements inside are stored.
#include <cuda_bf16.h>
#include <mma.h>

#include <algorithm>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/device_math.cuh"
#include "evaluator/cuda/grid_dependency.cuh"
#include "evaluator/cuda/kernels.hpp"
#include "evaluator/cuda/swiglu_math.cuh"

namespace livs::evaluator::cuda {

namespace {

constexpr int kThreads = 128;
constexpr int kBlocksPerSm = 4;  // the kernels' launch bounds (at most 128 registers a thread)
constexpr int kTileM = 64, kTileN = 64, kTileK = 32;

// The fp32 mode's shared tiles: row strides padded against bank conflicts.
struct Fp32Stage {
  static constexpr int kLdA = kTileK + 1;
  static constexpr int kLdB = kTileN + 4;
  static constexpr int kABytes = kTileM * kLdA * int(sizeof(float));
  static constexpr int kBytes = kABytes + kTileK * kLdB * int(sizeof(float));
};

constexpr int kLdC = kTileN + 4;  // the fp32 tile the WMMA accumulators go through

// A R x C slice of a strided matrix, element (r, c) at src[r * rs + c * cs],
// zero outside r < r_limit, c < c_limit; held in registers between the load
// and the store into shared memory. kColsFast: consecutive threads take
// consecutive c (the dimension contiguous in memory), else consecutive r;
// a thread's elements then lie kThreads / C rows (kThreads / R columns) apart.
template <int R, int C, bool kColsFast>
struct Slice {
  static_assert(kColsFast ? kThreads % C == 0 : kThreads % R == 0, "threads cover whole rows / columns");
  static constexpr int kPerThread = R * C / kThreads;
  static constexpr int kRowStep = kColsFast ? kThreads / C : 0, kColStep = kColsFast ? 0 : kThreads / R;
  float v[kPerThread];

  __device__ static int row0() { return kColsFast ? threadIdx.x / C : threadIdx.x % R; }
  __device__ static int col0() { return kColsFast ? threadIdx.x % C : threadIdx.x / R; }

  // rs, cs < 2^24 (checked by the launchers): offsets inside a tile fit in 32 bits.
  __device__ void load(const float* src, int rs, int cs, int64_t r_limit, int64_t c_limit) {
    const int rl = int(min(r_limit, int64_t(R))), cl = int(min(c_limit, int64_t(C)));
    const int r0 = row0(), c0 = col0();
    const float* p = src + (r0 * rs + c0 * cs);
    const int step = kRowStep * rs + kColStep * cs;
#pragma unroll
    for (int u = 0; u < kPerThread; ++u)
      v[u] = r0 + u * kRowStep < rl && c0 + u * kColStep < cl ? p[u * step] : 0.0f;
  }
  __device__ void store(float* dst, int ld) const {
    float* d = dst + row0() * ld + col0();
#pragma unroll
    for (int u = 0; u < kPerThread; ++u) d[u * (kRowStep * ld + kColStep)] = v[u];
  }
};

// Rows of a matrix that start on 16-byte boundaries (a base and a stride that allow them).
__device__ inline bool vector_rows(const void* p, int64_t stride) {
  return (reinterpret_cast<uintptr_t>(p) & 15) == 0 && stride % 4 == 0;
}

// What a tile does with its product P(i, j) (i < m, j < n, from the tile's
// corner): quad(i, j, v) takes P(i, j..j+3) where vector() allows 16-byte
// accesses, single(i, j, v) one element otherwise. Every element of a tile
// goes to the same thread in every product of a block (the accumulator's
// layout fixes it), so an epilogue may read what an earlier product of the
// same block stored there without a barrier.
//
// C (+)= P.
struct StoreC {
  float* c;
  int64_t ldc;
  bool accumulate;
  __device__ bool vector() const { return vector_rows(c, ldc); }
  __device__ void quad(int i, int j, float4 v) const {
    float* out = c + (i * ldc + j);
    store4(out, 0, accumulate ? load4(out, 0) + v : v);
  }
  __device__ void single(int i, int j, float v) const {
    float* out = c + (i * ldc + j);
    *out = accumulate ? *out + v : v;
  }
};

// P is up: up = P and h = silu(gate) * up, gate stored by the block's previous product.
struct SwigluUp {
  float *up, *h;
  const float* gate;
  int64_t ld;
  __device__ bool vector() const {
    return vector_rows(up, ld) && vector_rows(h, ld) && vector_rows(gate, ld);
  }
  __device__ void quad(int i, int j, float4 v) const {
    const int64_t at = i * ld + j;
    const float4 g = load4(gate + at, 0);
    store4(up + at, 0, v);
    store4(h + at, 0, make_float4(swiglu(g.x, v.x), swiglu(g.y, v.y), swiglu(g.z, v.z), swiglu(g.w, v.w)));
  }
  __device__ void single(int i, int j, float v) const {
    const int64_t at = i * ld + j;
    up[at] = v;
    h[at] = swiglu(gate[at], v);
  }
};

// P is dh, the gradient of h = silu(gate) * up: dgate and dup written from it.
struct SwigluGrads {
  float *dgate, *dup;
  const float *gate, *up;
  int64_t ld;
  __device__ bool vector() const {
    return vector_rows(dgate, ld) && vector_rows(dup, ld) && vector_rows(gate, ld) && vector_rows(up, ld);
  }
  __device__ void quad(int i, int j, float4 v) const {
    const int64_t at = i * ld + j;
    const float4 g = load4(gate + at, 0), u = load4(up + at, 0);
    const float2 a = swiglu_grads(v.x, g.x, u.x), b = swiglu_grads(v.y, g.y, u.y),
                 c = swiglu_grads(v.z, g.z, u.z), e = swiglu_grads(v.w, g.w, u.w);
    store4(dgate + at, 0, make_float4(a.x, b.x, c.x, e.x));
    store4(dup + at, 0, make_float4(a.y, b.y, c.y, e.y));
  }
  __device__ void single(int i, int j, float v) const {
    const int64_t at = i * ld + j;
    const float2 r = swiglu_grads(v, gate[at], up[at]);
    dgate[at] = r.x;
    dup[at] = r.y;
  }
};

// A 64 x 64 tile of C in registers, fp32: thread (ty, tx) owns rows
// ty * 8 + (0..7) and columns tx * 4 + (0..3), each summed over the reduction
// in order with fmaf. multiply() adds the staged slice's product (as:
// [kTileM][kLdA] of A(i, t), bs: [kTileK][kLdB] of B(t, j)); finish() hands
// the elements i < m, j < n to the epilogue.
struct Fp32Accumulator {
  using Stage = Fp32Stage;
  float sums[8][4];
  int ty, tx;

  __device__ Fp32Accumulator() : ty(threadIdx.x / 16), tx(threadIdx.x % 16) {
    for (auto& row : sums)
      for (float& v : row) v = 0.0f;
  }
  __device__ void multiply(const float* as, const float* bs) {
#pragma unroll 4
    for (int t = 0; t < kTileK; ++t) {
      float av[8], bv[4];
#pragma unroll
      for (int i = 0; i < 8; ++i) av[i] = as[(ty * 8 + i) * Stage::kLdA + t];
#pragma unroll
      for (int j = 0; j < 4; ++j) bv[j] = bs[t * Stage::kLdB + tx * 4 + j];
#pragma unroll
      for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) sums[i][j] = fmaf(av[i], bv[j], sums[i][j]);
    }
  }
  template <class Epilogue>
  __device__ void finish(const Epilogue& epilogue, int64_t m, int64_t n) const {
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const int row = ty * 8 + i;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int col = tx * 4 + j;
        if (row < m && col < n) epilogue.single(row, col, sums[i][j]);
      }
    }
  }
};

// One 64 x 64 tile: P(i, j) = sum_t A(i, t) B(t, j) for i < m, j < n,
// t < depth, with A(i, t) = a[i * a_i + t * a_t], B(t, j) = b[t * b_t + j * b_j],
// handed to the epilogue (StoreC: C (+)= P). kAFastT / kBFastJ: which index of A / B is
// contiguous in memory (t / j when true, i / t when false; the other stride
// is 1), so that the loads are coalesced. Called by the whole block with the
// same arguments.
template <bool kAFastT, bool kBFastJ, class Epilogue>
__device__ void tile_product_fp32(unsigned char* shared, const float* a, int a_i, int a_t, const float* b,
                                  int b_t, int b_j, int64_t depth, int64_t m, int64_t n,
                                  const Epilogue& epilogue) {
  using Stage = Fp32Stage;
  float* as = reinterpret_cast<float*>(shared);
  float* bs = reinterpret_cast<float*>(shared + Stage::kABytes);
  Slice<kTileM, kTileK, kAFastT> a_next;
  Slice<kTileK, kTileN, kBFastJ> b_next;
  a_next.load(a, a_i, a_t, m, depth);
  b_next.load(b, b_t, b_j, depth, n);
  Fp32Accumulator acc;
  for (int64_t t0 = 0; t0 < depth; t0 += kTileK) {
    a_next.store(as, Stage::kLdA);
    b_next.store(bs, Stage::kLdB);
    __syncthreads();
    if (t0 + kTileK < depth) {  // the next slice's loads run under this slice's products
      const int64_t t1 = t0 + kTileK;
      a_next.load(a + t1 * a_t, a_i, a_t, m, depth - t1);
      b_next.load(b + t1 * b_t, b_t, b_j, depth - t1, n);
    }
    acc.multiply(as, bs);
    __syncthreads();
  }
  acc.finish(epilogue, m, n);
}

// The tensor-core mode's slices: kept in shared memory in bf16 as the
// operand lies in global memory, along its contiguous index ("inner"), so
// that a thread loads 16 bytes (four consecutive elements) at once, rounds
// them to two bf16 pairs and stores 8 bytes; rows padded by 8 elements
// (WMMA's multiple, and off the banks of the row before). Element (o, q) of
// an kOuter x kInner slice is src[o * stride + q]; zero where o or q is past
// its limit. Quads that the rows' alignment or a tail does not allow are
// read element by element (`vector`: src 16-byte aligned and stride a
// multiple of 4, true for every shape of a d 128-1024 model).
// The earlier form loaded and stored one element at a time (32 loads, 32
// conversions and 32 two-byte stores a thread a slice): ncu counted 3,200
// instructions a warp for a 4096 x 256 x 128 product, issued at 4 cycles
// each by two warps a scheduler, 12-15 us a call where cuBLAS takes 4-6.
template <int kOuter, int kInner>
struct Bf16Slice {
  static constexpr int kLd = kInner + 8;  // bf16 elements a row in shared memory
  static constexpr int kQuads = kInner / 4;
  static constexpr int kPerThread = kOuter * kQuads / kThreads;
  static_assert(kOuter * kQuads % kThreads == 0, "threads cover whole quads");
  float4 v[kPerThread];

  __device__ void load(const float* src, int stride, int64_t outer_limit, int64_t inner_limit, bool vector) {
    const int ol = int(min(outer_limit, int64_t(kOuter))), il = int(min(inner_limit, int64_t(kInner)));
#pragma unroll
    for (int u = 0; u < kPerThread; ++u) {
      const int idx = int(threadIdx.x) + u * kThreads, o = idx / kQuads, q = idx % kQuads * 4;
      const float* p = src + (o * stride + q);  // stride < 2^24 (the launchers check)
      if (vector && o < ol && q + 4 <= il) {
        v[u] = *reinterpret_cast<const float4*>(p);
      } else {
        v[u].x = o < ol && q < il ? p[0] : 0.0f;
        v[u].y = o < ol && q + 1 < il ? p[1] : 0.0f;
        v[u].z = o < ol && q + 2 < il ? p[2] : 0.0f;
        v[u].w = o < ol && q + 3 < il ? p[3] : 0.0f;
      }
    }
  }
  __device__ void store(__nv_bfloat16* dst) const {
#pragma unroll
    for (int u = 0; u < kPerThread; ++u) {
      const int idx = int(threadIdx.x) + u * kThreads, o = idx / kQuads, q = idx % kQuads * 4;
      // One 8-byte store (store4_bf16 makes two 4-byte ones).
      const __nv_bfloat162 lo = __floats2bfloat162_rn(v[u].x, v[u].y),
                           hi = __floats2bfloat162_rn(v[u].z, v[u].w);
      uint2 packed;
      packed.x = *reinterpret_cast<const uint32_t*>(&lo);
      packed.y = *reinterpret_cast<const uint32_t*>(&hi);
      *reinterpret_cast<uint2*>(dst + o * kLd + q) = packed;
    }
  }
};

constexpr int kBf16Tile = kTileM * (kTileK + 8);  // a [64][32] slice, rows padded; a [32][64] one fits too
constexpr int kCTile = kTileM * kLdC * int(sizeof(float));  // bytes of the C tile, which reuses the slices
static_assert(kTileM == kTileN && kTileK * (kTileM + 8) <= kBf16Tile, "one slice size serves A and B");
constexpr int kBf16Bytes = std::max(2 * kBf16Tile * int(sizeof(__nv_bfloat16)), kCTile);

// The same tile as tile_product_fp32 on tensor cores: WMMA bf16 m16n16k16
// with fp32 accumulation, 4 warps in 2 x 2, each 32 x 32 as 2 x 2 fragments;
// the next slice is loaded into registers while the current one is
// multiplied.
template <bool kAFastT, bool kBFastJ, class Epilogue>
__device__ void tile_product_bf16(unsigned char* shared, const float* a, int a_i, int a_t, const float* b,
                                  int b_t, int b_j, int64_t depth, int64_t m, int64_t n,
                                  const Epilogue& epilogue) {
  using namespace nvcuda;
  // A's slice: [i][t] (kAFastT) or [t][i]; B's: [t][j] (kBFastJ) or [j][t].
  using ASlice = std::conditional_t<kAFastT, Bf16Slice<kTileM, kTileK>, Bf16Slice<kTileK, kTileM>>;
  using BSlice = std::conditional_t<kBFastJ, Bf16Slice<kTileK, kTileN>, Bf16Slice<kTileN, kTileK>>;
  using ALayout = std::conditional_t<kAFastT, wmma::row_major, wmma::col_major>;
  using BLayout = std::conditional_t<kBFastJ, wmma::row_major, wmma::col_major>;
  __nv_bfloat16* as = reinterpret_cast<__nv_bfloat16*>(shared);
  __nv_bfloat16* bs = as + kBf16Tile;
  const int a_stride = kAFastT ? a_i : a_t, b_stride = kBFastJ ? b_t : b_j;
  const bool a_vector = vector_rows(a, a_stride), b_vector = vector_rows(b, b_stride);
  ASlice a_next;
  BSlice b_next;
  auto load = [&](int64_t t0) {
    a_next.load(a + t0 * a_t, a_stride, kAFastT ? m : depth - t0, kAFastT ? depth - t0 : m, a_vector);
    b_next.load(b + t0 * b_t, b_stride, kBFastJ ? depth - t0 : n, kBFastJ ? n : depth - t0, b_vector);
  };

  constexpr int kFrags = 2;
  const int wi = (threadIdx.x / 32 / 2) * 32, wj = (threadIdx.x / 32 % 2) * 32;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[kFrags][kFrags];
#pragma unroll
  for (auto& row : acc)
#pragma unroll
    for (auto& f : row) wmma::fill_fragment(f, 0.0f);

  load(0);
  for (int64_t t0 = 0; t0 < depth; t0 += kTileK) {
    a_next.store(as);
    b_next.store(bs);
    __syncthreads();
    if (t0 + kTileK < depth) load(t0 + kTileK);  // the next slice's loads run under this slice's products
#pragma unroll
    for (int kk = 0; kk < kTileK; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, ALayout> fa[kFrags];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, BLayout> fb[kFrags];
#pragma unroll
      for (int f = 0; f < kFrags; ++f) {
        const int i = wi + 16 * f, j = wj + 16 * f;
        wmma::load_matrix_sync(fa[f], kAFastT ? as + i * ASlice::kLd + kk : as + kk * ASlice::kLd + i,
                               ASlice::kLd);
        wmma::load_matrix_sync(fb[f], kBFastJ ? bs + kk * BSlice::kLd + j : bs + j * BSlice::kLd + kk,
                               BSlice::kLd);
      }
#pragma unroll
      for (int fi = 0; fi < kFrags; ++fi)
#pragma unroll
        for (int fj = 0; fj < kFrags; ++fj) wmma::mma_sync(acc[fi][fj], fa[fi], fb[fj], acc[fi][fj]);
    }
    __syncthreads();
  }

  // Through shared memory (the fragments' element layout is opaque), then
  // out in 16-byte pieces where C's rows allow.
  float* cs = reinterpret_cast<float*>(shared);  // [kTileM][kLdC]
#pragma unroll
  for (int fi = 0; fi < kFrags; ++fi)
#pragma unroll
    for (int fj = 0; fj < kFrags; ++fj)
      wmma::store_matrix_sync(cs + (wi + 16 * fi) * kLdC + wj + 16 * fj, acc[fi][fj], kLdC,
                              wmma::mem_row_major);
  __syncthreads();
  const bool vector = epilogue.vector();
  for (int idx = threadIdx.x; idx < kTileM * kTileN / 4; idx += kThreads) {
    const int i = idx / (kTileN / 4), j = idx % (kTileN / 4) * 4;
    if (i >= m) break;  // idx grows with i: every later one is past m too
    const float4 v = *reinterpret_cast<const float4*>(cs + i * kLdC + j);
    if (vector && j + 4 <= n) {
      epilogue.quad(i, j, v);
    } else {
      const float e[4] = {v.x, v.y, v.z, v.w};
      for (int k = 0; k < 4 && j + k < n; ++k) epilogue.single(i, j + k, e[k]);
    }
  }
}

template <bool kTensorCores, bool kAFastT, bool kBFastJ, class Epilogue>
__device__ void tile_product(unsigned char* shared, const float* a, int a_i, int a_t, const float* b, int b_t,
                             int b_j, int64_t depth, int64_t m, int64_t n, const Epilogue& epilogue) {
  if constexpr (kTensorCores)
    tile_product_bf16<kAFastT, kBFastJ>(shared, a, a_i, a_t, b, b_t, b_j, depth, m, n, epilogue);
  else
    tile_product_fp32<kAFastT, kBFastJ>(shared, a, a_i, a_t, b, b_t, b_j, depth, m, n, epilogue);
}

template <bool kTensorCores>
constexpr int kSharedBytes = kTensorCores ? kBf16Bytes : Fp32Stage::kBytes;

// Expert e's rows [begin, end), clamped to [0, capacity] so that no offset,
// however wrong, makes a block read or write outside the views.
struct ExpertRange {
  int64_t begin, end;
};
__device__ inline ExpertRange expert_range(const int32_t* offsets, int e, int64_t capacity) {
  const int64_t begin = min(max(int64_t(offsets[e]), int64_t(0)), capacity);
  const int64_t end = min(max(int64_t(offsets[e + 1]), begin), capacity);
  return {begin, end};
}

// What a rows launch computes (RowsProblem).
enum class RowsMode {
  store,            // C (+)= A B
  then_add,         // C (+)= A B, then C += A2 B2: two inputs and weights into one output
  swiglu_forward,   // C = A B (gate), C2 = A B2 (up) and H = silu(C) C2
  swiglu_backward,  // A B is dh, the gradient of H = silu(G) U: C = dG and C2 = dU from it
  apart,            // C (+)= A B and C2 = A2 B2 in blocks of their own (the grid's second half of columns)
};

// P[r, j] = sum_t A[r, t] B_e(t, j) for the rows r of expert e, where
// A[r, t] = a[r * lda + t] and B_e(t, j) = b[e * b_expert + t * b_t + j * b_j],
// into C[r, j] = c[r * ldc + j] as `mode` says (a2, b2 as a, b; c2, h, g, u
// shaped as C).
struct RowsProblem {
  const int32_t* offsets;
  int experts;
  int64_t capacity, n, depth;
  const float* a;
  int lda;
  const float* b;
  int64_t b_expert;
  int b_t, b_j;
  float* c;
  int64_t ldc;
  bool accumulate;
  // then_add and swiglu_backward for backward-input launches (kBFastJ), swiglu_forward for forward ones.
  RowsMode mode = RowsMode::store;
  const float* a2 = nullptr;
  const float* b2 = nullptr;
  float* c2 = nullptr;
  float* h = nullptr;
  const float* g = nullptr;
  const float* u = nullptr;
  int64_t depth2 = 0;  // apart: the second product's reduction depth
};

// Block (tile, j_tile) of a rows launch: tile counts the M tiles over the
// experts in order, j_tile the 64-column tiles of C (apart: of C, then of C2).
template <bool kTensorCores, bool kBFastJ, RowsMode kMode>
__device__ void rows_block(const RowsProblem& p, int64_t tile, int64_t j_tile, unsigned char* shared) {
  bool second = false;  // apart: this block computes C2 = A2 B2
  if constexpr (kMode == RowsMode::apart) {
    const int64_t column_tiles = (p.n + kTileN - 1) / kTileN;
    second = j_tile >= column_tiles;
    if (second) j_tile -= column_tiles;
  }
  for (int e = 0; e < p.experts; ++e) {
    const ExpertRange r = expert_range(p.offsets, e, p.capacity);
    const int64_t tiles = (r.end - r.begin + kTileM - 1) / kTileM;
    if (tile >= tiles) {
      tile -= tiles;
      continue;
    }
    const int64_t row0 = r.begin + tile * kTileM, j0 = j_tile * kTileN;
    const int64_t corner = row0 * p.ldc + j0;  // the tile's first element in C-shaped buffers
    auto product = [&](const float* a_rows, const float* weights, const auto& epilogue, int64_t depth) {
      tile_product<kTensorCores, true, kBFastJ>(shared, a_rows + row0 * p.lda, p.lda, 1,
                                                weights + e * p.b_expert + j0 * p.b_j, p.b_t, p.b_j, depth,
                                                r.end - row0, p.n - j0, epilogue);
    };
    // One kernel per mode: more inlined copies of the tile loop in one kernel spilled registers.
    if constexpr (kMode == RowsMode::swiglu_backward) {
      product(p.a, p.b, SwigluGrads{p.c + corner, p.c2 + corner, p.g + corner, p.u + corner, p.ldc}, p.depth);
    } else if constexpr (kMode == RowsMode::apart) {  // one call: a second inlined tile loop spilled
      product(second ? p.a2 : p.a, second ? p.b2 : p.b,
              StoreC{(second ? p.c2 : p.c) + corner, p.ldc, !second && p.accumulate},
              second ? p.depth2 : p.depth);
    } else {
      product(p.a, p.b, StoreC{p.c + corner, p.ldc, p.accumulate}, p.depth);
      if constexpr (kMode != RowsMode::store)
        __syncthreads();  // the first product's epilogue read shared memory the second one stages into
      if constexpr (kMode == RowsMode::then_add)
        product(p.a2, p.b2, StoreC{p.c + corner, p.ldc, true}, p.depth);
      else if constexpr (kMode == RowsMode::swiglu_forward)  // the first product was the gate
        product(p.a, p.b2, SwigluUp{p.c2 + corner, p.h + corner, p.c + corner, p.ldc}, p.depth);
    }
    return;
  }
}

template <bool kTensorCores, bool kBFastJ, RowsMode kMode>
__global__ void __launch_bounds__(kThreads, kBlocksPerSm) grouped_rows_kernel(RowsProblem p) {
  await_prior_grids();
  __shared__ __align__(128) unsigned char shared[kSharedBytes<kTensorCores>];
  rows_block<kTensorCores, kBFastJ, kMode>(p, blockIdx.x, blockIdx.y, shared);
}

// dW_e[i, j] += sum_r dy[r, i] x[r, j] over expert e's rows; dW_e is [n, k]
// at dw + e * n * k. With splits > 1 each expert's rows are cut into
// `splits` consecutive chunks: block (., ., e * splits + s) writes chunk s's
// product into partials[s][e] (zeros for an empty chunk) and
// grouped_weight_reduce adds the chunks to dW_e in chunk order. A block per
// (expert, tile) alone launched E x 4 x 2 = 64 blocks for a d128 MoE layer,
// each walking ~512 rows: 65 us per call on an H200.
// With a pair (dy2, dw2 set), grid.z covers both gradients (the second's
// blocks after the first's) and partials hold both ([pair][splits]...).
struct WeightProblem {
  const int32_t* offsets;
  int64_t capacity, n, k;
  const float* dy;
  const float* x;
  float* dw;
  float* partials;  // [pairs][splits][experts][n][k] when splits > 1
  int experts, splits;
  const float* dy2 = nullptr;
  float* dw2 = nullptr;

  __host__ __device__ int pairs() const { return dw2 ? 2 : 1; }
  __device__ const float* dy_of(int pair) const { return pair ? dy2 : dy; }
  __device__ float* dw_of(int pair) const { return pair ? dw2 : dw; }
  __device__ float* partials_of(int pair) const {
    return partials + int64_t(pair) * splits * experts * n * k;
  }
};

// Block (i_tile, j_tile, z) of a weight launch, z = (pair, expert, chunk).
template <bool kTensorCores>
__device__ void weight_block(const WeightProblem& p, int64_t i_tile, int64_t j_tile, int z,
                             unsigned char* shared) {
  const int per_pair = p.experts * p.splits, pair = z / per_pair;
  const int e = z % per_pair / p.splits, s = z % p.splits;
  const ExpertRange r = expert_range(p.offsets, e, p.capacity);
  if (p.splits == 1 && r.end == r.begin) return;
  const int64_t chunk = (r.end - r.begin + p.splits - 1) / p.splits;
  const int64_t begin = min(r.begin + s * chunk, r.end), end = min(begin + chunk, r.end);
  const int64_t i0 = i_tile * kTileM, j0 = j_tile * kTileN;
  float* out = p.splits == 1 ? p.dw_of(pair) + e * p.n * p.k
                             : p.partials_of(pair) + (int64_t(s) * p.experts + e) * p.n * p.k;
  tile_product<kTensorCores, false, true>(shared, p.dy_of(pair) + begin * p.n + i0, 1, int(p.n),
                                          p.x + begin * p.k + j0, int(p.k), 1, end - begin, p.n - i0,
                                          p.k - j0, StoreC{out + i0 * p.k + j0, p.k, p.splits == 1});
}

template <bool kTensorCores>
__global__ void __launch_bounds__(kThreads, kBlocksPerSm) grouped_weight_kernel(WeightProblem p) {
  await_prior_grids();
  __shared__ __align__(128) unsigned char shared[kSharedBytes<kTensorCores>];
  weight_block<kTensorCores>(p, blockIdx.x, blockIdx.y, int(blockIdx.z), shared);
}

// A backward-input rows launch and a weight gradient with independent
// outputs in one launch (MoE's down projection: dgate and dup with dW_down;
// its gate and up: dx with dW_gate and dW_up): alone, each filled about one
// block an SM for its whole run; together the weight gradient's blocks run
// beside the rows' longer ones. The first rows.x * rows.y blocks are the
// rows launch's (in its grid's order), the rest the weight launch's.
struct FusedGrid {
  int64_t rows_x, rows_y, weight_x, weight_y;
};

template <bool kTensorCores, RowsMode kMode>
__global__ void __launch_bounds__(kThreads, kBlocksPerSm)
    grouped_rows_and_weight_kernel(RowsProblem rows, WeightProblem weight, FusedGrid grid) {
  await_prior_grids();
  __shared__ __align__(128) unsigned char shared[kSharedBytes<kTensorCores>];
  int64_t b = blockIdx.x;
  if (b < grid.rows_x * grid.rows_y) {
    rows_block<kTensorCores, true, kMode>(rows, b % grid.rows_x, b / grid.rows_x, shared);
    return;
  }
  b -= grid.rows_x * grid.rows_y;
  weight_block<kTensorCores>(weight, b % grid.weight_x, b / grid.weight_x % grid.weight_y,
                             int(b / (grid.weight_x * grid.weight_y)), shared);
}

// dW_e += partials[0][e] + partials[1][e] + ... in chunk order (each of a
// pair's gradients from its own partials); an expert without rows keeps its
// dW bit for bit. A thread takes W consecutive elements (W = 4 where an
// expert's dW is whole quads and every buffer 16-byte aligned, so a quad
// never straddles two experts): a thread an element, with its 64-bit
// divisions and its own look-up of the expert, took 6 us a call at d 128.
template <int W>
__global__ void grouped_weight_reduce(WeightProblem p) {
  await_prior_grids();
  const int64_t per_expert = p.n * p.k, count = per_expert * p.experts;
  for (int64_t q = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; q < count * p.pairs() / W;
       q += int64_t(gridDim.x) * blockDim.x) {
    const int64_t at = q * W;
    const int pair = int(at / count);
    const int64_t i = at % count;
    const ExpertRange r = expert_range(p.offsets, int(i / per_expert), p.capacity);
    if (r.end == r.begin) continue;
    const float* partials = p.partials_of(pair);
    float* dw = p.dw_of(pair) + i;
    if constexpr (W == 4) {
      float4 sum = load4(partials + i, 0);
      for (int s = 1; s < p.splits; ++s) sum += load4(partials + int64_t(s) * count + i, 0);
      store4(dw, 0, load4(dw, 0) + sum);
    } else {
      float sum = partials[i];
      for (int s = 1; s < p.splits; ++s) sum += partials[int64_t(s) * count + i];
      *dw += sum;
    }
  }
}

// The operands of a pair or a SwiGLU layer that must share one shape.
void require_same_shape(const char* what, std::initializer_list<ConstMatrix> matrices) {
  for (const ConstMatrix& m : matrices)
    if (m.rows != matrices.begin()->rows || m.cols != matrices.begin()->cols)
      throw std::invalid_argument(std::string("CUDA ") + what + ": operands that must share a shape differ");
}

// The grid's limits, and row strides below 2^24 (offsets inside a tile are 32-bit).
void check_shape(int64_t x, int64_t y, int64_t z, std::initializer_list<int64_t> widths, const char* what) {
  bool ok = x <= 0x7fffffff && y <= 65535 && z <= 65535;
  for (int64_t w : widths) ok = ok && w < (int64_t(1) << 24);
  if (!ok) throw std::invalid_argument(std::string("CUDA ") + what + ": the problem is too large");
}

// C = y or dx (the capacity is its rows), A = x or dy, B from the stacked
// weights; the mode and its extra operands as the caller sets them after.
template <bool kBFastJ>
RowsProblem rows_problem(Matrix c, ConstMatrix a, ConstMatrix w, ExpertRows rows, bool accumulate) {
  // Forward: B_e(t, j) = W_e[j, t], contiguous along t; backward input: B_e(t, j) = W_e[t, j].
  const int b_t = kBFastJ ? int(w.cols) : 1, b_j = kBFastJ ? 1 : int(w.cols);
  return RowsProblem{rows.offsets, rows.experts, c.rows, c.cols, a.cols, a.data, int(a.cols),
                     w.data,       w.numel(),    b_t,    b_j,    c.data, c.cols, accumulate};
}

bool rows_empty(const RowsProblem& p) { return p.capacity <= 0 || p.n <= 0 || p.experts <= 0; }

// A rows launch's grid: M tiles over the experts (each leaves at most one
// partial tile) by column tiles of C (apart: of C and of C2).
struct RowsGrid {
  int64_t x, y;
};
// One product's grid over `capacity` rows with n outputs a row.
RowsGrid rows_grid(int64_t capacity, int64_t n, int experts) {
  return {(capacity + kTileM - 1) / kTileM + experts, (n + kTileN - 1) / kTileN};
}
RowsGrid rows_grid(const RowsProblem& p) {
  const RowsGrid one = rows_grid(p.capacity, p.n, p.experts);
  return {one.x, p.mode == RowsMode::apart ? 2 * one.y : one.y};
}

template <bool kBFastJ>
void launch_rows(cudaStream_t stream, const RowsProblem& p, int64_t a_cols, int64_t w_cols, bool tensor_cores,
                 const char* what) {
  if (rows_empty(p)) return;
  const RowsGrid g = rows_grid(p);
  check_shape(g.x, g.y, 1, {a_cols, w_cols}, what);
  const dim3 grid{unsigned(g.x), unsigned(g.y)};
  auto launch = [&](auto mode) {
    if (tensor_cores)
      grouped_rows_kernel<true, kBFastJ, mode.value><<<grid, kThreads, 0, stream>>>(p);
    else
      grouped_rows_kernel<false, kBFastJ, mode.value><<<grid, kThreads, 0, stream>>>(p);
  };
  using Store = std::integral_constant<RowsMode, RowsMode::store>;
  if constexpr (kBFastJ) {  // backward input
    if (p.mode == RowsMode::then_add)
      launch(std::integral_constant<RowsMode, RowsMode::then_add>{});
    else if (p.mode == RowsMode::apart)
      launch(std::integral_constant<RowsMode, RowsMode::apart>{});
    else if (p.mode == RowsMode::swiglu_backward)
      launch(std::integral_constant<RowsMode, RowsMode::swiglu_backward>{});
    else
      launch(Store{});
  } else {  // forward
    if (p.mode == RowsMode::swiglu_forward)
      launch(std::integral_constant<RowsMode, RowsMode::swiglu_forward>{});
    else if (p.mode == RowsMode::apart)
      launch(std::integral_constant<RowsMode, RowsMode::apart>{});
    else
      launch(Store{});
  }
  LIVS_CUDA_CHECK_LAUNCH();
}

}  // namespace

void grouped_matmul(cudaStream_t stream, Matrix y, ConstMatrix x, ConstMatrix w, ExpertRows rows,
                    bool accumulate, bool tensor_cores) {
  launch_rows<false>(stream, rows_problem<false>(y, x, w, rows, accumulate), x.cols, w.cols, tensor_cores,
                     "grouped_matmul");
}

void grouped_matmul_halves(cudaStream_t stream, Matrix y, Matrix y_second, ConstMatrix x, ConstMatrix w,
                           ExpertRows rows, bool tensor_cores) {
  require_same_shape("grouped_matmul_halves", {y, y_second});
  // The reduction cut at a multiple of 4 columns (16-byte rows for both
  // halves' loads) near its middle; the halves are products of their own,
  // side by side in one launch (apart).
  RowsProblem p = rows_problem<false>(y, x, w, rows, false);
  const int64_t first = std::min<int64_t>(x.cols, (x.cols / 2 + 3) / 4 * 4);
  p.mode = RowsMode::apart;
  p.depth = first;
  p.depth2 = x.cols - first;
  p.a2 = x.data + first;
  p.b2 = w.data + first;  // forward: B_e(t, j) = W_e[j, t], t contiguous
  p.c2 = y_second.data;
  launch_rows<false>(stream, p, x.cols, w.cols, tensor_cores, "grouped_matmul_halves");
}

void grouped_swiglu_forward(cudaStream_t stream, Matrix h, Matrix gate, Matrix up, ConstMatrix x,
                            ConstMatrix w_gate, ConstMatrix w_up, ExpertRows rows, bool tensor_cores) {
  require_same_shape("grouped_swiglu_forward", {h, gate, up});
  require_same_shape("grouped_swiglu_forward", {w_gate, w_up});
  RowsProblem p = rows_problem<false>(gate, x, w_gate, rows, false);
  p.mode = RowsMode::swiglu_forward;
  p.b2 = w_up.data;
  p.c2 = up.data;
  p.h = h.data;
  launch_rows<false>(stream, p, x.cols, w_gate.cols, tensor_cores, "grouped_swiglu_forward");
}

namespace {

RowsProblem swiglu_backward_problem(Matrix dgate, Matrix dup, ConstMatrix dy, ConstMatrix w_down,
                                    ConstMatrix gate, ConstMatrix up, ExpertRows rows) {
  require_same_shape("grouped_swiglu_backward_input", {dgate, dup, gate, up});
  RowsProblem p = rows_problem<true>(dgate, dy, w_down, rows, false);
  p.mode = RowsMode::swiglu_backward;
  p.c2 = dup.data;
  p.g = gate.data;
  p.u = up.data;
  return p;
}

RowsProblem input_pair_problem(Matrix dx, ConstMatrix dy0, ConstMatrix w0, ConstMatrix dy1, ConstMatrix w1,
                               ExpertRows rows, bool accumulate) {
  require_same_shape("grouped_matmul_backward_input_pair", {dy0, dy1});
  require_same_shape("grouped_matmul_backward_input_pair", {w0, w1});
  RowsProblem p = rows_problem<true>(dx, dy0, w0, rows, accumulate);
  p.mode = RowsMode::then_add;
  p.a2 = dy1.data;
  p.b2 = w1.data;
  return p;
}

}  // namespace

void grouped_swiglu_backward_input(cudaStream_t stream, Matrix dgate, Matrix dup, ConstMatrix dy,
                                   ConstMatrix w_down, ConstMatrix gate, ConstMatrix up, ExpertRows rows,
                                   bool tensor_cores) {
  launch_rows<true>(stream, swiglu_backward_problem(dgate, dup, dy, w_down, gate, up, rows), dy.cols,
                    w_down.cols, tensor_cores, "grouped_swiglu_backward_input");
}

void grouped_matmul_backward_input(cudaStream_t stream, Matrix dx, ConstMatrix dy, ConstMatrix w,
                                   ExpertRows rows, bool accumulate, bool tensor_cores) {
  launch_rows<true>(stream, rows_problem<true>(dx, dy, w, rows, accumulate), dy.cols, w.cols, tensor_cores,
                    "grouped_matmul_backward_input");
}

void grouped_matmul_backward_input_pair(cudaStream_t stream, Matrix dx, ConstMatrix dy0, ConstMatrix w0,
                                        ConstMatrix dy1, ConstMatrix w1, ExpertRows rows, bool accumulate,
                                        bool tensor_cores) {
  launch_rows<true>(stream, input_pair_problem(dx, dy0, w0, dy1, w1, rows, accumulate), dy0.cols, w0.cols,
                    tensor_cores, "grouped_matmul_backward_input_pair");
}

namespace {
// The current device's multiprocessors (132 on an H100 / H200 SXM).
int64_t multiprocessors() {
  int device = 0, sms = 0;
  LIVS_CUDA_CHECK(cudaGetDevice(&device));
  LIVS_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  return sms;
}

// Blocks of a grouped launch that one wave of the device holds.
int64_t blocks_in_one_wave() { return kBlocksPerSm * multiprocessors(); }
}  // namespace

// Both halves' blocks in one wave: at 2048 tokens, top-2, d 128 the down
// projection is 144 blocks of 528 and its halves ran 2% faster a MoE step on
// an H200; at 16384 tokens, d 256 (2080 blocks) the halves were 1.5% slower.
bool grouped_split_fits_one_wave(int64_t capacity, int64_t n, int experts) {
  if (capacity <= 0 || n <= 0 || experts <= 0) return false;
  const RowsGrid one = rows_grid(capacity, n, experts);
  return 2 * one.x * one.y <= blocks_in_one_wave();
}

int grouped_weight_splits(int64_t capacity, int64_t n, int64_t k, int experts) {
  if (capacity <= 0 || experts <= 0) return 1;
  const int64_t tiles = ((n + kTileM - 1) / kTileM) * ((k + kTileN - 1) / kTileN) * experts;
  // About two blocks per SM, and at least 128 rows per chunk on average
  // (below that the partials cost more than they save).
  const int64_t blocks = 2 * multiprocessors();
  const int64_t for_blocks = (blocks + tiles - 1) / tiles, for_rows = capacity / (int64_t(experts) * 128);
  return int(std::max<int64_t>(1, std::min<int64_t>({for_blocks, for_rows, 16})));
}

namespace {

bool weight_empty(const WeightProblem& p) {
  return p.capacity <= 0 || p.n <= 0 || p.k <= 0 || p.experts <= 0;
}

// The weight launch's grid: tiles of dW by (pair, expert, chunk).
dim3 weight_grid(const WeightProblem& p) {
  const int64_t gx = (p.n + kTileM - 1) / kTileM, gy = (p.k + kTileN - 1) / kTileN;
  const int64_t gz = int64_t(p.experts) * p.splits * p.pairs();
  check_shape(gx, gy, gz, {p.n, p.k}, "grouped_matmul_backward_weight");
  if (p.splits > 1 && !p.partials)
    throw std::invalid_argument("CUDA grouped_matmul_backward_weight: no partials");
  return {unsigned(gx), unsigned(gy), unsigned(gz)};
}

void launch_weight_reduce(cudaStream_t stream, const WeightProblem& p) {
  if (p.splits <= 1) return;
  const int64_t count = p.n * p.k * p.experts * p.pairs();
  const bool quads =
      p.n * p.k % 4 == 0 && aligned16(p.dw, p.partials, p.dw2);  // (a null dw2 counts as aligned)
  const int64_t items = quads ? count / 4 : count;
  const unsigned blocks = unsigned(std::min<int64_t>((items + 255) / 256, 4096));
  if (quads)
    grouped_weight_reduce<4><<<blocks, 256, 0, stream>>>(p);
  else
    grouped_weight_reduce<1><<<blocks, 256, 0, stream>>>(p);
  LIVS_CUDA_CHECK_LAUNCH();
}

void launch_weight(cudaStream_t stream, const WeightProblem& p, bool tensor_cores) {
  if (weight_empty(p)) return;
  const dim3 grid = weight_grid(p);
  if (tensor_cores)
    grouped_weight_kernel<true><<<grid, kThreads, 0, stream>>>(p);
  else
    grouped_weight_kernel<false><<<grid, kThreads, 0, stream>>>(p);
  LIVS_CUDA_CHECK_LAUNCH();
  launch_weight_reduce(stream, p);
}

WeightProblem weight_problem(Matrix dw, ConstMatrix dy, ConstMatrix x, ExpertRows rows, float* partials,
                             int splits) {
  return WeightProblem{rows.offsets, dy.rows, dw.rows,  dw.cols,      dy.data,
                       x.data,       dw.data, partials, rows.experts, splits};
}

WeightProblem weight_pair_problem(Matrix dw0, ConstMatrix dy0, Matrix dw1, ConstMatrix dy1, ConstMatrix x,
                                  ExpertRows rows, float* partials, int splits) {
  require_same_shape("grouped_matmul_backward_weight_pair", {dw0, dw1});
  require_same_shape("grouped_matmul_backward_weight_pair", {dy0, dy1});
  WeightProblem p = weight_problem(dw0, dy0, x, rows, partials, splits);
  p.dy2 = dy1.data;
  p.dw2 = dw1.data;
  return p;
}

// A backward-input rows problem (then_add or swiglu_backward) and a weight
// gradient in one launch (grouped_rows_and_weight_kernel), then the weight's
// chunk sums, where the rows product alone is less than one wave of blocks
// (2048 tokens at d 128: 144 blocks); each alone where the other is empty or
// the rows fill the device themselves (at 16384 tokens, d 256, the input
// pair's 2080 blocks: one launch took 479 us against 217 + 199 for two).
void launch_rows_and_weight(cudaStream_t stream, const RowsProblem& rows, int64_t a_cols, int64_t w_cols,
                            const WeightProblem& weight, bool tensor_cores, const char* what) {
  const RowsGrid r = rows_grid(rows);
  if (rows_empty(rows) || weight_empty(weight) || r.x * r.y > blocks_in_one_wave()) {
    launch_rows<true>(stream, rows, a_cols, w_cols, tensor_cores, what);
    launch_weight(stream, weight, tensor_cores);
    return;
  }
  const dim3 w = weight_grid(weight);
  const FusedGrid grid{r.x, r.y, w.x, w.y};
  check_shape(r.x, r.y, 1, {a_cols, w_cols}, what);
  const int64_t blocks = grid.rows_x * grid.rows_y + int64_t(w.x) * w.y * w.z;
  if (blocks > 0x7fffffff)
    throw std::invalid_argument(std::string("CUDA ") + what + ": the problem is too large");
  auto launch = [&](auto tc, auto mode) {
    grouped_rows_and_weight_kernel<decltype(tc)::value, decltype(mode)::value>
        <<<unsigned(blocks), kThreads, 0, stream>>>(rows, weight, grid);
  };
  using SwigluBackward = std::integral_constant<RowsMode, RowsMode::swiglu_backward>;
  using ThenAdd = std::integral_constant<RowsMode, RowsMode::then_add>;
  using Apart = std::integral_constant<RowsMode, RowsMode::apart>;
  if (rows.mode == RowsMode::swiglu_backward)
    tensor_cores ? launch(std::true_type{}, SwigluBackward{}) : launch(std::false_type{}, SwigluBackward{});
  else if (rows.mode == RowsMode::apart)
    tensor_cores ? launch(std::true_type{}, Apart{}) : launch(std::false_type{}, Apart{});
  else
    tensor_cores ? launch(std::true_type{}, ThenAdd{}) : launch(std::false_type{}, ThenAdd{});
  LIVS_CUDA_CHECK_LAUNCH();
  launch_weight_reduce(stream, weight);
}

}  // namespace

void grouped_matmul_backward_weight(cudaStream_t stream, Matrix dw, ConstMatrix dy, ConstMatrix x,
                                    ExpertRows rows, bool tensor_cores, float* partials, int splits) {
  launch_weight(stream, weight_problem(dw, dy, x, rows, partials, splits), tensor_cores);
}

void grouped_matmul_backward_weight_pair(cudaStream_t stream, Matrix dw0, ConstMatrix dy0, Matrix dw1,
                                         ConstMatrix dy1, ConstMatrix x, ExpertRows rows, bool tensor_cores,
                                         float* partials, int splits) {
  launch_weight(stream, weight_pair_problem(dw0, dy0, dw1, dy1, x, rows, partials, splits), tensor_cores);
}

void grouped_swiglu_backward(cudaStream_t stream, Matrix dw_down, Matrix dgate, Matrix dup, ConstMatrix dy,
                             ConstMatrix h, ConstMatrix w_down, ConstMatrix gate, ConstMatrix up,
                             ExpertRows rows, bool tensor_cores, float* partials, int splits) {
  launch_rows_and_weight(stream, swiglu_backward_problem(dgate, dup, dy, w_down, gate, up, rows), dy.cols,
                         w_down.cols, weight_problem(dw_down, dy, h, rows, partials, splits), tensor_cores,
                         "grouped_swiglu_backward");
}

void grouped_gate_up_backward(cudaStream_t stream, Matrix dw_gate, Matrix dw_up, Matrix dx, Matrix dx_up,
                              ConstMatrix dgate, ConstMatrix dup, ConstMatrix x, ConstMatrix w_gate,
                              ConstMatrix w_up, ExpertRows rows, bool accumulate, bool tensor_cores,
                              float* partials, int splits) {
  RowsProblem input = input_pair_problem(dx, dgate, w_gate, dup, w_up, rows, accumulate);
  // With dx_up the two products run side by side, each block one of them
  // (twice the blocks, half the chain each).
  if (dx_up.data) {
    require_same_shape("grouped_gate_up_backward", {dx, dx_up});
    input.mode = RowsMode::apart;
    input.c2 = dx_up.data;
    input.depth2 = input.depth;
  }
  launch_rows_and_weight(stream, input, dgate.cols, w_gate.cols,
                         weight_pair_problem(dw_gate, dgate, dw_up, dup, x, rows, partials, splits),
                         tensor_cores, "grouped_gate_up_backward");
}

}  // namespace livs::evaluator::cuda
