// RMSNorm: y = x * rstd * g, rstd = 1 / sqrt(mean(x^2) + eps).
//
// Fast path (d % 4 == 0, d <= 1024, 16-byte aligned pointers): a group of G
// lanes per row (8 or 16 for narrow rows such as qk-norm's head_dim, else a
// warp), each lane holding its V float4 of the row in registers, so x and
// dout are read once. The backward is one pass: each group computes dx for
// its rows and adds dout * x * rstd into per-lane dgain accumulators; the
// block combines its groups in a fixed order into one partial row, and a
// small kernel adds the partial rows, in block order, into dgain. Rows are
// split over the blocks by shape alone, so the bits are the same on every run
// and every GPU.
//
// Other shapes take the generic path: one warp per row with scalar loads,
// and dgain through fixed row chunks (two more kernels).
//
// add_rmsnorm_forward adds the residual branch on the register path as the
// row is loaded (a + b, the add kernel's bits), stores the sum and norms it.
//
// With a bf16 shadow (out16 / dx16, GemmOperand), each value is also stored
// rounded, where it is written: the GEMMs that read the normed activations
// and the residual gradient then need no rounding pass of their own.
#include <cuda_bf16.h>

#include <stdexcept>

#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/device_math.cuh"
#include "evaluator/cuda/grid_dependency.cuh"
#include "evaluator/cuda/kernels.hpp"

namespace livs::evaluator::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxPartialRows = 256;  // blocks of the fused backward: partial dgain rows
constexpr int64_t kColumnChunks = 64;     // row chunks of the generic path's dgain column sums
constexpr int kMaxQuadsPerLane = 8;       // fast path: d <= 32 lanes * 8 * 4 = 1024

// ---- fast path ----

struct FastShape {
  int lanes = 0;  // G: lanes per row
  int quads = 0;  // V: float4 per lane
};

// G and V for a row of d4 float4, or lanes = 0 when the fast path does not apply.
FastShape fast_shape(int64_t d4) {
  if (d4 <= 8) return {8, 1};
  if (d4 <= 16) return {16, 1};
  for (int v = 1; v <= kMaxQuadsPerLane; v *= 2)
    if (d4 <= 32 * v) return {32, v};
  return {};
}

__device__ inline float4 scale4(float4 a, float s) { return {a.x * s, a.y * s, a.z * s, a.w * s}; }
__device__ inline float4 mul4(float4 a, float4 b) { return {a.x * b.x, a.y * b.y, a.z * b.z, a.w * b.w}; }
__device__ inline float dot4(float4 a, float4 b) { return a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w; }

template <int G, int V>
__global__ void __launch_bounds__(kThreads)
    rmsnorm_forward_fast_kernel(float* out, __nv_bfloat16* out16, float* rstd, const float* x,
                                const float* addend, float* sum_out, const float* gain, float eps,
                                int64_t rows, int d) {
  await_prior_grids();
  constexpr int kGroups = kThreads / G;
  const int lane = threadIdx.x % G, group = threadIdx.x / G, d4 = d / 4;
  for (int64_t n0 = blockIdx.x * int64_t(kGroups); n0 < rows; n0 += int64_t(gridDim.x) * kGroups) {
    const int64_t n = n0 + group;
    const bool valid = n < rows;
    float4 v[V];
    float sum = 0.0f;
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const int c = lane + k * G;
      v[k] = valid && c < d4 ? load4(x + n * d, c) : float4{};
      if (addend && valid && c < d4) {  // the residual add: x + addend, stored, then normed
        v[k] += load4(addend + n * d, c);
        store4(sum_out + n * d, c, v[k]);
      }
      sum += dot4(v[k], v[k]);
    }
    const float s = rsqrtf(group_sum<G>(sum) / float(d) + eps);  // every lane of the warp takes part
    if (!valid) continue;
    if (lane == 0) rstd[n] = s;
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const int c = lane + k * G;
      if (c >= d4) continue;
      const float4 y = mul4(scale4(v[k], s), load4(gain, c));
      if (out) store4(out + n * d, c, y);
      if (out16) store4_bf16(out16 + n * d, c, y);
    }
  }
}

// Block b takes rows [b * chunk_rows, (b + 1) * chunk_rows), its groups rows
// in turn. dx_i (+)= rstd g_i dy_i - rstd^3 / d x_i sum_j g_j dy_j x_j (added when accumulate);
// partials[b][c] = sum over the block's rows of dy_c x_c rstd. Dynamic shared
// memory: kGroups * d floats.
template <int G, int V>
__global__ void __launch_bounds__(kThreads)
    rmsnorm_backward_fast_kernel(float* dx, __nv_bfloat16* dx16, float* partials, const float* dout,
                                 const float* x, const float* gain, const float* rstd, int64_t rows, int d,
                                 int64_t chunk_rows, bool accumulate) {
  await_prior_grids();
  constexpr int kGroups = kThreads / G;
  extern __shared__ float4 group_partials[];  // [kGroups][d / 4]
  const int lane = threadIdx.x % G, group = threadIdx.x / G, d4 = d / 4;
  const int64_t r0 = blockIdx.x * chunk_rows, r1 = min(rows, r0 + chunk_rows);
  float4 acc[V];
#pragma unroll
  for (int k = 0; k < V; ++k) acc[k] = float4{};
  for (int64_t n0 = r0; n0 < r1; n0 += kGroups) {
    const int64_t n = n0 + group;
    const bool valid = n < r1;
    float4 xv[V], dy[V];
    float dot = 0.0f;
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const int c = lane + k * G;
      const bool in = valid && c < d4;
      xv[k] = in ? load4(x + n * d, c) : float4{};
      dy[k] = in ? load4(dout + n * d, c) : float4{};
      if (in) dot += dot4(mul4(load4(gain, c), dy[k]), xv[k]);
    }
    dot = group_sum<G>(dot);
    if (!valid) continue;
    const float s = rstd[n], coef = s * s * s * dot / float(d);
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const int c = lane + k * G;
      if (c >= d4) continue;
      const float4 g = load4(gain, c);
      float4 dxv = accumulate ? load4(dx + n * d, c) : float4{};
      dxv.x += s * g.x * dy[k].x - coef * xv[k].x;
      dxv.y += s * g.y * dy[k].y - coef * xv[k].y;
      dxv.z += s * g.z * dy[k].z - coef * xv[k].z;
      dxv.w += s * g.w * dy[k].w - coef * xv[k].w;
      store4(dx + n * d, c, dxv);
      if (dx16) store4_bf16(dx16 + n * d, c, dxv);
      acc[k] += scale4(mul4(dy[k], xv[k]), s);
    }
  }
#pragma unroll
  for (int k = 0; k < V; ++k) {
    const int c = lane + k * G;
    if (c < d4) group_partials[group * d4 + c] = acc[k];
  }
  __syncthreads();
  for (int c = threadIdx.x; c < d4; c += blockDim.x) {
    float4 sum = group_partials[c];
    for (int g = 1; g < kGroups; ++g) sum += group_partials[g * d4 + c];
    store4(partials + blockIdx.x * int64_t(d), c, sum);
  }
}

// dgain[c] += sum over parts of partials[part][c], in a fixed tree: 8 slices
// of the parts (each in order), then the slices in order. A block covers 32
// columns.
__global__ void __launch_bounds__(kThreads)
    rmsnorm_gain_reduce_kernel(float* dgain, const float* partials, int64_t parts, int64_t d) {
  await_prior_grids();
  constexpr int kSlices = kThreads / kWarpSize;
  __shared__ float slice_sums[kSlices][kWarpSize];
  const int lane = threadIdx.x % kWarpSize, slice = threadIdx.x / kWarpSize;
  const int64_t c = blockIdx.x * int64_t(kWarpSize) + lane;
  float sum = 0.0f;
  if (c < d)
    for (int64_t p = slice; p < parts; p += kSlices) sum += partials[p * d + c];
  slice_sums[slice][lane] = sum;
  __syncthreads();
  if (slice == 0 && c < d) {
    float total = slice_sums[0][lane];
    for (int k = 1; k < kSlices; ++k) total += slice_sums[k][lane];
    dgain[c] += total;
  }
}

// Rows per block of the fused backward: whole rounds of the block's groups,
// so that at most kMaxPartialRows blocks cover all rows.
int64_t fast_chunk_rows(int64_t rows, int groups) {
  const int64_t rounds = (rows + groups - 1) / groups;
  const int64_t rounds_per_block = (rounds + kMaxPartialRows - 1) / kMaxPartialRows;
  return rounds_per_block * groups;
}

template <int G, int V>
void forward_fast(cudaStream_t stream, Matrix out, __nv_bfloat16* out16, float* rstd, ConstMatrix x,
                  const float* gain, float eps, const float* addend, float* sum) {
  constexpr int kGroups = kThreads / G;
  const unsigned blocks =
      unsigned(std::clamp<int64_t>((x.rows + kGroups - 1) / kGroups, 1, int64_t(1) << 20));
  rmsnorm_forward_fast_kernel<G, V><<<blocks, kThreads, 0, stream>>>(out.data, out16, rstd, x.data, addend,
                                                                     sum, gain, eps, x.rows, int(x.cols));
  LIVS_CUDA_CHECK_LAUNCH();
}

template <int G, int V>
void backward_fast(cudaStream_t stream, Matrix dx, __nv_bfloat16* dx16, float* dgain, ConstMatrix dout,
                   ConstMatrix x, const float* gain, const float* rstd, float* partials, bool accumulate) {
  constexpr int kGroups = kThreads / G;
  const int64_t rows = x.rows, d = x.cols;
  const int64_t chunk_rows = fast_chunk_rows(rows, kGroups);
  const int64_t blocks = (rows + chunk_rows - 1) / chunk_rows;
  const std::size_t shared = std::size_t(kGroups) * std::size_t(d) * sizeof(float);  // <= 32 KiB
  rmsnorm_backward_fast_kernel<G, V><<<unsigned(blocks), kThreads, shared, stream>>>(
      dx.data, dx16, partials, dout.data, x.data, gain, rstd, rows, int(d), chunk_rows, accumulate);
  LIVS_CUDA_CHECK_LAUNCH();
  rmsnorm_gain_reduce_kernel<<<unsigned((d + kWarpSize - 1) / kWarpSize), kThreads, 0, stream>>>(
      dgain, partials, blocks, d);
  LIVS_CUDA_CHECK_LAUNCH();
}

// Calls f.template operator()<G, V>() for the fast shape of d4.
template <class F>
void dispatch_fast(FastShape shape, F&& f) {
  if (shape.lanes == 8) return f.template operator()<8, 1>();
  if (shape.lanes == 16) return f.template operator()<16, 1>();
  switch (shape.quads) {
    case 1:
      return f.template operator()<32, 1>();
    case 2:
      return f.template operator()<32, 2>();
    case 4:
      return f.template operator()<32, 4>();
    default:
      return f.template operator()<32, 8>();
  }
}

// ---- generic path: one warp per row, scalar loads ----

constexpr int kRowsPerBlock = kThreads / kWarpSize;

__global__ void rmsnorm_forward_kernel(float* out, __nv_bfloat16* out16, float* rstd, const float* x,
                                       const float* gain, float eps, int64_t rows, int64_t d) {
  await_prior_grids();
  const int64_t n = blockIdx.x * int64_t(kRowsPerBlock) + threadIdx.x / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;
  if (n >= rows) return;
  const float* xr = x + n * d;
  float sum = 0.0f;
  for (int64_t i = lane; i < d; i += kWarpSize) sum += xr[i] * xr[i];
  const float s = rsqrtf(warp_sum(sum) / float(d) + eps);
  if (lane == 0) rstd[n] = s;
  for (int64_t i = lane; i < d; i += kWarpSize) {
    const float y = xr[i] * s * gain[i];
    if (out) out[n * d + i] = y;
    if (out16) out16[n * d + i] = __float2bfloat16_rn(y);
  }
}

__global__ void rmsnorm_backward_input_kernel(float* dx, __nv_bfloat16* dx16, const float* dout,
                                              const float* x, const float* gain, const float* rstd,
                                              int64_t rows, int64_t d, bool accumulate) {
  await_prior_grids();
  const int64_t n = blockIdx.x * int64_t(kRowsPerBlock) + threadIdx.x / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;
  if (n >= rows) return;
  const float *xr = x + n * d, *dyr = dout + n * d;
  float dot = 0.0f;
  for (int64_t i = lane; i < d; i += kWarpSize) dot += gain[i] * dyr[i] * xr[i];
  dot = warp_sum(dot);
  const float s = rstd[n], c = s * s * s * dot / float(d);
  for (int64_t i = lane; i < d; i += kWarpSize) {
    const float v = (accumulate ? dx[n * d + i] : 0.0f) + (s * gain[i] * dyr[i] - c * xr[i]);
    dx[n * d + i] = v;
    if (dx16) dx16[n * d + i] = __float2bfloat16_rn(v);
  }
}

// dgain partials over a fixed number of row chunks, each summed in row order.
__global__ void rmsnorm_gain_partials_kernel(float* partials, const float* dout, const float* x,
                                             const float* rstd, int64_t rows, int64_t d, int64_t chunk_rows) {
  await_prior_grids();
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t chunk = blockIdx.y;
  if (c >= d) return;
  const int64_t n0 = chunk * chunk_rows, n1 = min(rows, n0 + chunk_rows);
  float sum = 0.0f;
  for (int64_t n = n0; n < n1; ++n) sum += dout[n * d + c] * x[n * d + c] * rstd[n];
  partials[chunk * d + c] = sum;
}

unsigned row_blocks(int64_t rows) { return unsigned((rows + kRowsPerBlock - 1) / kRowsPerBlock); }

void backward_generic(cudaStream_t stream, Matrix dx, __nv_bfloat16* dx16, float* dgain, ConstMatrix dout,
                      ConstMatrix x, const float* gain, const float* rstd, float* partials, bool accumulate) {
  const int64_t rows = x.rows, d = x.cols;
  rmsnorm_backward_input_kernel<<<row_blocks(rows), kThreads, 0, stream>>>(dx.data, dx16, dout.data, x.data,
                                                                           gain, rstd, rows, d, accumulate);
  LIVS_CUDA_CHECK_LAUNCH();
  const int64_t chunks = std::min(rows, kColumnChunks);
  const int64_t chunk_rows = (rows + chunks - 1) / chunks;
  const unsigned column_blocks = unsigned((d + 127) / 128);
  rmsnorm_gain_partials_kernel<<<dim3(column_blocks, unsigned(chunks)), 128, 0, stream>>>(
      partials, dout.data, x.data, rstd, rows, d, chunk_rows);
  LIVS_CUDA_CHECK_LAUNCH();
  rmsnorm_gain_reduce_kernel<<<unsigned((d + kWarpSize - 1) / kWarpSize), kThreads, 0, stream>>>(
      dgain, partials, chunks, d);
  LIVS_CUDA_CHECK_LAUNCH();
}

FastShape fast_shape_for(int64_t d, bool aligned) {
  return d % 4 == 0 && aligned ? fast_shape(d / 4) : FastShape{};
}

}  // namespace

int64_t rmsnorm_backward_scratch(int64_t rows, int64_t cols) {
  return std::max<int64_t>(1, std::min(rows, std::max(kMaxPartialRows, kColumnChunks)) * cols);
}

void rmsnorm_forward(cudaStream_t stream, Matrix out, float* rstd, ConstMatrix x, const float* gain,
                     float eps, void* out16) {
  add_rmsnorm_forward(stream, nullptr, out, rstd, x.data, nullptr, gain, eps, out16);
}

// b == nullptr: the norm of a alone (rmsnorm_forward). Null pointers count as
// aligned.
void add_rmsnorm_forward(cudaStream_t stream, float* sum, Matrix out, float* rstd, const float* a,
                         const float* b, const float* gain, float eps, void* out16) {
  if (out.rows <= 0 || out.cols <= 0) return;
  if (!out.data && !out16)
    throw std::invalid_argument("CUDA rmsnorm_forward: neither an output nor a shadow");
  auto* shadow = static_cast<__nv_bfloat16*>(out16);
  const ConstMatrix x{a, out.rows, out.cols};
  const FastShape fast = fast_shape_for(out.cols, aligned16(out.data, sum, a, b, gain) && aligned8(shadow));
  if (fast.lanes != 0) {
    dispatch_fast(
        fast, [&]<int G, int V>() { forward_fast<G, V>(stream, out, shadow, rstd, x, gain, eps, b, sum); });
  } else if (b) {  // two kernels: the add, then the norm of the sum (whose own path may be the fast one)
    add(stream, sum, a, b, out.rows * out.cols);
    rmsnorm_forward(stream, out, rstd, {sum, out.rows, out.cols}, gain, eps, out16);
  } else {
    rmsnorm_forward_kernel<<<row_blocks(x.rows), kThreads, 0, stream>>>(out.data, shadow, rstd, x.data, gain,
                                                                        eps, x.rows, x.cols);
    LIVS_CUDA_CHECK_LAUNCH();
  }
}

void rmsnorm_backward(cudaStream_t stream, Matrix dx, float* dgain, ConstMatrix dout, ConstMatrix x,
                      const float* gain, const float* rstd, float* partials, void* dx16, bool accumulate_dx) {
  if (x.rows <= 0 || x.cols <= 0) return;
  auto* shadow = static_cast<__nv_bfloat16*>(dx16);
  const FastShape fast =
      fast_shape_for(x.cols, aligned16(dx.data, dout.data, x.data, gain, partials) && aligned8(shadow));
  if (fast.lanes == 0)
    return backward_generic(stream, dx, shadow, dgain, dout, x, gain, rstd, partials, accumulate_dx);
  dispatch_fast(fast, [&]<int G, int V>() {
    backward_fast<G, V>(stream, dx, shadow, dgain, dout, x, gain, rstd, partials, accumulate_dx);
  });
}

}  // namespace livs::evaluator::cuda
