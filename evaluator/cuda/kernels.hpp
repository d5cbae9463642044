#pragma once
// The launchers of the CUDA kernels, one group per .cu file. Each takes the
// stream it runs on and the same arguments as its Backend method; each checks
// its launch. Arguments are device pointers.
#include <cuda_runtime.h>

#include <cstdint>

#ifdef __CUDACC__
// backend.hpp's MatrixView<const float> has a conversion to itself that is
// never used; nvcc says so (#554) for every instantiation.
#pragma nv_diag_suppress 554
#endif
#include "evaluator/backend.hpp"

namespace livs::evaluator::cuda {

// elementwise.cu
void fill(cudaStream_t stream, float* dst, int64_t count, float value);
void add(cudaStream_t stream, float* out, const float* a, const float* b, int64_t count);

// swiglu.cu
void swiglu_forward(cudaStream_t stream, float* h, const float* gate, const float* up, int64_t count);
void swiglu_backward(cudaStream_t stream, float* dgate, float* dup, const float* dh, const float* gate,
                     const float* up, int64_t count);

// embedding.cu
void embedding_forward(cudaStream_t stream, Matrix out, ConstMatrix table, const int32_t* tokens);
void embedding_backward(cudaStream_t stream, Matrix dtable, ConstMatrix dout, const int32_t* tokens);

// rmsnorm.cu. column_partials holds rmsnorm_partial_count(rows) * cols floats.
int64_t rmsnorm_partial_count(int64_t rows);
void rmsnorm_forward(cudaStream_t stream, Matrix out, float* rstd, ConstMatrix x, const float* gain,
                     float eps);
void rmsnorm_backward(cudaStream_t stream, Matrix dx, float* dgain, ConstMatrix dout, ConstMatrix x,
                      const float* gain, const float* rstd, float* column_partials);

// rope.cu
void rope_forward(cudaStream_t stream, float* out, const float* in, const float* cos, const float* sin,
                  const RopeShape& shape);
void rope_backward(cudaStream_t stream, float* din, const float* dout, const float* cos, const float* sin,
                   const RopeShape& shape);

// attention.cu (forward and decode) and attention_backward.cu.
// delta holds batch * heads * seq floats of scratch.
void attention_forward(cudaStream_t stream, float* out, float* lse, const float* q, const float* k,
                       const float* v, const AttentionShape& shape);
void attention_backward(cudaStream_t stream, float* dq, float* dk, float* dv, const float* dout,
                        const float* q, const float* k, const float* v, const float* out, const float* lse,
                        float* delta, const AttentionShape& shape);
void kv_cache_write(cudaStream_t stream, float* k_cache, float* v_cache, const float* k, const float* v,
                    const AttentionShape& shape, int64_t capacity, int64_t position);
void attention_decode(cudaStream_t stream, float* out, const float* q, const float* k_cache,
                      const float* v_cache, const AttentionShape& shape, int64_t capacity, int64_t position);

// cross_entropy.cu
void cross_entropy_forward(cudaStream_t stream, float* losses, float* lse, ConstMatrix logits,
                           const int32_t* targets);
void cross_entropy_backward(cudaStream_t stream, Matrix dlogits, ConstMatrix logits, const float* lse,
                            const int32_t* targets, float scale);

// reductions.cu. partials holds kSumOfSquaresBlocks + 1 doubles; the result
// lands in partials[kSumOfSquaresBlocks].
constexpr int kSumOfSquaresBlocks = 256;
void sum_of_squares(cudaStream_t stream, double* partials, const float* x, int64_t count);

// adamw.cu
void adamw_update(cudaStream_t stream, float* params, const float* grads, float* m, float* v, int64_t count,
                  const AdamWStep& step);

}  // namespace livs::evaluator::cuda
