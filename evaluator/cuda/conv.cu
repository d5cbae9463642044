// Depthwise causal convolution over [batch, seq, channels]:
//   y[b,t,c] = bias[c] + sum_j w[c,j] x[b, t-(k-1)+j, c],
// history before t = 0 from the decode state (or zero). Each output sums the
// bias first, then j = 0..k-1 with fmaf, as the CPU backend does.
#include "evaluator/cuda/column_sums.cuh"
#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/device_math.cuh"
#include "evaluator/cuda/kernels.hpp"

namespace livs::evaluator::cuda {

namespace {

__global__ void causal_conv_forward_kernel(float* y, const float* x, const float* w, const float* bias,
                                           const float* state, ConvShape s) {
  const int64_t C = s.channels, k = s.kernel, T = s.seq, hist = k - 1;
  const int64_t count = int64_t(s.batch) * T * C;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < count;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = e % C, row = e / C, b = row / T, t = row % T;
    float acc = bias ? bias[c] : 0.0f;
    for (int64_t j = 0; j < k; ++j) {
      const int64_t src = t - hist + j;
      if (src >= 0)
        acc = fmaf(w[c * k + j], x[(b * T + src) * C + c], acc);
      else if (state)
        acc = fmaf(w[c * k + j], state[(b * hist + hist + src) * C + c], acc);
    }
    y[e] = acc;
  }
}

// The new history is the last k-1 inputs of [state, x]; one thread per
// (sequence, channel) walks its slots in order, since slot i reads slot i + T.
__global__ void causal_conv_state_kernel(float* state, const float* x, ConvShape s) {
  const int64_t C = s.channels, T = s.seq, hist = s.kernel - 1;
  const int64_t bc = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (bc >= int64_t(s.batch) * C) return;
  const int64_t b = bc / C, c = bc % C;
  float* st = state + b * hist * C;
  for (int64_t i = 0; i < hist; ++i) {
    const int64_t src = T + i - hist;
    st[i * C + c] = src >= 0 ? x[(b * T + src) * C + c] : st[(i + T) * C + c];
  }
}

// dx[b,s,c] += sum_j w[c,j] dy[b, s+(k-1)-j, c].
__global__ void causal_conv_backward_input_kernel(float* dx, const float* dy, const float* w, ConvShape s) {
  const int64_t C = s.channels, k = s.kernel, T = s.seq, hist = k - 1;
  const int64_t count = int64_t(s.batch) * T * C;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < count;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = e % C, row = e / C, b = row / T, t = row % T;
    float acc = dx[e];
    for (int64_t j = 0; j < k; ++j) {
      const int64_t dst = t + hist - j;
      if (dst < T) acc = fmaf(w[c * k + j], dy[(b * T + dst) * C + c], acc);
    }
    dx[e] = acc;
  }
}

// dw[c, j] as a column sum over rows (b, t) of dy[b,t,c] x[b, t-(k-1)+j, c].
struct ConvWeightTerm {
  const float *dy, *x;
  int64_t C, k, T;
  __device__ float operator()(int64_t row, int64_t col) const {
    const int64_t c = col / k, j = col % k, t = row % T, src = t - (k - 1) + j;
    return src >= 0 ? dy[row * C + c] * x[(row - t + src) * C + c] : 0.0f;
  }
};
struct ConvBiasTerm {
  const float* dy;
  int64_t C;
  __device__ float operator()(int64_t row, int64_t c) const { return dy[row * C + c]; }
};

}  // namespace

void causal_conv_forward(cudaStream_t stream, float* y, const float* x, const float* w, const float* bias,
                         float* state, const ConvShape& s) {
  const int64_t count = int64_t(s.batch) * s.seq * s.channels;
  if (count <= 0) return;
  causal_conv_forward_kernel<<<grid_for(count), 256, 0, stream>>>(y, x, w, bias, state, s);
  LIVS_CUDA_CHECK_LAUNCH();
  if (!state || s.kernel <= 1) return;
  const int64_t sequences = int64_t(s.batch) * s.channels;
  causal_conv_state_kernel<<<unsigned((sequences + 255) / 256), 256, 0, stream>>>(state, x, s);
  LIVS_CUDA_CHECK_LAUNCH();
}

void causal_conv_backward(cudaStream_t stream, float* dx, float* dw, float* dbias, const float* dy,
                          const float* x, const float* w, const ConvShape& s, float* partials) {
  const int64_t C = s.channels, rows = int64_t(s.batch) * s.seq, count = rows * C;
  if (count <= 0) return;
  causal_conv_backward_input_kernel<<<grid_for(count), 256, 0, stream>>>(dx, dy, w, s);
  LIVS_CUDA_CHECK_LAUNCH();
  column_sums(stream, partials, rows, C * s.kernel, ConvWeightTerm{dy, x, C, s.kernel, s.seq},
              AddScaled{dw, 1.0f});
  if (dbias) column_sums(stream, partials, rows, C, ConvBiasTerm{dy, C}, AddScaled{dbias, 1.0f});
}

}  // namespace livs::evaluator::cuda
