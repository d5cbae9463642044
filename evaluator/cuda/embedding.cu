// Embedding lookup and its deterministic scatter-add backward.
#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/device_math.cuh"
#include "evaluator/cuda/kernels.hpp"

namespace livs::evaluator::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void embedding_forward_kernel(float* out, const float* table, const int32_t* tokens, int64_t d) {
  const int64_t n = blockIdx.x;
  const float* src = table + int64_t(tokens[n]) * d;
  for (int64_t c = threadIdx.x; c < d; c += blockDim.x) out[n * d + c] = src[c];
}

// One block per table row: the block scans the tokens in chunks, and each
// thread adds, for its columns, the rows of the tokens that hit this table row
// in token order. No atomics, so the sums have the CPU backend's order and
// the same bits on every run. The scan costs vocab x tokens / kThreads chunk
// tests, cheap next to the LM-head matmuls of the same step.
__global__ void embedding_backward_kernel(float* dtable, const float* dout, const int32_t* tokens,
                                          int64_t rows, int64_t d) {
  __shared__ int hit[kThreads];
  const int32_t row = blockIdx.x;
  float* dst = dtable + int64_t(row) * d;
  for (int64_t n0 = 0; n0 < rows; n0 += kThreads) {
    const int64_t n = n0 + threadIdx.x;
    hit[threadIdx.x] = n < rows && tokens[n] == row;
    if (!__syncthreads_or(hit[threadIdx.x])) continue;
    const int chunk = rows - n0 < kThreads ? int(rows - n0) : kThreads;
    for (int t = 0; t < chunk; ++t)
      if (hit[t])
        for (int64_t c = threadIdx.x; c < d; c += blockDim.x) dst[c] += dout[(n0 + t) * d + c];
    __syncthreads();  // `hit` is rewritten by the next chunk
  }
}

}  // namespace

void embedding_forward(cudaStream_t stream, Matrix out, ConstMatrix table, const int32_t* tokens) {
  if (out.rows <= 0 || out.cols <= 0) return;
  embedding_forward_kernel<<<unsigned(out.rows), 128, 0, stream>>>(out.data, table.data, tokens, out.cols);
  LIVS_CUDA_CHECK_LAUNCH();
}

void embedding_backward(cudaStream_t stream, Matrix dtable, ConstMatrix dout, const int32_t* tokens) {
  if (dout.rows <= 0 || dtable.rows <= 0 || dout.cols <= 0) return;
  embedding_backward_kernel<<<unsigned(dtable.rows), kThreads, 0, stream>>>(dtable.data, dout.data, tokens,
                                                                            dout.rows, dout.cols);
  LIVS_CUDA_CHECK_LAUNCH();
}

}  // namespace livs::evaluator::cuda
