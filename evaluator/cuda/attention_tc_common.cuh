#pragma once
// Shared by the tensor-core attention kernels (attention_tc_forward.cu,
// attention_tc_backward.cu): bf16 mma.sync m16n8k16 with fp32 accumulation,
// ldmatrix fragment loads and the staging of fp32 rows into bf16 shared tiles.
//
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16", bf16), with
// g = lane / 4 and t = lane % 4:
//   A (16 x 16, row-major): a0 = (g, 2t..2t+1), a1 = (g+8, 2t..), a2 = (g, 2t+8..), a3 = (g+8, 2t+8..)
//   B (16 x 8, "col"):      b0 = (k 2t..2t+1, n g), b1 = (k 2t+8..2t+9, n g)
//   C (16 x 8, fp32):       c0, c1 = (g, 2t..2t+1), c2, c3 = (g+8, 2t..2t+1)
// Two neighbouring C tiles (16 columns) are, packed to bf16, exactly the A
// fragment of the next product over those 16 columns (P V, dS K, ...), so
// probabilities never leave registers.
//
// Shared tiles are bf16 rows of head_dim values with a stride of head_dim + 8
// (16 bytes of padding): the 8 row addresses of each ldmatrix phase then fall
// in 8 different groups of 4 banks for every head_dim that is a multiple of 16.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>

#include "evaluator/cuda/kernels.hpp"  // backend.hpp, with nvcc's #554 silenced

namespace livs::evaluator::cuda::tc {

constexpr int kMmaRows = 16;  // rows of an mma m-tile
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

template <int kHd>
constexpr int stride() {
  return kHd + 8;
}

// The blocks of a causal attention kernel, longest first over the whole
// grid: a 1-D grid of tiles x heads x batch whose slowest index is the
// tile's rank (rank 0: the tile with the most work, for every head and
// sequence), so the last blocks the GPU dispatches are the shortest ones.
// With the tile index fastest (a 3-D grid) every (head, sequence) had its
// longest tile in the last wave too, and that wave set the kernel's tail.
struct TileOrder {
  int rank, head, batch;
};
__device__ __forceinline__ TileOrder tile_order(int heads, int batch) {
  const int per_rank = heads * batch, rank = int(blockIdx.x) / per_rank, rest = int(blockIdx.x) % per_rank;
  return {rank, rest % heads, rest / heads};
}
// The 1-D grid for `tiles` tiles of every head and sequence.
inline dim3 tile_order_grid(int64_t tiles, int heads, int batch) {
  const int64_t blocks = tiles * heads * batch;
  if (blocks > 0x7fffffff) throw std::invalid_argument("CUDA attention: more than 2^31 - 1 tiles");
  return dim3(unsigned(blocks));
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // .x (low half) = lo
  return *reinterpret_cast<const uint32_t*>(&v);
}

// 2^x with the hardware approximation (relative error ~2^-22, far below bf16's).
__device__ __forceinline__ float exp2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// D += A B on the tensor cores.
__device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const __nv_bfloat16* p) {
  const auto address = static_cast<uint32_t>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const __nv_bfloat16* p) {
  const auto address = static_cast<uint32_t>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}

// The three ways a 16 x 16 block of a row-major shared tile (rows r0.., columns
// c0..) becomes mma operands. `tile` points at row 0, column 0.
//
// A fragment of rows r0..r0+15 over columns c0..c0+15 (Q, K or dO as the left operand).
template <int kHd>
__device__ __forceinline__ void load_a(uint32_t (&a)[4], const __nv_bfloat16* tile, int r0, int c0,
                                       int lane) {
  ldmatrix_x4(a, tile + (r0 + (lane & 7) + ((lane >> 3) & 1) * 8) * stride<kHd>() + c0 + (lane >> 4) * 8);
}
// B fragments of the product with tile^T: rows r0..r0+15 are the 16 output
// columns (two n-tiles), columns c0..c0+15 the reduction. b[0], b[1] serve
// n-tile r0, b[2], b[3] n-tile r0 + 8 (K in Q K^T, V in dO V^T, Q in K Q^T).
template <int kHd>
__device__ __forceinline__ void load_b_transposed(uint32_t (&b)[4], const __nv_bfloat16* tile, int r0, int c0,
                                                  int lane) {
  ldmatrix_x4(b, tile + (r0 + (lane & 7) + (lane >> 4) * 8) * stride<kHd>() + c0 + ((lane >> 3) & 1) * 8);
}
// B fragments of the product with the tile itself: rows r0..r0+15 are the
// reduction, columns c0..c0+15 the 16 output columns. b[0], b[1] serve n-tile
// c0, b[2], b[3] n-tile c0 + 8 (V in P V, dO in P^T dO, K in dS K, Q in dS^T Q).
template <int kHd>
__device__ __forceinline__ void load_b(uint32_t (&b)[4], const __nv_bfloat16* tile, int r0, int c0,
                                       int lane) {
  ldmatrix_x4_trans(b,
                    tile + (r0 + (lane & 7) + ((lane >> 3) & 1) * 8) * stride<kHd>() + c0 + (lane >> 4) * 8);
}

// The A fragment of columns 16 kk .. 16 kk + 15 of a row block held as C tiles.
template <int kTiles>
__device__ __forceinline__ void c_to_a(uint32_t (&a)[4], const float (&c)[kTiles][4], int kk) {
  a[0] = pack_bf16(c[2 * kk][0], c[2 * kk][1]);
  a[1] = pack_bf16(c[2 * kk][2], c[2 * kk][3]);
  a[2] = pack_bf16(c[2 * kk + 1][0], c[2 * kk + 1][1]);
  a[3] = pack_bf16(c[2 * kk + 1][2], c[2 * kk + 1][3]);
}

// Rows first..first+kRows-1 of an fp32 [.., row_stride] array (row r at
// src + r * row_stride, kHd contiguous values; rows at or past `rows` read as
// zero) on their way into a bf16 shared tile, staged by a block of kThreads:
// load() issues the 16-byte global loads into registers, store() converts and
// writes the tile. Between the two the loads are in flight, so a kernel can
// load the next tile before computing on the current one. src and row_stride
// keep 16-byte alignment (checked by the launcher).
template <int kHd, int kRows, int kThreads>
struct RowStage {
  static constexpr int kVectors = kHd / 4;
  static constexpr int kPerThread = kRows * kVectors / kThreads;
  static_assert(kRows * kVectors % kThreads == 0, "every thread stages the same number of vectors");
  float4 x[kPerThread];

  __device__ __forceinline__ void load(const float* src, int64_t row_stride, int first, int rows) {
#pragma unroll
    for (int p = 0; p < kPerThread; ++p) {
      const int idx = threadIdx.x + p * kThreads, r = idx / kVectors, c = (idx % kVectors) * 4,
                row = first + r;
      x[p] = row < rows ? __ldg(reinterpret_cast<const float4*>(src + row * row_stride + c))
                        : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    }
  }
  __device__ __forceinline__ void store(__nv_bfloat16* tile) const {
#pragma unroll
    for (int p = 0; p < kPerThread; ++p) {
      const int idx = threadIdx.x + p * kThreads, r = idx / kVectors, c = (idx % kVectors) * 4;
      uint2 packed;
      packed.x = pack_bf16(x[p].x, x[p].y);
      packed.y = pack_bf16(x[p].z, x[p].w);
      *reinterpret_cast<uint2*>(tile + r * stride<kHd>() + c) = packed;
    }
  }
};

// Loads and stores at once, a vector at a time (few registers live). With
// `copy` (a bf16 array laid out as src; rows at or past `rows` are not
// written), the bf16 values are also left there: a kernel that owns these rows
// leaves their bf16 copy for a later kernel.
template <int kHd, int kRows, int kThreads>
__device__ __forceinline__ void stage_rows_and_copy(__nv_bfloat16* tile, __nv_bfloat16* copy,
                                                    const float* src, int64_t row_stride, int first,
                                                    int rows) {
  constexpr int kVectors = kHd / 4;
  for (int idx = threadIdx.x; idx < kRows * kVectors; idx += kThreads) {
    const int r = idx / kVectors, c = (idx % kVectors) * 4, row = first + r;
    float4 x = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (row < rows) x = __ldg(reinterpret_cast<const float4*>(src + row * row_stride + c));
    uint2 packed;
    packed.x = pack_bf16(x.x, x.y);
    packed.y = pack_bf16(x.z, x.w);
    *reinterpret_cast<uint2*>(tile + r * stride<kHd>() + c) = packed;
    if (copy && row < rows) *reinterpret_cast<uint2*>(copy + row * row_stride + c) = packed;
  }
}

template <int kHd, int kRows, int kThreads>
__device__ __forceinline__ void stage_rows(__nv_bfloat16* tile, const float* src, int64_t row_stride,
                                           int first, int rows) {
  stage_rows_and_copy<kHd, kRows, kThreads>(tile, nullptr, src, row_stride, first, rows);
}

__device__ __forceinline__ void cp_async_16(void* shared, const void* global, bool valid) {
  const auto address = static_cast<uint32_t>(__cvta_generic_to_shared(shared));
  // src-size 0 fills the 16 bytes with zeros and reads nothing.
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(address), "l"(global),
               "r"(valid ? 16 : 0)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_all;" ::: "memory"); }

// Rows first..first+kRows-1 of a bf16 [.., row_stride] array (kHd contiguous
// values per row; rows at or past `rows` become zeros) copied as they are
// into a bf16 shared tile by cp.async, 16 bytes (8 values) a piece, by a block
// of kThreads. Not committed: the caller commits the group and, before the
// tile is read, waits for it and passes a barrier (other threads' pieces).
// src and row_stride keep 16-byte alignment.
template <int kHd, int kRows, int kThreads>
__device__ __forceinline__ void copy_rows_async(__nv_bfloat16* tile, const __nv_bfloat16* src,
                                                int64_t row_stride, int first, int rows) {
  constexpr int kPieces = kHd / 8, kTotal = kRows * kPieces;
#pragma unroll
  for (int p = 0; p < (kTotal + kThreads - 1) / kThreads; ++p) {
    const int idx = int(threadIdx.x) + p * kThreads, r = idx / kPieces, c = (idx % kPieces) * 8,
              row = first + r;
    if (kTotal % kThreads != 0 && idx >= kTotal) break;
    cp_async_16(tile + r * stride<kHd>() + c, src + (row < rows ? row : 0) * row_stride + c, row < rows);
  }
}

// How the tiles of the other side (keys in the forward and the dq kernel,
// queries in the dk/dv kernel) reach their bf16 shared buffer:
//   direct: 16-byte loads, converted and stored at once (put);
//   registers: the next tile's loads are held in registers while the current
//     tile is computed (fetch), converted and stored at put;
//   async_copy: the next tile's fp32 rows are copied by cp.async into an fp32
//     shared staging area while the current tile is computed (no registers
//     held), converted at put. Each thread converts exactly the 16-byte pieces
//     it copied, so waiting for its own copies is enough (no extra barrier).
enum class Staging { direct, registers, async_copy };

template <int kHd, int kRows, int kThreads, Staging kMode>
struct TileStage;
template <int kHd, int kRows, int kThreads>
struct TileStage<kHd, kRows, kThreads, Staging::direct> {
  static constexpr std::size_t kStagingBytes = 0;
  __device__ explicit TileStage(float*) {}
  __device__ __forceinline__ void fetch(const float*, int64_t, int, int) {}
  __device__ __forceinline__ void put(__nv_bfloat16* tile, const float* src, int64_t row_stride, int first,
                                      int rows) const {
    stage_rows<kHd, kRows, kThreads>(tile, src, row_stride, first, rows);
  }
};
template <int kHd, int kRows, int kThreads>
struct TileStage<kHd, kRows, kThreads, Staging::registers> {
  static constexpr std::size_t kStagingBytes = 0;
  RowStage<kHd, kRows, kThreads> next;
  __device__ explicit TileStage(float*) {}
  __device__ __forceinline__ void fetch(const float* src, int64_t row_stride, int first, int rows) {
    next.load(src, row_stride, first, rows);
  }
  __device__ __forceinline__ void put(__nv_bfloat16* tile, const float*, int64_t, int, int) const {
    next.store(tile);
  }
};
template <int kHd, int kRows, int kThreads>
struct TileStage<kHd, kRows, kThreads, Staging::async_copy> {
  static constexpr int kVectors = kHd / 4;
  static constexpr int kPerThread = kRows * kVectors / kThreads;
  static_assert(kRows * kVectors % kThreads == 0, "every thread stages the same number of vectors");
  static constexpr std::size_t kStagingBytes = sizeof(float) * kRows * kHd;
  float* staging;  // [kRows][kHd] fp32 in shared memory
  __device__ explicit TileStage(float* staging_area) : staging(staging_area) {}
  __device__ __forceinline__ void fetch(const float* src, int64_t row_stride, int first, int rows) {
#pragma unroll
    for (int p = 0; p < kPerThread; ++p) {
      const int idx = threadIdx.x + p * kThreads, r = idx / kVectors, c = (idx % kVectors) * 4,
                row = first + r;
      cp_async_16(staging + idx * 4, src + (row < rows ? row : 0) * row_stride + c, row < rows);
    }
    cp_async_commit();
  }
  __device__ __forceinline__ void put(__nv_bfloat16* tile, const float*, int64_t, int, int) const {
    cp_async_wait_all();
#pragma unroll
    for (int p = 0; p < kPerThread; ++p) {
      const int idx = threadIdx.x + p * kThreads, r = idx / kVectors, c = (idx % kVectors) * 4;
      const float4 x = *reinterpret_cast<const float4*>(staging + idx * 4);
      uint2 packed;
      packed.x = pack_bf16(x.x, x.y);
      packed.y = pack_bf16(x.z, x.w);
      *reinterpret_cast<uint2*>(tile + r * stride<kHd>() + c) = packed;
    }
  }
};

template <int kM, int kTiles>
__device__ __forceinline__ void zero(float (&c)[kM][kTiles][4]) {
#pragma unroll
  for (int m = 0; m < kM; ++m)
#pragma unroll
    for (int n = 0; n < kTiles; ++n) c[m][n][0] = c[m][n][1] = c[m][n][2] = c[m][n][3] = 0.0f;
}

// A warp owns kM blocks of 16 rows (m-tiles), r0 + 16 m .. r0 + 16 m + 15:
// the B fragments each ldmatrix brings are used by kM independent mma
// chains, which is what keeps the tensor cores busy with few warps.
//
// The A fragments of the warp's rows over all kHd columns.
template <int kM, int kHd>
__device__ __forceinline__ void load_rows_a(uint32_t (&a)[kM][kHd / 16][4], const __nv_bfloat16* tile, int r0,
                                            int lane) {
#pragma unroll
  for (int m = 0; m < kM; ++m)
#pragma unroll
    for (int c = 0; c < kHd / 16; ++c) load_a<kHd>(a[m][c], tile, r0 + 16 * m, c * 16, lane);
}

// The two products every kernel is made of (one warp, kM m-tiles):
//   acc (16 kM x kCols) += A tile^T, A the warp's rows x kHd in registers and
//     `tile` kCols rows of kHd (S = Q K^T, dP = dO V^T, S^T = K Q^T, ...);
//   acc (16 kM x kHd) += P tile, P the warp's rows x kK held as fp32 C tiles
//     (rounded to bf16 here) and `tile` kK rows of kHd (O += P V, dQ += dS K,
//     dV += P^T dO, dK += dS^T Q).
template <int kM, int kHd, int kCols>
__device__ __forceinline__ void mma_a_tile_t(float (&acc)[kM][kCols / 8][4],
                                             const uint32_t (&a)[kM][kHd / 16][4], const __nv_bfloat16* tile,
                                             int lane) {
#pragma unroll
  for (int c = 0; c < kHd / 16; ++c) {
#pragma unroll
    for (int np = 0; np < kCols / 16; ++np) {
      uint32_t b[4];
      load_b_transposed<kHd>(b, tile, np * 16, c * 16, lane);
#pragma unroll
      for (int m = 0; m < kM; ++m) {
        mma(acc[m][2 * np], a[m][c], b[0], b[1]);
        mma(acc[m][2 * np + 1], a[m][c], b[2], b[3]);
      }
    }
  }
}
template <int kM, int kHd, int kK>
__device__ __forceinline__ void mma_p_tile(float (&acc)[kM][kHd / 8][4], const float (&p)[kM][kK / 8][4],
                                           const __nv_bfloat16* tile, int lane) {
#pragma unroll
  for (int kk = 0; kk < kK / 16; ++kk) {
    uint32_t pf[kM][4];
#pragma unroll
    for (int m = 0; m < kM; ++m) c_to_a(pf[m], p[m], kk);
#pragma unroll
    for (int dp = 0; dp < kHd / 16; ++dp) {
      uint32_t b[4];
      load_b<kHd>(b, tile, kk * 16, dp * 16, lane);
#pragma unroll
      for (int m = 0; m < kM; ++m) {
        mma(acc[m][2 * dp], pf[m], b[0], b[1]);
        mma(acc[m][2 * dp + 1], pf[m], b[2], b[3]);
      }
    }
  }
}

// Whether query i sees key j (causal, sliding window, both inside the sequence).
__device__ __forceinline__ bool visible(int i, int j, int seq, int window) {
  return j <= i && i < seq && (window <= 0 || i - j < window);
}

// Sums a value over the 4 lanes of a quad (the lanes that share a C-fragment row).
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}
__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}

}  // namespace livs::evaluator::cuda::tc
