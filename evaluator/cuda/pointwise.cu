// Pointwise kernels of the gated blocks and of linear attention: activations
// (SiLU, tanh GeLU, softplus), products, per-column biases, positive feature
// maps and GLA's log decay; the CPU backend's formulas, elementwise.
#include "evaluator/cuda/column_sums.cuh"
#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/device_math.cuh"
#include "evaluator/cuda/grid_dependency.cuh"
#include "evaluator/cuda/kernels.hpp"

namespace livs::evaluator::cuda {

namespace {

constexpr float kGeluK = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kGeluA = 0.044715f;

__device__ inline float softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

__device__ inline float activate(float x, ActivationKind kind) {
  switch (kind) {
    case ActivationKind::silu:
      return x * sigmoid(x);
    case ActivationKind::gelu_tanh:
      return 0.5f * x * (1.0f + tanhf(kGeluK * (x + kGeluA * x * x * x)));
    case ActivationKind::softplus:
      return softplus(x);
    case ActivationKind::sigmoid:
      return sigmoid(x);
  }
  return 0.0f;
}

__device__ inline float activation_slope(float x, ActivationKind kind) {
  switch (kind) {
    case ActivationKind::silu: {
      const float s = sigmoid(x);
      return s * (1.0f + x * (1.0f - s));
    }
    case ActivationKind::gelu_tanh: {
      const float th = tanhf(kGeluK * (x + kGeluA * x * x * x));
      return 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * kGeluK * (1.0f + 3.0f * kGeluA * x * x);
    }
    case ActivationKind::softplus:
      return sigmoid(x);
    case ActivationKind::sigmoid: {
      const float s = sigmoid(x);
      return s * (1.0f - s);
    }
  }
  return 0.0f;
}

__device__ inline float feature_map(float x, FeatureMapKind kind) {
  switch (kind) {
    case FeatureMapKind::elu_plus_one:
      return x > 0.0f ? x + 1.0f : expf(x);
    case FeatureMapKind::relu:
      return x > 0.0f ? x : 0.0f;
    case FeatureMapKind::identity:
      return x;
  }
  return x;
}

__device__ inline float feature_map_slope(float x, FeatureMapKind kind) {
  if (kind == FeatureMapKind::elu_plus_one) return x > 0.0f ? 1.0f : expf(x);
  if (kind == FeatureMapKind::relu) return x > 0.0f ? 1.0f : 0.0f;
  return 1.0f;
}

#define LIVS_GRID_STRIDE(i, count)                                              \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (count); \
       i += int64_t(gridDim.x) * blockDim.x)

// The elementwise kernels below take 16-byte accesses where every pointer
// allows (grid_stride_quads); f4 applies a scalar function to each component.
template <class F>
__device__ inline float4 f4(F f, float4 a) {
  return {f(a.x), f(a.y), f(a.z), f(a.w)};
}
template <class F>
__device__ inline float4 f4(F f, float4 a, float4 b) {
  return {f(a.x, b.x), f(a.y, b.y), f(a.z, b.z), f(a.w, b.w)};
}
template <class F>
__device__ inline float4 f4(F f, float4 a, float4 b, float4 c) {
  return {f(a.x, b.x, c.x), f(a.y, b.y, c.y), f(a.z, b.z, c.z), f(a.w, b.w, c.w)};
}

// out = f(in)
template <class F>
__device__ inline void map_unary(float* out, const float* in, int64_t count, bool vector, F f) {
  grid_stride_quads(
      count, vector, [&](int64_t i) { store4(out, i, f4(f, load4(in, i))); },
      [&](int64_t i) { out[i] = f(in[i]); });
}
// din += dout * slope(in) (kAccumulate), else din = dout * slope(in) without
// reading din; one kernel for every elementwise map's backward.
template <bool kAccumulate, class F>
__global__ void slope_backward_kernel(float* din, const float* dout, const float* in, int64_t count,
                                      bool vector, F slope) {
  await_prior_grids();
  auto step = [&](float acc, float d, float x) { return kAccumulate ? acc + d * slope(x) : d * slope(x); };
  grid_stride_quads(
      count, vector,
      [&](int64_t i) {
        const float4 acc = kAccumulate ? load4(din, i) : float4{};
        store4(din, i, f4(step, acc, load4(dout, i), load4(in, i)));
      },
      [&](int64_t i) { din[i] = step(kAccumulate ? din[i] : 0.0f, dout[i], in[i]); });
}
struct ActivationSlope {
  ActivationKind kind;
  __device__ float operator()(float x) const { return activation_slope(x, kind); }
};
struct FeatureMapSlope {
  FeatureMapKind kind;
  __device__ float operator()(float x) const { return feature_map_slope(x, kind); }
};
template <class F>
void launch_slope_backward(cudaStream_t stream, float* din, const float* dout, const float* in, int64_t count,
                           F slope, bool accumulate) {
  launch_adding_or_writing(stream, count, accumulate, slope_backward_kernel<true, F>,
                           slope_backward_kernel<false, F>, din, dout, in, count, aligned16(din, dout, in),
                           slope);
}

__global__ void activation_forward_kernel(float* out, const float* in, int64_t count, ActivationKind kind,
                                          bool vector) {
  await_prior_grids();
  map_unary(out, in, count, vector, [kind](float x) { return activate(x, kind); });
}
__global__ void multiply_forward_kernel(float* out, const float* a, const float* b, int64_t count,
                                        bool vector) {
  await_prior_grids();
  auto mul = [](float x, float y) { return x * y; };
  grid_stride_quads(
      count, vector, [&](int64_t i) { store4(out, i, f4(mul, load4(a, i), load4(b, i))); },
      [&](int64_t i) { out[i] = a[i] * b[i]; });
}
// da (+)= dout * b, db (+)= dout * a (kAccumulate: added; else written without reading them).
template <bool kAccumulate>
__global__ void multiply_backward_kernel(float* da, float* db, const float* dout, const float* a,
                                         const float* b, int64_t count, bool vector) {
  await_prior_grids();
  auto step = [](float acc, float d, float other) { return kAccumulate ? acc + d * other : d * other; };
  grid_stride_quads(
      count, vector,
      [&](int64_t i) {
        const float4 d = load4(dout, i), av = load4(a, i), bv = load4(b, i);
        store4(da, i, f4(step, kAccumulate ? load4(da, i) : float4{}, d, bv));
        store4(db, i, f4(step, kAccumulate ? load4(db, i) : float4{}, d, av));
      },
      [&](int64_t i) {
        da[i] = step(kAccumulate ? da[i] : 0.0f, dout[i], b[i]);
        db[i] = step(kAccumulate ? db[i] : 0.0f, dout[i], a[i]);
      });
}
__global__ void add_bias_kernel(float* y, const float* bias, int64_t count, int64_t cols) {
  await_prior_grids();
  LIVS_GRID_STRIDE(i, count) y[i] += bias[i % cols];
}
__global__ void feature_map_forward_kernel(float* out, const float* in, int64_t count, FeatureMapKind kind,
                                           bool vector) {
  await_prior_grids();
  map_unary(out, in, count, vector, [kind](float x) { return feature_map(x, kind); });
}

// log(sigmoid(u)) = -softplus(-u), finite for large |u|.
__global__ void gla_log_decay_forward_kernel(float* log_alpha, const float* z, const float* bias,
                                             int64_t count, int64_t cols, float temperature) {
  await_prior_grids();
  LIVS_GRID_STRIDE(i, count) {
    const float u = z[i] + bias[i % cols];
    const float log_sigmoid = u >= 0.0f ? -log1pf(expf(-u)) : u - log1pf(expf(u));
    log_alpha[i] = log_sigmoid / temperature;
  }
}

// d log_alpha / dz = (1 - sigmoid(u)) / temperature.
struct GlaSlope {
  const float *dlog_alpha, *z, *bias;
  int64_t cols;
  float temperature;
  __device__ float operator()(int64_t n, int64_t c) const {
    const int64_t i = n * cols + c;
    return dlog_alpha[i] / (1.0f + expf(z[i] + bias[c])) / temperature;
  }
};

__global__ void gla_log_decay_backward_kernel(float* dz, GlaSlope slope, int64_t count) {
  await_prior_grids();
  LIVS_GRID_STRIDE(i, count) dz[i] += slope(i / slope.cols, i % slope.cols);
}

// The differential halves: in [rows, 2W] -> out [rows, W].
__global__ void halves_difference_forward_kernel(float* out, const float* in, const float* lambda,
                                                 float lambda_init, int64_t count, int64_t W) {
  await_prior_grids();
  LIVS_GRID_STRIDE(i, count) {
    const int64_t n = i / W, c = i % W;
    out[i] = in[n * 2 * W + c] - (lambda_init + lambda[c]) * in[n * 2 * W + W + c];
  }
}
__global__ void halves_difference_backward_kernel(float* din, const float* dout, const float* lambda,
                                                  float lambda_init, int64_t count, int64_t W) {
  await_prior_grids();
  LIVS_GRID_STRIDE(i, count) {
    const int64_t n = i / W, c = i % W;
    const float g = dout[i];
    din[n * 2 * W + c] += g;
    din[n * 2 * W + W + c] -= (lambda_init + lambda[c]) * g;
  }
}
struct SecondHalfTerm {  // dout[n, c] * in[n, W + c]
  const float *dout, *in;
  int64_t W;
  __device__ float operator()(int64_t n, int64_t c) const { return dout[n * W + c] * in[n * 2 * W + W + c]; }
};

struct MatrixTerm {
  const float* y;
  int64_t cols;
  __device__ float operator()(int64_t n, int64_t c) const { return y[n * cols + c]; }
};

#undef LIVS_GRID_STRIDE

}  // namespace

void activation_forward(cudaStream_t stream, float* out, const float* in, int64_t count,
                        ActivationKind kind) {
  if (count <= 0) return;
  activation_forward_kernel<<<grid_for((count + 3) / 4), 256, 0, stream>>>(out, in, count, kind,
                                                                           aligned16(out, in));
  LIVS_CUDA_CHECK_LAUNCH();
}
void activation_backward(cudaStream_t stream, float* din, const float* dout, const float* in, int64_t count,
                         ActivationKind kind, bool accumulate) {
  launch_slope_backward(stream, din, dout, in, count, ActivationSlope{kind}, accumulate);
}
void multiply_forward(cudaStream_t stream, float* out, const float* a, const float* b, int64_t count) {
  if (count <= 0) return;
  multiply_forward_kernel<<<grid_for((count + 3) / 4), 256, 0, stream>>>(out, a, b, count,
                                                                         aligned16(out, a, b));
  LIVS_CUDA_CHECK_LAUNCH();
}
void multiply_backward(cudaStream_t stream, float* da, float* db, const float* dout, const float* a,
                       const float* b, int64_t count, bool accumulate) {
  launch_adding_or_writing(stream, count, accumulate, multiply_backward_kernel<true>,
                           multiply_backward_kernel<false>, da, db, dout, a, b, count,
                           aligned16(da, db, dout, a, b));
}
void add_bias(cudaStream_t stream, Matrix y, const float* bias) {
  if (y.numel() <= 0) return;
  add_bias_kernel<<<grid_for(y.numel()), 256, 0, stream>>>(y.data, bias, y.numel(), y.cols);
  LIVS_CUDA_CHECK_LAUNCH();
}
void bias_backward(cudaStream_t stream, float* dbias, ConstMatrix dy, float* partials) {
  column_sums(stream, partials, dy.rows, dy.cols, MatrixTerm{dy.data, dy.cols}, AddScaled{dbias, 1.0f});
}
void feature_map_forward(cudaStream_t stream, float* out, const float* in, int64_t count,
                         FeatureMapKind kind) {
  if (count <= 0) return;
  feature_map_forward_kernel<<<grid_for((count + 3) / 4), 256, 0, stream>>>(out, in, count, kind,
                                                                            aligned16(out, in));
  LIVS_CUDA_CHECK_LAUNCH();
}
void feature_map_backward(cudaStream_t stream, float* din, const float* dout, const float* in, int64_t count,
                          FeatureMapKind kind, bool accumulate) {
  launch_slope_backward(stream, din, dout, in, count, FeatureMapSlope{kind}, accumulate);
}
void gla_log_decay_forward(cudaStream_t stream, float* log_alpha, const float* z, const float* bias,
                           int64_t rows, int64_t cols, float temperature) {
  if (rows * cols <= 0) return;
  gla_log_decay_forward_kernel<<<grid_for(rows * cols), 256, 0, stream>>>(log_alpha, z, bias, rows * cols,
                                                                          cols, temperature);
  LIVS_CUDA_CHECK_LAUNCH();
}
void gla_log_decay_backward(cudaStream_t stream, float* dz, float* dbias, const float* dlog_alpha,
                            const float* z, const float* bias, int64_t rows, int64_t cols, float temperature,
                            float* partials) {
  if (rows * cols <= 0) return;
  const GlaSlope slope{dlog_alpha, z, bias, cols, temperature};
  gla_log_decay_backward_kernel<<<grid_for(rows * cols), 256, 0, stream>>>(dz, slope, rows * cols);
  LIVS_CUDA_CHECK_LAUNCH();
  column_sums(stream, partials, rows, cols, slope, AddScaled{dbias, 1.0f});
}

void halves_difference_forward(cudaStream_t stream, Matrix out, ConstMatrix in, const float* lambda,
                               float lambda_init) {
  if (out.numel() <= 0) return;
  halves_difference_forward_kernel<<<grid_for(out.numel()), 256, 0, stream>>>(
      out.data, in.data, lambda, lambda_init, out.numel(), out.cols);
  LIVS_CUDA_CHECK_LAUNCH();
}
void halves_difference_backward(cudaStream_t stream, Matrix din, float* dlambda, ConstMatrix dout,
                                ConstMatrix in, const float* lambda, float lambda_init, float* partials) {
  if (dout.numel() <= 0) return;
  halves_difference_backward_kernel<<<grid_for(dout.numel()), 256, 0, stream>>>(
      din.data, dout.data, lambda, lambda_init, dout.numel(), dout.cols);
  LIVS_CUDA_CHECK_LAUNCH();
  column_sums(stream, partials, dout.rows, dout.cols, SecondHalfTerm{dout.data, in.data, dout.cols},
              AddScaled{dlambda, -1.0f});
}

}  // namespace livs::evaluator::cuda
