// RMSNorm: y = x * rstd * g, rstd = 1 / sqrt(mean(x^2) + eps); one warp per row.
#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/device_math.cuh"
#include "evaluator/cuda/kernels.hpp"

namespace livs::evaluator::cuda {

namespace {

constexpr int kRowsPerBlock = 8;       // warps per block
constexpr int64_t kColumnChunks = 64;  // row chunks of the dgain column sums

__global__ void rmsnorm_forward_kernel(float* out, float* rstd, const float* x, const float* gain, float eps,
                                       int64_t rows, int64_t d) {
  const int64_t n = blockIdx.x * int64_t(kRowsPerBlock) + threadIdx.x / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;
  if (n >= rows) return;
  const float* xr = x + n * d;
  float sum = 0.0f;
  for (int64_t i = lane; i < d; i += kWarpSize) sum += xr[i] * xr[i];
  const float s = rsqrtf(warp_sum(sum) / float(d) + eps);
  if (lane == 0) rstd[n] = s;
  for (int64_t i = lane; i < d; i += kWarpSize) out[n * d + i] = xr[i] * s * gain[i];
}

// dx_i += rstd * g_i dy_i - rstd^3 / D * x_i * sum_j g_j dy_j x_j
__global__ void rmsnorm_backward_input_kernel(float* dx, const float* dout, const float* x, const float* gain,
                                              const float* rstd, int64_t rows, int64_t d) {
  const int64_t n = blockIdx.x * int64_t(kRowsPerBlock) + threadIdx.x / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;
  if (n >= rows) return;
  const float *xr = x + n * d, *dyr = dout + n * d;
  float dot = 0.0f;
  for (int64_t i = lane; i < d; i += kWarpSize) dot += gain[i] * dyr[i] * xr[i];
  dot = warp_sum(dot);
  const float s = rstd[n], c = s * s * s * dot / float(d);
  for (int64_t i = lane; i < d; i += kWarpSize) dx[n * d + i] += s * gain[i] * dyr[i] - c * xr[i];
}

// dgain_c += sum_n dy_nc x_nc rstd_n in two deterministic passes: a fixed
// number of row chunks, each summed in row order, then the chunks in order.
__global__ void rmsnorm_gain_partials_kernel(float* partials, const float* dout, const float* x,
                                             const float* rstd, int64_t rows, int64_t d, int64_t chunk_rows) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t chunk = blockIdx.y;
  if (c >= d) return;
  const int64_t n0 = chunk * chunk_rows, n1 = min(rows, n0 + chunk_rows);
  float sum = 0.0f;
  for (int64_t n = n0; n < n1; ++n) sum += dout[n * d + c] * x[n * d + c] * rstd[n];
  partials[chunk * d + c] = sum;
}

__global__ void rmsnorm_gain_reduce_kernel(float* dgain, const float* partials, int64_t chunks, int64_t d) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (c >= d) return;
  float sum = 0.0f;
  for (int64_t k = 0; k < chunks; ++k) sum += partials[k * d + c];
  dgain[c] += sum;
}

unsigned row_blocks(int64_t rows) { return unsigned((rows + kRowsPerBlock - 1) / kRowsPerBlock); }

}  // namespace

int64_t rmsnorm_partial_count(int64_t rows) { return std::min(rows, kColumnChunks); }

void rmsnorm_forward(cudaStream_t stream, Matrix out, float* rstd, ConstMatrix x, const float* gain,
                     float eps) {
  if (x.rows <= 0) return;
  rmsnorm_forward_kernel<<<row_blocks(x.rows), kRowsPerBlock * kWarpSize, 0, stream>>>(
      out.data, rstd, x.data, gain, eps, x.rows, x.cols);
  LIVS_CUDA_CHECK_LAUNCH();
}

void rmsnorm_backward(cudaStream_t stream, Matrix dx, float* dgain, ConstMatrix dout, ConstMatrix x,
                      const float* gain, const float* rstd, float* column_partials) {
  if (x.rows <= 0 || x.cols <= 0) return;
  const int64_t rows = x.rows, d = x.cols;
  rmsnorm_backward_input_kernel<<<row_blocks(rows), kRowsPerBlock * kWarpSize, 0, stream>>>(
      dx.data, dout.data, x.data, gain, rstd, rows, d);
  LIVS_CUDA_CHECK_LAUNCH();
  const int64_t chunks = rmsnorm_partial_count(rows);
  const int64_t chunk_rows = (rows + chunks - 1) / chunks;
  const unsigned column_blocks = unsigned((d + 127) / 128);
  rmsnorm_gain_partials_kernel<<<dim3(column_blocks, unsigned(chunks)), 128, 0, stream>>>(
      column_partials, dout.data, x.data, rstd, rows, d, chunk_rows);
  LIVS_CUDA_CHECK_LAUNCH();
  rmsnorm_gain_reduce_kernel<<<column_blocks, 128, 0, stream>>>(dgain, column_partials, chunks, d);
  LIVS_CUDA_CHECK_LAUNCH();
}

}  // namespace livs::evaluator::cuda
