#pragma once
// The tensor-core attention (bf16 operands, fp32 accumulation and softmax):
// launchers that attention.cu and attention_backward.cu dispatch to when
// attention_tc_supported says yes. Inputs and outputs are the backend's fp32
// views; the kernels round q, k, v, dout (and p, ds) to bf16 only inside
// shared memory and registers.
#include <cuda_runtime.h>

#include <cstdint>
#include <initializer_list>

#include "evaluator/backend.hpp"

namespace livs::evaluator::cuda {

// LIVSEARCH_ATTENTION_TC=0 in the environment turns the tensor-core path off
// (a bf16 backend then runs the exact fp32 attention kernels): a switch for
// telling attention's bf16 rounding apart from the GEMMs'.
bool attention_tc_enabled();
// Enabled, head_dim 16, 32, 64 or 128, a positive scale, and every pointer 16-byte aligned
// (the tiles are staged with 16-byte loads).
bool attention_tc_supported(const AttentionShape& shape, std::initializer_list<const void*> pointers);

void attention_tc_forward(cudaStream_t stream, float* out, float* lse, const float* q, const float* k,
                          const float* v, const AttentionShape& shape);

// delta: bf16(dout) . out of every query row in fp32, already computed
// (dout rounded as the kernels round it, so that dp - delta is consistent).
// Accumulates into dq, dk, dv.
void attention_tc_backward(cudaStream_t stream, float* dq, float* dk, float* dv, const float* dout,
                           const float* q, const float* k, const float* v, const float* lse,
                           const float* delta, const AttentionShape& shape);

}  // namespace livs::evaluator::cuda
