#pragma once
// bf16 mma.sync m16n8k16 operands from shared tiles of any row stride, in
// both orientations, for kernels whose tile widths are known only at run time
// (ssd_tc.cu). The primitives (mma, ldmatrix, pack_bf16, c_to_a) and the
// fragment layouts are attention_tc_common.cuh's.
//
// A tile is bf16 rows of `stride` values (stride a multiple of 8 and = 8
// mod 16, e.g. width + 8 for a width that is a multiple of 16: the 8 row
// addresses of each ldmatrix phase then fall in different bank groups).
#include <cstddef>
#include <cstdint>

#include "evaluator/cuda/attention_tc_common.cuh"
#include "evaluator/cuda/device_math.cuh"

namespace livs::evaluator::cuda::tc {

using bf16 = __nv_bfloat16;

struct SharedTile {
  __nv_bfloat16* p;
  int stride;
  __device__ __nv_bfloat16& operator()(int r, int c) const { return p[r * stride + c]; }
};

// Tile widths are rounded up to multiples of 16 (the mma reduction), the
// padding zero.
__host__ __device__ inline int padded16(int64_t n) { return int((n + 15) / 16 * 16); }

// Bytes of a rows x width16 tile in shared memory.
inline std::size_t tile_bytes(int rows, int width16) {
  return std::size_t(rows) * (width16 + 8) * sizeof(__nv_bfloat16);
}

// The next rows x width16 tile at `next` (which moves past it).
__device__ inline SharedTile carve(__nv_bfloat16*& next, int rows, int width16) {
  const SharedTile t{next, width16 + 8};
  next += rows * (width16 + 8);
  return t;
}

// Quads (four consecutive columns) of a rows x 4*quads area by the whole
// block, kInFlight a thread at a time: load(r, c) for quad c of row r, then
// store(r, c, value) once all kInFlight loads are issued (a loop that waited
// on each load in turn left the chunk kernels waiting on global memory most of
// their time). Each thread divides once, for its first quad; every later one
// is a step of blockDim.x quads (whole rows plus a remainder).
template <int kInFlight, class Load, class Store>
__device__ inline void block_quads(int rows, int quads, Load load, Store store) {
  const int threads = int(blockDim.x), step_rows = threads / quads, step_cols = threads % quads;
  int r = int(threadIdx.x) / quads, c = int(threadIdx.x) % quads;
  while (r < rows) {
    float4 v[kInFlight];
    int at_r[kInFlight], at_c[kInFlight];
#pragma unroll
    for (int u = 0; u < kInFlight; ++u) {
      at_r[u] = r;
      at_c[u] = c;
      v[u] = r < rows ? load(r, c) : float4{0.0f, 0.0f, 0.0f, 0.0f};
      c += step_cols;
      r += step_rows;
      if (c >= quads) {
        c -= quads;
        ++r;
      }
    }
#pragma unroll
    for (int u = 0; u < kInFlight; ++u)
      if (at_r[u] < rows) store(at_r[u], at_c[u], v[u]);
  }
}

// rows x width16 of an fp32 array (row stride src_stride) into a bf16 tile,
// by the whole block: rows past `valid` and columns past `cols` as zeros, row
// r times scale[r] when given. 16-byte loads and 8-byte shared stores where
// the rows allow (cols and the stride multiples of 4, src 16-byte aligned),
// else one element at a time.
//
// Not inlined: a kernel stages four to eight tiles, and inlined copies of both
// paths made the SSD backward kernel's code 223 KB, so most of its stalls
// were instruction-cache misses.
__device__ __noinline__ inline void stage(SharedTile t, int rows, int width16, const float* src,
                                          int64_t src_stride, int valid, int64_t cols,
                                          const float* scale = nullptr) {
  if (cols % 4 == 0 && src_stride % 4 == 0 && reinterpret_cast<uintptr_t>(src) % 16 == 0) {
    block_quads<8>(
        rows, width16 / 4,
        [&](int r, int c) {
          return r < valid && 4 * c < cols ? load4(src + r * src_stride, c) : float4{0.0f, 0.0f, 0.0f, 0.0f};
        },
        [&](int r, int c, float4 v) {
          if (scale) v = v * scale[r];
          store4_bf16(t.p + r * t.stride, c, v);
        });
    return;
  }
  constexpr int kInFlight = 4;  // a fallback: little code, so the common path keeps the instruction cache
  const int total = rows * width16;
  for (int base = int(threadIdx.x); base < total; base += kInFlight * int(blockDim.x)) {
    float v[kInFlight];
#pragma unroll
    for (int u = 0; u < kInFlight; ++u) {
      const int e = base + u * int(blockDim.x), r = e / width16, c = e % width16;
      v[u] = e < total && r < valid && c < cols ? src[r * src_stride + c] : 0.0f;
    }
#pragma unroll
    for (int u = 0; u < kInFlight; ++u) {
      const int e = base + u * int(blockDim.x), r = e / width16, c = e % width16;
      if (e < total) t(r, c) = __float2bfloat16_rn(scale ? v[u] * scale[r] : v[u]);
    }
  }
}

// The A fragment of rows r0..r0+15, reduction k0..k0+15, of A = the tile (row-major [m][k]).
__device__ __forceinline__ void load_a(uint32_t (&a)[4], SharedTile t, int r0, int k0, int lane) {
  ldmatrix_x4(a, t.p + (r0 + (lane & 7) + ((lane >> 3) & 1) * 8) * t.stride + k0 + (lane >> 4) * 8);
}
// The same of A = the tile transposed (the tile is [k][m]).
__device__ __forceinline__ void load_a_transposed(uint32_t (&a)[4], SharedTile t, int r0, int k0, int lane) {
  const int m = lane >> 3;  // a0: k 0-7, rows 0-7; a1: rows 8-15; a2: k 8-15, rows 0-7; a3: both 8-15
  ldmatrix_x4_trans(a, t.p + (k0 + (lane & 7) + (m >> 1) * 8) * t.stride + r0 + (m & 1) * 8);
}
// B fragments for output columns n0..n0+15 (b[0], b[1]: n-tile n0; b[2],
// b[3]: n-tile n0 + 8), reduction k0..k0+15, of B = the tile ([k][n]).
__device__ __forceinline__ void load_b(uint32_t (&b)[4], SharedTile t, int k0, int n0, int lane) {
  ldmatrix_x4_trans(b, t.p + (k0 + (lane & 7) + ((lane >> 3) & 1) * 8) * t.stride + n0 + (lane >> 4) * 8);
}
// The same of B = the tile transposed (the tile is [n][k]).
__device__ __forceinline__ void load_b_transposed(uint32_t (&b)[4], SharedTile t, int k0, int n0, int lane) {
  ldmatrix_x4(b, t.p + (n0 + (lane & 7) + (lane >> 4) * 8) * t.stride + k0 + ((lane >> 3) & 1) * 8);
}

// c0, c1 (n-tiles n0 and n0 + 8 of rows r0..r0+15) += A B over the
// reduction k_begin..k_end (multiples of 16); load_a_at(a, k0) and
// load_b_at(b, k0) fetch the fragments at k0.
template <class LoadA, class LoadB>
__device__ __forceinline__ void mma_pair(float (&c0)[4], float (&c1)[4], int k_begin, int k_end,
                                         LoadA load_a_at, LoadB load_b_at) {
#pragma unroll 1
  for (int k0 = k_begin; k0 < k_end; k0 += 16) {
    uint32_t a[4], b[4];
    load_a_at(a, k0);
    load_b_at(b, k0);
    mma(c0, a, b[0], b[1]);
    mma(c1, a, b[2], b[3]);
  }
}

// Where element e (0..3) of n-tile `tile` of a C fragment sits: row offset
// within the 16 rows, column within the n-tiles' columns.
__device__ __forceinline__ int fragment_row(int lane, int e) { return (lane >> 2) + (e >> 1) * 8; }
__device__ __forceinline__ int fragment_col(int lane, int tile, int e) {
  return tile * 8 + 2 * (lane & 3) + (e & 1);
}

// f(row, col, tile, e) for each pair of adjacent elements of a warp's C
// fragments over kN n-tiles: elements e and e + 1 of n-tile `tile` sit at
// (row, col) and (row, col + 1), col even. Writing a pair with one 4-byte
// (bf16x2) or 8-byte (float2) access halves the epilogues' instructions and
// fills the sectors they touch.
template <int kN, class F>
__device__ __forceinline__ void for_each_pair_at(int lane, F f) {
#pragma unroll
  for (int tile = 0; tile < kN; ++tile)
#pragma unroll
    for (int half = 0; half < 2; ++half)
      f(fragment_row(lane, 2 * half), fragment_col(lane, tile, 0), tile, 2 * half);
}
// The same with the pair's values: f(row, col, a, b).
template <int kN, class F>
__device__ __forceinline__ void for_each_pair(const float (&acc)[kN][4], int lane, F f) {
  for_each_pair_at<kN>(lane, [&](int r, int c, int tile, int e) { f(r, c, acc[tile][e], acc[tile][e + 1]); });
}

// Two adjacent floats at p (p[1] only when `both`): one 8-byte access when
// `paired` (the caller knows p is 8-byte aligned for the whole block), else
// one element at a time.
__device__ __forceinline__ void store2(float* p, float a, float b, bool paired, bool both) {
  if (paired) {
    *reinterpret_cast<float2*>(p) = make_float2(a, b);
    return;
  }
  p[0] = a;
  if (both) p[1] = b;
}
// The same adding to what is there.
__device__ __forceinline__ void add2(float* p, float a, float b, bool paired, bool both) {
  if (paired) {
    float2 v = *reinterpret_cast<const float2*>(p);
    v.x += a;
    v.y += b;
    *reinterpret_cast<float2*>(p) = v;
    return;
  }
  p[0] += a;
  if (both) p[1] += b;
}

// Columns c and c + 1 (c even) of row r of a tile, rounded to bf16.
__device__ __forceinline__ void store_pair(SharedTile t, int r, int c, float a, float b) {
  *reinterpret_cast<__nv_bfloat162*>(&t(r, c)) = __floats2bfloat162_rn(a, b);
}

// The sum of a value over the 4 lanes that hold one row of a C fragment.
__device__ __forceinline__ float row_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  v += __shfl_xor_sync(0xffffffffu, v, 2);
  return v;
}

// out[p * out_stride + n] = sum_{j < rows} U[j][p] V[j][n] for p < P, n < N
// (fp32 stores), by the whole block: its warps take the 16 x 16 output blocks
// in turn. rows is a multiple of 16; U and V are rows x padded16(P or N).
__device__ inline void store_transposed_product(float* out, int64_t out_stride, SharedTile U, SharedTile V,
                                                int rows, int P, int N) {
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32, warps = int(blockDim.x) / 32;
  const int col_blocks = padded16(N) / 16, blocks = padded16(P) / 16 * col_blocks;
  const bool paired = N % 2 == 0 && out_stride % 2 == 0 && reinterpret_cast<uintptr_t>(out) % 8 == 0;
  for (int block = warp; block < blocks; block += warps) {
    const int p0 = block / col_blocks * 16, n0 = block % col_blocks * 16;
    float acc[2][4] = {};
    mma_pair(
        acc[0], acc[1], 0, rows, [&](auto& a, int j0) { load_a_transposed(a, U, p0, j0, lane); },
        [&](auto& b, int j0) { load_b(b, V, j0, n0, lane); });
    for_each_pair(acc, lane, [&](int r, int c, float a, float b) {
      const int p = p0 + r, n = n0 + c;
      if (p < P && n < N) store2(out + p * out_stride + n, a, b, paired, n + 1 < N);
    });
  }
}

// Causal products of a chunk whose warp w owns rows 16w..16w+15 of a
// lower-triangular Q x Q matrix M (kBlocks = Q / 16 warps; blocks of M above
// the diagonal are zero and skipped). out: columns c0..c0+15 of the warp's rows.
//
// m += X Y^T on the warp's row block (X and Y: kBlocks * 16 rows of width16
// columns), column blocks at or before the diagonal block only (the others
// are left as they are: zero for a causal product).
template <int kBlocks>
__device__ __forceinline__ void lower_products(float (&m)[2 * kBlocks][4], SharedTile X, SharedTile Y,
                                               int width16, int warp, int lane) {
#pragma unroll
  for (int jb = 0; jb < kBlocks; ++jb)
    if (jb <= warp)
      mma_pair(
          m[2 * jb], m[2 * jb + 1], 0, width16,
          [&](auto& a, int k0) { load_a(a, X, warp * kMmaRows, k0, lane); },
          [&](auto& b, int k0) { load_b_transposed(b, Y, k0, 16 * jb, lane); });
}
// out += M T, M's row block in registers as C fragments (kBlocks * 2 n-tiles).
template <int kBlocks>
__device__ __forceinline__ void lower_times(float (&out)[2][4], const float (&m)[2 * kBlocks][4],
                                            SharedTile tile, int c0, int warp, int lane) {
#pragma unroll
  for (int jb = 0; jb < kBlocks; ++jb)
    if (jb <= warp) {
      uint32_t a[4], b[4];
      c_to_a<2 * kBlocks>(a, m, jb);
      load_b(b, tile, 16 * jb, c0, lane);
      mma(out[0], a, b[0], b[1]);
      mma(out[1], a, b[2], b[3]);
    }
}
// out += M^T T, M in shared memory (row-major): the warp's rows of M^T are
// M's columns, reduced over M's row blocks at or below the warp's.
template <int kBlocks>
__device__ __forceinline__ void lower_transposed_times(float (&out)[2][4], SharedTile m, SharedTile tile,
                                                       int c0, int warp, int lane) {
#pragma unroll
  for (int ib = 0; ib < kBlocks; ++ib)
    if (ib >= warp) {
      uint32_t a[4], b[4];
      load_a_transposed(a, m, warp * kMmaRows, 16 * ib, lane);
      load_b(b, tile, 16 * ib, c0, lane);
      mma(out[0], a, b[0], b[1]);
      mma(out[1], a, b[2], b[3]);
    }
}

}  // namespace livs::evaluator::cuda::tc
