#pragma once
// Deterministic column sums of a per-element term over rows, for parameter
// gradients (biases, gates, lambdas): a fixed number of row chunks, each
// summed in row order by one thread per column, then the chunks summed in a
// fixed order and handed to `finish(column, sum)`. No atomics, same bits every run.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/grid_dependency.cuh"
#include "evaluator/cuda/kernels.hpp"  // column_sum_chunks, column_sum_scratch

namespace livs::evaluator::cuda {

template <class Term>
__global__ void column_sum_partials_kernel(float* partials, Term term, int64_t rows, int64_t cols,
                                           int64_t chunk_rows) {
  await_prior_grids();
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x, chunk = blockIdx.y;
  if (c >= cols) return;
  const int64_t n0 = chunk * chunk_rows, n1 = n0 + chunk_rows < rows ? n0 + chunk_rows : rows;
  float sum = 0.0f;
  for (int64_t n = n0; n < n1; ++n) sum += term(n, c);
  partials[chunk * cols + c] = sum;
}

// 32 columns a block: warp w sums chunks w, w + kFinishWarps, ... of its
// lane's column, then the warps' sums are added in warp order. (A thread per
// column walking all 256 chunks took 16 us a call on the few blocks a narrow
// sum has.)
constexpr int kFinishWarps = 8;

template <class Finish>
__global__ void column_sum_finish_kernel(const float* partials, int64_t chunks, int64_t cols, Finish finish) {
  await_prior_grids();
  __shared__ float warp_sums[kFinishWarps][32];
  const int lane = int(threadIdx.x) % 32, warp = int(threadIdx.x) / 32;
  const int64_t c = blockIdx.x * int64_t(32) + lane;
  float sum = 0.0f;
  if (c < cols)
    for (int64_t k = warp; k < chunks; k += kFinishWarps) sum += partials[k * cols + c];
  warp_sums[warp][lane] = sum;
  __syncthreads();
  if (warp != 0 || c >= cols) return;
  float total = 0.0f;
  for (int w = 0; w < kFinishWarps; ++w) total += warp_sums[w][lane];
  finish(c, total);
}

// The second half of a column sum whose partials ([chunks][cols]) another
// kernel wrote: finish(c, the chunks' sum in a fixed order).
template <class Finish>
void finish_column_sums(cudaStream_t stream, const float* partials, int64_t chunks, int64_t cols,
                        Finish finish) {
  if (cols <= 0) return;
  column_sum_finish_kernel<<<unsigned((cols + 31) / 32), 32 * kFinishWarps, 0, stream>>>(partials, chunks,
                                                                                         cols, finish);
  LIVS_CUDA_CHECK_LAUNCH();
}
// The same for column_sum_chunks(rows) chunks.
template <class Finish>
void column_sums_finish(cudaStream_t stream, const float* partials, int64_t rows, int64_t cols,
                        Finish finish) {
  finish_column_sums(stream, partials, column_sum_chunks(rows), cols, finish);
}

// The finish of a convolution's weight gradient, whose columns are numbered
// tap-major (column j * C + c): dw[c * k + j] += sum (weights [C, k]).
struct AddToTapWeight {
  float* dw;
  int64_t C, k;
  __device__ void operator()(int64_t col, float sum) const { dw[(col % C) * k + col / C] += sum; }
};

// term(n, c) -> float and finish(c, sum) are device functors.
template <class Term, class Finish>
void column_sums(cudaStream_t stream, float* partials, int64_t rows, int64_t cols, Term term, Finish finish) {
  if (rows <= 0 || cols <= 0) return;
  const int64_t chunks = column_sum_chunks(rows), chunk_rows = (rows + chunks - 1) / chunks;
  const unsigned column_blocks = unsigned((cols + 127) / 128);
  column_sum_partials_kernel<<<dim3(column_blocks, unsigned(chunks)), 128, 0, stream>>>(partials, term, rows,
                                                                                        cols, chunk_rows);
  LIVS_CUDA_CHECK_LAUNCH();
  column_sums_finish(stream, partials, rows, cols, finish);
}

// finish functor: out[c] += scale * sum.
struct AddScaled {
  float* out;
  float scale;
  __device__ void operator()(int64_t c, float sum) const { out[c] += scale * sum; }
};

}  // namespace livs::evaluator::cuda
