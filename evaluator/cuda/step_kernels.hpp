#pragma once
// Launchers of the device-side training step's scalars (reductions.cu,
// adamw.cu): the loss mean, the clipping scale and AdamW reading its per-step
// values from device memory. Nothing here reads or writes the host, so a
// step built from them can be captured as a CUDA graph.
#include <cuda_runtime.h>

#include <cstdint>

#include "evaluator/backend.hpp"

namespace livs::evaluator::cuda {

// partials: kSumOfSquaresBlocks + 1 doubles of scratch (kernels.hpp).
// *out = sum(x) / count, summed in the fixed order of sum_of_squares.
void mean_to_device(cudaStream_t stream, double* partials, double* out, const float* x, int64_t count);
// *norm_out = sqrt(sum_of_squares(grads)) (the same partials and tree, so the
// same bits), *scale_out = max_norm / norm when max_norm > 0 and norm > max_norm, else 1.
void grad_clip_scale(cudaStream_t stream, double* partials, float* scale_out, double* norm_out,
                     const float* grads, int64_t count, double max_norm);

void adamw_update_device(cudaStream_t stream, float* params, const float* grads, float* m, float* v,
                         int64_t count, const AdamWStep& constants, const DeviceStepScalars* scalars);

}  // namespace livs::evaluator::cuda
