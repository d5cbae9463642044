#pragma once
// The chunk kernels of Mamba-2's SSD on the tensor cores (ssd_tc.cu): bf16
// operands, fp32 accumulation, for head_dim and d_state up to 128. ssd.cu
// runs them in place of its fp32 chunk kernels when the backend is in bf16
// mode; the carries across chunks, the per-head sums and decode are shared.
// Same inputs, outputs and scratch as the fp32 kernels they replace.
#include <cuda_runtime.h>

#include "evaluator/cuda/ssd_common.cuh"

namespace livs::evaluator::cuda::ssd {

bool tensor_cores_fit(const SsdShape& shape);

// Forward pass 1: each chunk's end state into its checkpoint slot, its total log-decay into totals.
void tc_chunk_states(cudaStream_t stream, float* ends, float* totals, const float* xbc, const float* dt,
                     const float* a_log, const Dims& d);
// Forward pass 3: the outputs of every chunk from its entering state (checkpoints).
void tc_chunk_outputs(cudaStream_t stream, float* y, const float* checkpoints, const float* xbc,
                      const float* dt, const float* a_log, const float* D, const Dims& d);
// Backward pass 1: what each chunk's outputs send to its entering state, and the totals.
void tc_chunk_adjoints(cudaStream_t stream, float* G, float* totals, const float* dy, const float* xbc,
                       const float* dt, const float* a_log, const Dims& d);
// Backward pass 3: dx, ddt, the per-head dB and dC, the per-block dA and dD.
void tc_chunk_backward(cudaStream_t stream, float* dxbc, float* ddt, float* bc_partials,
                       float* param_partials, const float* dy, const float* checkpoints, const float* Gend,
                       const float* xbc, const float* dt, const float* a_log, const float* D, const Dims& d);

}  // namespace livs::evaluator::cuda::ssd
