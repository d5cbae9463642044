// Pointwise kernels of the gated blocks (rec, ssm, gconv): activations
// (SiLU, tanh-approximated GeLU, softplus), the elementwise product of two
// branches, the differential form's difference of two channel halves, and a
// per-column bias with its column-sum gradient.
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>

#include "evaluator/cpu/cpu_backend.hpp"
#include "evaluator/cpu/scan_math.hpp"

namespace livs::evaluator {

namespace {

constexpr int64_t kGrain = 1 << 12;
constexpr float kGeluK = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kGeluA = 0.044715f;

float activate(float x, ActivationKind kind) {
  switch (kind) {
    case ActivationKind::silu:
      return x * cpu::sigmoid(x);
    case ActivationKind::gelu_tanh:
      return 0.5f * x * (1.0f + std::tanh(kGeluK * (x + kGeluA * x * x * x)));
    case ActivationKind::softplus:
      return cpu::softplus(x);
    case ActivationKind::sigmoid:
      return cpu::sigmoid(x);
  }
  return 0.0f;
}

float derivative(float x, ActivationKind kind) {
  switch (kind) {
    case ActivationKind::silu: {
      const float s = cpu::sigmoid(x);
      return s * (1.0f + x * (1.0f - s));
    }
    case ActivationKind::gelu_tanh: {
      const float th = std::tanh(kGeluK * (x + kGeluA * x * x * x));
      return 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * kGeluK * (1.0f + 3.0f * kGeluA * x * x);
    }
    case ActivationKind::softplus:
      return cpu::sigmoid(x);
    case ActivationKind::sigmoid: {
      const float s = cpu::sigmoid(x);
      return s * (1.0f - s);
    }
  }
  return 0.0f;
}

}  // namespace

void CpuBackend::activation_forward(float* out, const float* in, int64_t count, ActivationKind kind) {
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, count, kGrain), [&](const auto& r) {
    for (int64_t i = r.begin(); i != r.end(); ++i) out[i] = activate(in[i], kind);
  });
}

void CpuBackend::activation_backward(float* din, const float* dout, const float* in, int64_t count,
                                     ActivationKind kind, bool accumulate) {
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, count, kGrain), [&](const auto& r) {
    for (int64_t i = r.begin(); i != r.end(); ++i) {
      const float g = dout[i] * derivative(in[i], kind);
      din[i] = accumulate ? din[i] + g : g;
    }
  });
}

void CpuBackend::multiply_forward(float* out, const float* a, const float* b, int64_t count) {
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, count, kGrain), [&](const auto& r) {
    for (int64_t i = r.begin(); i != r.end(); ++i) out[i] = a[i] * b[i];
  });
}

void CpuBackend::multiply_backward(float* da, float* db, const float* dout, const float* a, const float* b,
                                   int64_t count, bool accumulate) {
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, count, kGrain), [&](const auto& r) {
    for (int64_t i = r.begin(); i != r.end(); ++i) {
      da[i] = (accumulate ? da[i] : 0.0f) + dout[i] * b[i];
      db[i] = (accumulate ? db[i] : 0.0f) + dout[i] * a[i];
    }
  });
}

void CpuBackend::add_bias(Matrix y, const float* bias) {
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, y.rows, 16), [&](const auto& r) {
    for (int64_t n = r.begin(); n != r.end(); ++n)
      for (int64_t c = 0; c < y.cols; ++c) y.data[n * y.cols + c] += bias[c];
  });
}

// Column blocks in parallel, rows in order inside each.
void CpuBackend::bias_backward(float* dbias, ConstMatrix dy) {
  constexpr int64_t kBlock = 32;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, (dy.cols + kBlock - 1) / kBlock), [&](const auto& r) {
    for (int64_t blk = r.begin(); blk != r.end(); ++blk) {
      const int64_t c0 = blk * kBlock, c1 = std::min(dy.cols, c0 + kBlock);
      for (int64_t n = 0; n < dy.rows; ++n)
        for (int64_t c = c0; c < c1; ++c) dbias[c] += dy.data[n * dy.cols + c];
    }
  });
}

void CpuBackend::halves_difference_forward(Matrix out, ConstMatrix in, const float* lambda,
                                           float lambda_init) {
  const int64_t W = out.cols;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, out.rows, 16), [&](const auto& r) {
    for (int64_t n = r.begin(); n != r.end(); ++n)
      for (int64_t c = 0; c < W; ++c)
        out.data[n * W + c] = in.data[n * 2 * W + c] - (lambda_init + lambda[c]) * in.data[n * 2 * W + W + c];
  });
}

// din rows in parallel; dlambda by column blocks, rows in order inside each.
void CpuBackend::halves_difference_backward(Matrix din, float* dlambda, ConstMatrix dout, ConstMatrix in,
                                            const float* lambda, float lambda_init) {
  const int64_t W = dout.cols;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, dout.rows, 16), [&](const auto& r) {
    for (int64_t n = r.begin(); n != r.end(); ++n)
      for (int64_t c = 0; c < W; ++c) {
        const float g = dout.data[n * W + c];
        din.data[n * 2 * W + c] += g;
        din.data[n * 2 * W + W + c] -= (lambda_init + lambda[c]) * g;
      }
  });
  constexpr int64_t kBlock = 32;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, (W + kBlock - 1) / kBlock), [&](const auto& r) {
    for (int64_t blk = r.begin(); blk != r.end(); ++blk) {
      const int64_t c0 = blk * kBlock, c1 = std::min(W, c0 + kBlock);
      for (int64_t n = 0; n < dout.rows; ++n)
        for (int64_t c = c0; c < c1; ++c) dlambda[c] -= dout.data[n * W + c] * in.data[n * 2 * W + W + c];
    }
  });
}

}  // namespace livs::evaluator
