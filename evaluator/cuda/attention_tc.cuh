#pragma once
// The tensor-core attention (bf16 operands, fp32 accumulation and softmax):
// launchers that attention.cu and attention_backward.cu dispatch to when
// attention_tc_supported says yes. Inputs and outputs are the backend's fp32
// views; the kernels round q, k, v, dout (and p, ds) to bf16 only inside
// shared memory and registers.
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>

#include "evaluator/backend.hpp"

namespace livs::evaluator::cuda {

// LIVSEARCH_ATTENTION_TC=0 in the environment turns the tensor-core path off
// (a bf16 backend then runs the exact fp32 attention kernels): a switch for
// telling attention's bf16 rounding apart from the GEMMs'.
bool attention_tc_enabled();
// Enabled, head_dim 16, 32, 64 or 128, a positive scale, dv16's row stride a
// multiple of 8, and every pointer 16-byte aligned (the tiles are staged with
// 16-byte loads).
bool attention_tc_supported(const AttentionShape& shape, std::initializer_list<const void*> pointers);

// out16 (or nullptr): a bf16 copy of out as well, 4-byte aligned.
void attention_tc_forward(cudaStream_t stream, float* out, void* out16, float* lse, const float* q,
                          const float* k, const float* v, const AttentionShape& shape);

// Adds into dq, dk, dv (accumulate), or writes them; dv16 (or nullptr): dv's
// bf16 copy as well. scratch: attention_tc_backward_scratch_bytes
// bytes, 16-byte aligned, for the bf16 copies of q, k, v and dout and the
// fp32 delta = bf16(dout) . out of every query row, made by the call itself.
std::size_t attention_tc_backward_scratch_bytes(const AttentionShape& shape);
void attention_tc_backward(cudaStream_t stream, float* dq, float* dk, float* dv, const float* dout,
                           const float* q, const float* k, const float* v, const float* out, const float* lse,
                           void* scratch, const AttentionShape& shape, bool accumulate, void* dv16);

}  // namespace livs::evaluator::cuda
