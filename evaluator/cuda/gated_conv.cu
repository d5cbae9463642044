// gconv's gated short convolution on the input projection's output
// bcx = [b | c | x~] (rows of 3C):
//   out[t] = c[t] * sum_j w[j] bx[t-(k-1)+j],  bx = b * x~,
// and its backward, each in one kernel instead of two products, a
// convolution, their fills and five intermediate tensors. Values are formed
// in the CPU backend's order (bx rounded to float, taps j = 0..k-1 with fmaf
// from zero, then the product with c), so forward and the input gradients
// carry the CPU's bits; the weight gradient sums per tile, then the tiles in
// a fixed order (deterministic, not the CPU's order).
//
// Kernels up to kTiledMaxKernel without a decode state take the tiled path:
// a block owns 32 channels x kTile steps of one sequence and stages bx (and
// in backward g = dout * c) with their k-1 steps of halo in shared memory, so
// each input is read from global memory once per block. Longer kernels and
// decode (with a state) take the per-element kernels.
#include "evaluator/cuda/column_sums.cuh"
#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/device_math.cuh"
#include "evaluator/cuda/grid_dependency.cuh"
#include "evaluator/cuda/kernels.hpp"

namespace livs::evaluator::cuda {

namespace {

constexpr int kTile = 64, kChannels = 32, kRows = 8, kTiledMaxKernel = 64;

bool tiled(const ConvShape& s, bool has_state) { return !has_state && s.kernel <= kTiledMaxKernel; }
int64_t time_tiles(const ConvShape& s) { return (int64_t(s.seq) + kTile - 1) / kTile; }

__device__ __forceinline__ float gated_input(const float* bcx, int64_t row, int64_t C, int64_t c) {
  return bcx[row * 3 * C + c] * bcx[row * 3 * C + 2 * C + c];
}

constexpr int kRowsPerThread = kTile / kRows;  // a thread's rows of a tile: ty, ty + kRows, ...
static_assert(kTile % kRows == 0, "whole rows per thread");

// Rows 0 .. rows-1 (rows >= kTile) of the thread's column of a shared tile
// [rows][32], row r = value(r): the first kTile rows with every thread's
// global loads issued before any is stored (the compiler cannot move a
// load above the previous row's store), then the rest one by one.
template <class Value>
__device__ __forceinline__ void stage_column(float* tile, int64_t rows, Value value) {
  const int tx = threadIdx.x, ty = threadIdx.y;
  float v[kRowsPerThread];
#pragma unroll
  for (int m = 0; m < kRowsPerThread; ++m) v[m] = value(ty + m * kRows);
#pragma unroll
  for (int m = 0; m < kRowsPerThread; ++m) tile[(ty + m * kRows) * kChannels + tx] = v[m];
  for (int64_t r = kTile + ty; r < rows; r += kRows) tile[r * kChannels + tx] = value(r);
}

// Stages w transposed ([k][32]) and bx for times t0-(k-1) .. t0+kTile-1.
__device__ void stage_weights_and_inputs(float* w_s, float* bx_s, const float* bcx, const float* w, int64_t c,
                                         int64_t t0, int64_t b, const ConvShape& s) {
  const int64_t C = s.channels, T = s.seq, k = s.kernel;
  const int tx = threadIdx.x, ty = threadIdx.y;
  for (int64_t j = ty; j < k; j += kRows) w_s[j * kChannels + tx] = c < C ? w[c * k + j] : 0.0f;
  stage_column(bx_s, kTile + k - 1, [&](int64_t r) {
    const int64_t t = t0 - (k - 1) + r;
    return (c < C && t >= 0 && t < T) ? gated_input(bcx, b * T + t, C, c) : 0.0f;
  });
}

__global__ void __launch_bounds__(kChannels* kRows)
    gated_conv_forward_tiled(float* out, const float* bcx, const float* w, ConvShape s) {
  await_prior_grids();
  extern __shared__ float shared[];
  const int64_t C = s.channels, T = s.seq, k = s.kernel;
  float* w_s = shared;
  float* bx_s = shared + k * kChannels;
  const int64_t c = int64_t(blockIdx.x) * kChannels + threadIdx.x, t0 = int64_t(blockIdx.y) * kTile,
                b = blockIdx.z;
  stage_weights_and_inputs(w_s, bx_s, bcx, w, c, t0, b, s);
  __syncthreads();
  if (c >= C) return;
  float gate[kRowsPerThread];  // c of the thread's rows, all loaded before the first store
#pragma unroll
  for (int m = 0; m < kRowsPerThread; ++m) {
    const int64_t i = threadIdx.y + m * kRows, row = b * T + t0 + i;
    gate[m] = t0 + i < T ? bcx[row * 3 * C + C + c] : 0.0f;
  }
#pragma unroll
  for (int m = 0; m < kRowsPerThread; ++m) {
    const int64_t i = threadIdx.y + m * kRows;
    if (t0 + i >= T) break;
    float acc = 0.0f;
    for (int64_t j = 0; j < k; ++j)
      acc = fmaf(w_s[j * kChannels + threadIdx.x], bx_s[(i + j) * kChannels + threadIdx.x], acc);
    out[(b * T + t0 + i) * C + c] = gate[m] * acc;
  }
}

// Writes dbcx for its tile and its tile's share of dw into
// partials[tile][j][C] (tile = b * time_tiles + blockIdx.y).
__global__ void __launch_bounds__(kChannels* kRows)
    gated_conv_backward_tiled(float* dbcx, float* partials, const float* dout, const float* bcx,
                              const float* w, ConvShape s) {
  await_prior_grids();
  extern __shared__ float shared[];
  const int64_t C = s.channels, T = s.seq, k = s.kernel, hist = k - 1;
  float* w_s = shared;
  float* bx_s = shared + k * kChannels;            // times t0 - hist + r
  float* g_s = bx_s + (kTile + hist) * kChannels;  // times t0 + r
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t c = int64_t(blockIdx.x) * kChannels + tx, t0 = int64_t(blockIdx.y) * kTile, b = blockIdx.z;
  stage_weights_and_inputs(w_s, bx_s, bcx, w, c, t0, b, s);
  stage_column(g_s, kTile + hist, [&](int64_t r) {
    const int64_t t = t0 + r, row = b * T + t;
    return (c < C && t < T) ? dout[row * C + c] * bcx[row * 3 * C + C + c] : 0.0f;
  });
  __syncthreads();
  if (c >= C) return;
  // b, x~ and dout of the thread's rows, all loaded before the first store.
  float b_in[kRowsPerThread], x_in[kRowsPerThread], dy[kRowsPerThread];
#pragma unroll
  for (int m = 0; m < kRowsPerThread; ++m) {
    const int64_t i = ty + m * kRows, row = b * T + t0 + i;
    const bool valid = t0 + i < T;
    b_in[m] = valid ? bcx[row * 3 * C + c] : 0.0f;
    x_in[m] = valid ? bcx[row * 3 * C + 2 * C + c] : 0.0f;
    dy[m] = valid ? dout[row * C + c] : 0.0f;
  }
#pragma unroll
  for (int m = 0; m < kRowsPerThread; ++m) {
    const int64_t i = ty + m * kRows;
    if (t0 + i >= T) break;
    float conv = 0.0f, dbx = 0.0f;
    for (int64_t j = 0; j < k; ++j)
      conv = fmaf(w_s[j * kChannels + tx], bx_s[(i + j) * kChannels + tx], conv);
    // Taps past the end read g = 0 and add exact zeros where the CPU skips them.
    for (int64_t j = 0; j < k; ++j)
      dbx = fmaf(w_s[j * kChannels + tx], g_s[(i + hist - j) * kChannels + tx], dbx);
    float* d = dbcx + (b * T + t0 + i) * 3 * C;
    d[c] = dbx * x_in[m];
    d[C + c] = dy[m] * conv;
    d[2 * C + c] = dbx * b_in[m];
  }
  const int64_t tile = b * gridDim.y + blockIdx.y;
  for (int64_t j = ty; j < k; j += kRows) {
    float acc = 0.0f;
    for (int64_t i = 0; i < kTile; ++i)
      acc = fmaf(g_s[i * kChannels + tx], bx_s[(i + j) * kChannels + tx], acc);
    partials[(tile * k + j) * C + c] = acc;
  }
}

// Per element, any kernel length, history from the state when there is one.
__global__ void gated_conv_forward_elementwise(float* out, const float* bcx, const float* w,
                                               const float* state, ConvShape s) {
  await_prior_grids();
  const int64_t C = s.channels, k = s.kernel, T = s.seq, hist = k - 1;
  const int64_t count = int64_t(s.batch) * T * C;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < count;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = e % C, row = e / C, b = row / T, t = row % T;
    float acc = 0.0f;
    for (int64_t j = 0; j < k; ++j) {
      const int64_t src = t - hist + j;
      if (src >= 0)
        acc = fmaf(w[c * k + j], gated_input(bcx, b * T + src, C, c), acc);
      else if (state)
        acc = fmaf(w[c * k + j], state[(b * hist + hist + src) * C + c], acc);
    }
    out[e] = bcx[row * 3 * C + C + c] * acc;
  }
}

// The new history: the last k-1 gated inputs of [state, b * x~], one thread
// per (sequence, channel) walking its slots in order (slot i reads slot i + T).
__global__ void gated_conv_state(float* state, const float* bcx, ConvShape s) {
  await_prior_grids();
  const int64_t C = s.channels, T = s.seq, hist = s.kernel - 1;
  const int64_t bc = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (bc >= int64_t(s.batch) * C) return;
  const int64_t b = bc / C, c = bc % C;
  float* st = state + b * hist * C;
  for (int64_t i = 0; i < hist; ++i) {
    const int64_t src = T + i - hist;
    st[i * C + c] = src >= 0 ? gated_input(bcx, b * T + src, C, c) : st[(i + T) * C + c];
  }
}

__global__ void gated_conv_backward_elementwise(float* dbcx, const float* dout, const float* bcx,
                                                const float* w, ConvShape s) {
  await_prior_grids();
  const int64_t C = s.channels, k = s.kernel, T = s.seq, hist = k - 1;
  const int64_t count = int64_t(s.batch) * T * C;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < count;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = e % C, row = e / C, b = row / T, t = row % T;
    float conv = 0.0f, dbx = 0.0f;
    for (int64_t j = 0; j < k; ++j) {
      const int64_t src = t - hist + j;
      if (src >= 0) conv = fmaf(w[c * k + j], gated_input(bcx, b * T + src, C, c), conv);
    }
    for (int64_t j = 0; j < k; ++j) {
      const int64_t dst = t + hist - j;
      if (dst >= T) continue;
      const int64_t drow = b * T + dst;
      dbx = fmaf(w[c * k + j], dout[drow * C + c] * bcx[drow * 3 * C + C + c], dbx);
    }
    const float* in = bcx + row * 3 * C;
    float* d = dbcx + row * 3 * C;
    d[c] = dbx * in[2 * C + c];
    d[C + c] = dout[e] * conv;
    d[2 * C + c] = dbx * in[c];
  }
}

// dw[c, j] as a column sum (columns j * C + c, coalesced) of g[t] bx[t-(k-1)+j].
struct GatedConvWeightTerm {
  const float *dout, *bcx;
  int64_t C, k, T;
  __device__ float operator()(int64_t row, int64_t col) const {
    const int64_t c = col % C, j = col / C, t = row % T, src = t - (k - 1) + j;
    if (src < 0) return 0.0f;
    const float g = dout[row * C + c] * bcx[row * 3 * C + C + c];
    return g * gated_input(bcx, row - t + src, C, c);
  }
};

dim3 tile_grid(const ConvShape& s) {
  return dim3(unsigned((s.channels + kChannels - 1) / kChannels), unsigned(time_tiles(s)), unsigned(s.batch));
}

}  // namespace

int64_t gated_conv_scratch(const ConvShape& s) {
  const int64_t rows = int64_t(s.batch) * s.seq, cols = int64_t(s.channels) * s.kernel;
  if (tiled(s, false)) return int64_t(s.batch) * time_tiles(s) * cols;
  return column_sum_scratch(rows, cols);
}

void gated_conv_forward(cudaStream_t stream, float* out, const float* bcx, const float* w, float* state,
                        const ConvShape& s) {
  const int64_t count = int64_t(s.batch) * s.seq * s.channels;
  if (count <= 0) return;
  if (tiled(s, state != nullptr)) {
    const std::size_t bytes = sizeof(float) * kChannels * (2 * s.kernel + kTile - 1);
    gated_conv_forward_tiled<<<tile_grid(s), dim3(kChannels, kRows), bytes, stream>>>(out, bcx, w, s);
    LIVS_CUDA_CHECK_LAUNCH();
    return;
  }
  gated_conv_forward_elementwise<<<grid_for(count), 256, 0, stream>>>(out, bcx, w, state, s);
  LIVS_CUDA_CHECK_LAUNCH();
  if (!state || s.kernel <= 1) return;
  const int64_t sequences = int64_t(s.batch) * s.channels;
  gated_conv_state<<<unsigned((sequences + 255) / 256), 256, 0, stream>>>(state, bcx, s);
  LIVS_CUDA_CHECK_LAUNCH();
}

void gated_conv_backward(cudaStream_t stream, float* dbcx, float* dw, const float* dout, const float* bcx,
                         const float* w, const ConvShape& s, float* partials) {
  const int64_t C = s.channels, rows = int64_t(s.batch) * s.seq, count = rows * C;
  if (count <= 0) return;
  if (tiled(s, false)) {
    const std::size_t bytes = sizeof(float) * kChannels * (s.kernel + 2 * (kTile + s.kernel - 1));
    gated_conv_backward_tiled<<<tile_grid(s), dim3(kChannels, kRows), bytes, stream>>>(dbcx, partials, dout,
                                                                                       bcx, w, s);
    LIVS_CUDA_CHECK_LAUNCH();
    // dw[c * k + j] += the tiles' partials[tile][j][c], 8 warps per 32 columns
    // (a thread per column over every tile took 25 us a call at d 256).
    finish_column_sums(stream, partials, int64_t(s.batch) * time_tiles(s), C * s.kernel,
                       AddToTapWeight{dw, C, s.kernel});
    return;
  }
  gated_conv_backward_elementwise<<<grid_for(count), 256, 0, stream>>>(dbcx, dout, bcx, w, s);
  LIVS_CUDA_CHECK_LAUNCH();
  column_sums(stream, partials, rows, C * s.kernel, GatedConvWeightTerm{dout, bcx, C, s.kernel, s.seq},
              AddToTapWeight{dw, C, s.kernel});
}

}  // namespace livs::evaluator::cuda
