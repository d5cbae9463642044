// AdamW on fp32 master weights and moments, the CPU backend's formula. Two
// entry points: per-step values as host arguments (adamw_update), or read
// from device memory (adamw_update_device: the trainer's step, replayable as
// a CUDA graph). Both run one element function, so they give the same bits.
#include <cmath>

#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/device_math.cuh"
#include "evaluator/cuda/grid_dependency.cuh"
#include "evaluator/cuda/kernels.hpp"
#include "evaluator/cuda/step_kernels.hpp"

namespace livs::evaluator::cuda {

namespace {

__device__ __forceinline__ void adamw_elements(float* params, const float* grads, float* m, float* v,
                                               int64_t count, const AdamWStep& s, float learning_rate,
                                               float grad_scale, float bias_correction1,
                                               float bias_correction2) {
  const float decay = 1.0f - learning_rate * s.weight_decay;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x) {
    const float g = grads[i] * grad_scale;
    const float mi = s.beta1 * m[i] + (1.0f - s.beta1) * g;
    const float vi = s.beta2 * v[i] + (1.0f - s.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const float m_hat = mi / bias_correction1, v_hat = vi / bias_correction2;
    params[i] = params[i] * decay - learning_rate * m_hat / (sqrtf(v_hat) + s.eps);
  }
}

__global__ void adamw_kernel(float* params, const float* grads, float* m, float* v, int64_t count,
                             AdamWStep s, float bias_correction1, float bias_correction2) {
  await_prior_grids();
  adamw_elements(params, grads, m, v, count, s, s.learning_rate, s.grad_scale, bias_correction1,
                 bias_correction2);
}

__global__ void adamw_device_kernel(float* params, const float* grads, float* m, float* v, int64_t count,
                                    AdamWStep constants, const DeviceStepScalars* scalars) {
  await_prior_grids();
  adamw_elements(params, grads, m, v, count, constants, scalars->in.learning_rate, scalars->out.grad_scale,
                 scalars->in.bias_correction1, scalars->in.bias_correction2);
}

}  // namespace

void adamw_update(cudaStream_t stream, float* params, const float* grads, float* m, float* v, int64_t count,
                  const AdamWStep& step) {
  if (count <= 0) return;
  // The bias corrections in double on the host, as the CPU backend computes them.
  const StepScalarInputs in = step_scalar_inputs(step.learning_rate, step.beta1, step.beta2, step.step);
  adamw_kernel<<<grid_for(count), 256, 0, stream>>>(params, grads, m, v, count, step, in.bias_correction1,
                                                    in.bias_correction2);
  LIVS_CUDA_CHECK_LAUNCH();
}

void adamw_update_device(cudaStream_t stream, float* params, const float* grads, float* m, float* v,
                         int64_t count, const AdamWStep& constants, const DeviceStepScalars* scalars) {
  if (count <= 0) return;
  adamw_device_kernel<<<grid_for(count), 256, 0, stream>>>(params, grads, m, v, count, constants, scalars);
  LIVS_CUDA_CHECK_LAUNCH();
}

}  // namespace livs::evaluator::cuda
