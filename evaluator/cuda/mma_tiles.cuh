#pragma once
// bf16 mma.sync m16n8k16 operands from shared tiles of any row stride, in
// both orientations, for kernels whose tile widths are known only at run time
// (ssd_tc.cu). The primitives (mma, ldmatrix, pack_bf16, c_to_a) and the
// fragment layouts are attention_tc_common.cuh's.
//
// A tile is bf16 rows of `stride` values (stride a multiple of 8 and = 8
// mod 16, e.g. width + 8 for a width that is a multiple of 16: the 8 row
// addresses of each ldmatrix phase then fall in different bank groups).
#include "evaluator/cuda/attention_tc_common.cuh"

namespace livs::evaluator::cuda::tc {

struct SharedTile {
  __nv_bfloat16* p;
  int stride;
  __device__ __nv_bfloat16& operator()(int r, int c) const { return p[r * stride + c]; }
};

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

// The sum of a value over the 4 lanes that hold one row of a C fragment.
__device__ __forceinline__ float row_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  v += __shfl_xor_sync(0xffffffffu, v, 2);
  return v;
}

}  // namespace livs::evaluator::cuda::tc
