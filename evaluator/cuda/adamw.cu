// AdamW on fp32 master weights and moments, the CPU backend's formula.
#include <cmath>

#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/device_math.cuh"
#include "evaluator/cuda/kernels.hpp"

namespace livs::evaluator::cuda {

namespace {

__global__ void adamw_kernel(float* params, const float* grads, float* m, float* v, int64_t count,
                             AdamWStep s, float bias_correction1, float bias_correction2) {
  const float decay = 1.0f - s.learning_rate * s.weight_decay;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x) {
    const float g = grads[i] * s.grad_scale;
    const float mi = s.beta1 * m[i] + (1.0f - s.beta1) * g;
    const float vi = s.beta2 * v[i] + (1.0f - s.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const float m_hat = mi / bias_correction1, v_hat = vi / bias_correction2;
    params[i] = params[i] * decay - s.learning_rate * m_hat / (sqrtf(v_hat) + s.eps);
  }
}

}  // namespace

void adamw_update(cudaStream_t stream, float* params, const float* grads, float* m, float* v, int64_t count,
                  const AdamWStep& step) {
  if (count <= 0) return;
  // The bias corrections in double on the host, as the CPU backend computes them.
  const float bc1 = 1.0f - float(std::pow(double(step.beta1), step.step));
  const float bc2 = 1.0f - float(std::pow(double(step.beta2), step.step));
  adamw_kernel<<<grid_for(count), 256, 0, stream>>>(params, grads, m, v, count, step, bc1, bc2);
  LIVS_CUDA_CHECK_LAUNCH();
}

}  // namespace livs::evaluator::cuda
