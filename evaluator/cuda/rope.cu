// Rotary position embedding, "rotate half" pairs (i, i + head_dim / 2) of
// x [batch, seq, heads, head_dim]. A 2-D launch: threadIdx.y picks a row
// (batch, seq), threadIdx.x a unit of one row: one pair, or four neighbouring
// pairs with 16-byte accesses when half % 4 == 0 and every pointer is
// aligned. Index math per unit is 32-bit; the row's position costs one
// division per row. Each thread reads a unit's values before writing them,
// so out may alias in (both ways: the backward writes din, it does not add).
// The backward can write bf16 instead (rope_backward_bf16: a GEMM shadow).
#include <cuda_bf16.h>

#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/device_math.cuh"
#include "evaluator/cuda/grid_dependency.cuh"
#include "evaluator/cuda/kernels.hpp"

namespace livs::evaluator::cuda {

namespace {

constexpr int kThreads = 256;

template <bool kBackward>
__device__ inline void rotate(float& da, float& db, float a, float b, float c, float sn) {
  if constexpr (kBackward) {  // din = R^T dout
    da = a * c + b * sn;
    db = -a * sn + b * c;
  } else {
    da = a * c - b * sn;
    db = a * sn + b * c;
  }
}

// kQuad: a unit is four pairs (float4 loads of both halves, cos and sin).
template <bool kBackward, bool kQuad, class Out>
__global__ void __launch_bounds__(kThreads)
    rope_kernel(Out* dst, const float* src, const float* cos, const float* sin, RopeShape s, int64_t rows) {
  await_prior_grids();
  const int half = s.head_dim / 2;
  const int units_per_head = kQuad ? half / 4 : half;
  const int units = s.heads * units_per_head;
  const bool rows_fit_32 = rows <= int64_t(UINT32_MAX);
  for (int64_t n = blockIdx.x * int64_t(blockDim.y) + threadIdx.y; n < rows;
       n += int64_t(gridDim.x) * blockDim.y) {
    const int64_t t = rows_fit_32 ? int64_t(uint32_t(n) % uint32_t(s.seq)) : n % s.seq;
    const int64_t pos = s.position_offset + t;
    const float* c_row = cos + pos * half;
    const float* s_row = sin + pos * half;
    Out* d_row = dst + n * s.dst_stride();
    const float* x_row = src + n * s.src_stride();
    for (int u = threadIdx.x; u < units; u += blockDim.x) {
      const int h = u / units_per_head, j = u - h * units_per_head;
      if constexpr (kQuad) {
        // In float4 units: the head starts at h * head_dim / 4, its second half half / 4 later.
        const int64_t lo = int64_t(h) * (s.head_dim / 4) + j, hi = lo + half / 4;
        const float4 a = load4(x_row, lo), b = load4(x_row, hi), c = load4(c_row, j), sn = load4(s_row, j);
        float4 da, db;
        rotate<kBackward>(da.x, db.x, a.x, b.x, c.x, sn.x);
        rotate<kBackward>(da.y, db.y, a.y, b.y, c.y, sn.y);
        rotate<kBackward>(da.z, db.z, a.z, b.z, c.z, sn.z);
        rotate<kBackward>(da.w, db.w, a.w, b.w, c.w, sn.w);
        store4(d_row, lo, da);
        store4(d_row, hi, db);
      } else {
        const int64_t lo = int64_t(h) * s.head_dim + j, hi = lo + half;
        const float a = x_row[lo], b = x_row[hi];
        float da, db;
        rotate<kBackward>(da, db, a, b, c_row[j], s_row[j]);
        store1(d_row, lo, da);
        store1(d_row, hi, db);
      }
    }
  }
}

template <bool kBackward, class Out>
void launch_rope(cudaStream_t stream, Out* dst, const float* src, const float* cos, const float* sin,
                 const RopeShape& s) {
  const int64_t rows = int64_t(s.batch) * s.seq;
  const int half = s.head_dim / 2;
  if (rows <= 0 || half <= 0 || s.heads <= 0) return;
  const bool quad = half % 4 == 0 && quads_aligned(dst, src, cos, sin) && s.src_stride() % 4 == 0 &&
                    s.dst_stride() % 4 == 0;
  const int units = s.heads * (quad ? half / 4 : half);
  // Threads along a row: the units rounded up to a warp, at most the block; the rest of the block takes more
  // rows.
  const int tx = int(std::min<int64_t>(kThreads, (units + kWarpSize - 1) / kWarpSize * kWarpSize));
  const dim3 block(unsigned(tx), unsigned(kThreads / tx));
  const unsigned blocks = unsigned(std::clamp<int64_t>((rows + block.y - 1) / block.y, 1, int64_t(1) << 20));
  if (quad)
    rope_kernel<kBackward, true><<<blocks, block, 0, stream>>>(dst, src, cos, sin, s, rows);
  else
    rope_kernel<kBackward, false><<<blocks, block, 0, stream>>>(dst, src, cos, sin, s, rows);
  LIVS_CUDA_CHECK_LAUNCH();
}

}  // namespace

void rope_forward(cudaStream_t stream, float* out, const float* in, const float* cos, const float* sin,
                  const RopeShape& shape) {
  launch_rope<false>(stream, out, in, cos, sin, shape);
}

void rope_backward(cudaStream_t stream, float* din, const float* dout, const float* cos, const float* sin,
                   const RopeShape& shape) {
  launch_rope<true>(stream, din, dout, cos, sin, shape);
}

void rope_backward_bf16(cudaStream_t stream, void* din16, const float* dout, const float* cos,
                        const float* sin, const RopeShape& shape) {
  launch_rope<true>(stream, static_cast<__nv_bfloat16*>(din16), dout, cos, sin, shape);
}

}  // namespace livs::evaluator::cuda
