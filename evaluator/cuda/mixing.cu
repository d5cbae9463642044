// Combining two branches: the differential form out = a1 - (lambda_init +
// lambda[h]) a2 and the fusion gate out = s y0 + (1 - s) y1, s = sigmoid(gate[c]).
// Parameter gradients are deterministic column sums (column_sums.cuh).
#include "evaluator/cuda/column_sums.cuh"
#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/device_math.cuh"
#include "evaluator/cuda/grid_dependency.cuh"
#include "evaluator/cuda/kernels.hpp"

namespace livs::evaluator::cuda {

namespace {

#define LIVS_GRID_STRIDE(i, count)                                              \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (count); \
       i += int64_t(gridDim.x) * blockDim.x)

__global__ void differential_forward_kernel(float* out, const float* a1, const float* a2, const float* lambda,
                                            float lambda_init, int64_t count, int64_t width, int head_dim) {
  await_prior_grids();
  LIVS_GRID_STRIDE(i, count) out[i] = a1[i] - (lambda_init + lambda[(i % width) / head_dim]) * a2[i];
}
__global__ void differential_backward_kernel(float* da1, float* da2, const float* dout, const float* lambda,
                                             float lambda_init, int64_t count, int64_t width, int head_dim) {
  await_prior_grids();
  LIVS_GRID_STRIDE(i, count) {
    da1[i] += dout[i];
    da2[i] -= (lambda_init + lambda[(i % width) / head_dim]) * dout[i];
  }
}
// dlambda[h] -= sum over the head's columns (in order) of the column sums.
__global__ void differential_lambda_kernel(float* dlambda, const float* column_totals, int heads,
                                           int head_dim) {
  await_prior_grids();
  const int h = blockIdx.x * blockDim.x + threadIdx.x;
  if (h >= heads) return;
  float sum = 0.0f;
  for (int i = h * head_dim; i < (h + 1) * head_dim; ++i) sum += column_totals[i];
  dlambda[h] -= sum;
}

__global__ void gate_mix_forward_kernel(float* out, const float* y0, const float* y1, const float* gate,
                                        int64_t count, int64_t cols) {
  await_prior_grids();
  LIVS_GRID_STRIDE(i, count) {
    const float s = sigmoid(gate[i % cols]);
    out[i] = s * y0[i] + (1.0f - s) * y1[i];
  }
}
__global__ void gate_mix_backward_kernel(float* dy0, float* dy1, const float* dout, const float* gate,
                                         int64_t count, int64_t cols) {
  await_prior_grids();
  LIVS_GRID_STRIDE(i, count) {
    const float s = sigmoid(gate[i % cols]);
    dy0[i] += s * dout[i];
    dy1[i] += (1.0f - s) * dout[i];
  }
}

#undef LIVS_GRID_STRIDE

struct ProductTerm {  // dout * a2
  const float *dout, *a2;
  int64_t cols;
  __device__ float operator()(int64_t n, int64_t c) const { return dout[n * cols + c] * a2[n * cols + c]; }
};
struct StoreTotal {
  float* out;
  __device__ void operator()(int64_t c, float sum) const { out[c] = sum; }
};
struct GateTerm {  // dout * (y0 - y1)
  const float *dout, *y0, *y1;
  int64_t cols;
  __device__ float operator()(int64_t n, int64_t c) const {
    const int64_t i = n * cols + c;
    return dout[i] * (y0[i] - y1[i]);
  }
};
struct GateFinish {  // dgate[c] += sum * s (1 - s)
  float* dgate;
  const float* gate;
  __device__ void operator()(int64_t c, float sum) const {
    const float s = sigmoid(gate[c]);
    dgate[c] += sum * s * (1.0f - s);
  }
};

}  // namespace

void differential_forward(cudaStream_t stream, float* out, const float* a1, const float* a2,
                          const float* lambda, float lambda_init, int64_t rows, int heads, int head_dim) {
  const int64_t width = int64_t(heads) * head_dim, count = rows * width;
  if (count <= 0) return;
  differential_forward_kernel<<<grid_for(count), 256, 0, stream>>>(out, a1, a2, lambda, lambda_init, count,
                                                                   width, head_dim);
  LIVS_CUDA_CHECK_LAUNCH();
}

void differential_backward(cudaStream_t stream, float* da1, float* da2, float* dlambda, const float* dout,
                           const float* a2, const float* lambda, float lambda_init, int64_t rows, int heads,
                           int head_dim, float* partials) {
  const int64_t width = int64_t(heads) * head_dim, count = rows * width;
  if (count <= 0) return;
  differential_backward_kernel<<<grid_for(count), 256, 0, stream>>>(da1, da2, dout, lambda, lambda_init,
                                                                    count, width, head_dim);
  LIVS_CUDA_CHECK_LAUNCH();
  float* totals = partials + column_sum_scratch(rows, width);  // [width] after the chunk partials
  column_sums(stream, partials, rows, width, ProductTerm{dout, a2, width}, StoreTotal{totals});
  differential_lambda_kernel<<<unsigned((heads + 127) / 128), 128, 0, stream>>>(dlambda, totals, heads,
                                                                                head_dim);
  LIVS_CUDA_CHECK_LAUNCH();
}

void gate_mix_forward(cudaStream_t stream, float* out, const float* y0, const float* y1, const float* gate,
                      int64_t rows, int64_t cols) {
  if (rows * cols <= 0) return;
  gate_mix_forward_kernel<<<grid_for(rows * cols), 256, 0, stream>>>(out, y0, y1, gate, rows * cols, cols);
  LIVS_CUDA_CHECK_LAUNCH();
}

void gate_mix_backward(cudaStream_t stream, float* dy0, float* dy1, float* dgate, const float* dout,
                       const float* y0, const float* y1, const float* gate, int64_t rows, int64_t cols,
                       float* partials) {
  if (rows * cols <= 0) return;
  gate_mix_backward_kernel<<<grid_for(rows * cols), 256, 0, stream>>>(dy0, dy1, dout, gate, rows * cols,
                                                                      cols);
  LIVS_CUDA_CHECK_LAUNCH();
  column_sums(stream, partials, rows, cols, GateTerm{dout, y0, y1, cols}, GateFinish{dgate, gate});
}

}  // namespace livs::evaluator::cuda
