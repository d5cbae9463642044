// SwiGLU's gate h = silu(g) * u and its backward, elementwise with 16-byte
// accesses where every pointer allows: fp32 in and out (the backward adding
// or writing), or bf16 in and out (Backend::swiglu_*_bf16: gate, up and dh
// come from GEMMs with bf16 outputs, and h, dgate and dup are GEMM shadows
// with no fp32 copy; outputs overwrite). Both forms share the fp32 math; the
// bf16 form widens its loads and rounds its stores (to nearest even), so its
// outputs are the fp32 form's, on the widened inputs, rounded. In the bf16
// form gate and up (and dgate, dup) may be the two halves of one [rows,
// 2 cols] GEMM output (rows `ld` apart), h and dh are [rows, cols].
#include <cuda_bf16.h>

#include <type_traits>

#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/device_math.cuh"
#include "evaluator/cuda/grid_dependency.cuh"
#include "evaluator/cuda/kernels.hpp"
#include "evaluator/cuda/swiglu_math.cuh"

namespace livs::evaluator::cuda {

namespace {

// Where element e of a [rows, cols] tensor lies in gate and up: e itself
// (Flat), or in rows `ld` apart (RowsApart; quads need cols and ld multiples
// of 4, so that a quad never crosses a row).
struct Flat {
  __device__ int64_t operator()(int64_t e) const { return e; }
};

template <class Out, class In, class Index>
__global__ void swiglu_forward_kernel(Out* h, const In* gate, const In* up, int64_t count, bool vector,
                                      Index at) {
  await_prior_grids();
  grid_stride_quads(
      count, vector,
      [&](int64_t i) {
        const int64_t j = at(4 * i) / 4;
        const float4 g = load4(gate, j), u = load4(up, j);
        store4(h, i, {swiglu(g.x, u.x), swiglu(g.y, u.y), swiglu(g.z, u.z), swiglu(g.w, u.w)});
      },
      [&](int64_t i) {
        const int64_t j = at(i);
        store1(h, i, swiglu(widen(gate[j]), widen(up[j])));
      });
}

// dgate (+)= ..., dup (+)= ... (kAccumulate: added; bf16 outputs are always written, rounded).
template <bool kAccumulate, class Out, class In, class Index>
__global__ void swiglu_backward_kernel(Out* dgate, Out* dup, const In* dh, const In* gate, const In* up,
                                       int64_t count, bool vector, Index at) {
  await_prior_grids();
  static_assert(!kAccumulate || std::is_same_v<Out, float>, "bf16 shadows are written, not added to");
  grid_stride_quads(
      count, vector,
      [&](int64_t i) {
        const int64_t j = at(4 * i) / 4;
        const float4 d = load4(dh, i), g = load4(gate, j), u = load4(up, j);
        const float2 a = swiglu_grads(d.x, g.x, u.x), b = swiglu_grads(d.y, g.y, u.y),
                     c = swiglu_grads(d.z, g.z, u.z), e = swiglu_grads(d.w, g.w, u.w);
        float4 dg = {a.x, b.x, c.x, e.x}, du = {a.y, b.y, c.y, e.y};
        if constexpr (kAccumulate) {
          dg += load4(dgate, j);
          du += load4(dup, j);
        }
        store4(dgate, j, dg);
        store4(dup, j, du);
      },
      [&](int64_t i) {
        const int64_t j = at(i);
        const float2 r = swiglu_grads(widen(dh[i]), widen(gate[j]), widen(up[j]));
        if constexpr (kAccumulate) {
          dgate[j] += r.x;
          dup[j] += r.y;
        } else {
          store1(dgate, j, r.x);
          store1(dup, j, r.y);
        }
      });
}

}  // namespace

void swiglu_forward(cudaStream_t stream, float* h, const float* gate, const float* up, int64_t count) {
  if (count <= 0) return;
  swiglu_forward_kernel<<<grid_for((count + 3) / 4), 256, 0, stream>>>(h, gate, up, count,
                                                                       aligned16(h, gate, up), Flat{});
  LIVS_CUDA_CHECK_LAUNCH();
}

void swiglu_backward(cudaStream_t stream, float* dgate, float* dup, const float* dh, const float* gate,
                     const float* up, int64_t count, bool accumulate) {
  launch_adding_or_writing(stream, count, accumulate, swiglu_backward_kernel<true, float, float, Flat>,
                           swiglu_backward_kernel<false, float, float, Flat>, dgate, dup, dh, gate, up, count,
                           aligned16(dgate, dup, dh, gate, up), Flat{});
}

void swiglu_forward_bf16(cudaStream_t stream, void* h16, const void* gate16, const void* up16, int64_t rows,
                         int64_t cols, int64_t ld) {
  const int64_t count = rows * cols;
  if (count <= 0) return;
  auto* h = static_cast<__nv_bfloat16*>(h16);
  const auto *gate = static_cast<const __nv_bfloat16*>(gate16), *up = static_cast<const __nv_bfloat16*>(up16);
  const bool vector = quads_aligned(h, gate, up) && cols % 4 == 0 && ld % 4 == 0;
  swiglu_forward_kernel<<<grid_for((count + 3) / 4), 256, 0, stream>>>(h, gate, up, count, vector,
                                                                       RowsApart{cols, ld});
  LIVS_CUDA_CHECK_LAUNCH();
}

void swiglu_backward_bf16(cudaStream_t stream, void* dgate16, void* dup16, const void* dh16,
                          const void* gate16, const void* up16, int64_t rows, int64_t cols, int64_t ld) {
  const int64_t count = rows * cols;
  if (count <= 0) return;
  auto *dgate = static_cast<__nv_bfloat16*>(dgate16), *dup = static_cast<__nv_bfloat16*>(dup16);
  const auto *dh = static_cast<const __nv_bfloat16*>(dh16), *gate = static_cast<const __nv_bfloat16*>(gate16),
             *up = static_cast<const __nv_bfloat16*>(up16);
  const bool vector = quads_aligned(dgate, dup, dh, gate, up) && cols % 4 == 0 && ld % 4 == 0;
  swiglu_backward_kernel<false><<<grid_for((count + 3) / 4), 256, 0, stream>>>(
      dgate, dup, dh, gate, up, count, vector, RowsApart{cols, ld});
  LIVS_CUDA_CHECK_LAUNCH();
}

}  // namespace livs::evaluator::cuda
