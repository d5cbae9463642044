// CudaBackend's kernel methods: each forwards to its launcher on the stream.
#include "evaluator/cuda/cuda_backend.hpp"
#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/kernels.hpp"

namespace livs::evaluator {

void CudaBackend::embedding_forward(Matrix out, ConstMatrix table, const int32_t* tokens) {
  cuda::embedding_forward(stream_, out, table, tokens);
}
void CudaBackend::embedding_backward(Matrix dtable, ConstMatrix dout, const int32_t* tokens) {
  const std::size_t bytes = cuda::embedding_backward_scratch_bytes(dout.rows, dtable.rows);
  cuda::embedding_backward(stream_, dtable, dout, tokens, scratch(embedding_sort_, bytes), bytes);
}

void CudaBackend::rmsnorm_forward(Matrix out, float* rstd, ConstMatrix x, const float* gain, float eps,
                                  void* out16) {
  cuda::rmsnorm_forward(stream_, out, rstd, x, gain, eps, out16);
}
void CudaBackend::add_rmsnorm_forward(float* sum, Matrix out, float* rstd, const float* a, const float* b,
                                      const float* gain, float eps, void* out16) {
  cuda::add_rmsnorm_forward(stream_, sum, out, rstd, a, b, gain, eps, out16);
}
void CudaBackend::rmsnorm_backward(Matrix dx, float* dgain, ConstMatrix dout, ConstMatrix x,
                                   const float* gain, const float* rstd, void* dx16, bool accumulate_dx) {
  float* partials = scratch_floats(column_partials_, cuda::rmsnorm_backward_scratch(x.rows, x.cols));
  cuda::rmsnorm_backward(stream_, dx, dgain, dout, x, gain, rstd, partials, dx16, accumulate_dx);
}

void CudaBackend::rope_forward(float* out, const float* in, const float* cos, const float* sin,
                               const RopeShape& shape) {
  cuda::rope_forward(stream_, out, in, cos, sin, shape);
}
void CudaBackend::rope_backward_bf16(void* din16, const float* dout, const float* cos, const float* sin,
                                     const RopeShape& shape) {
  cuda::rope_backward_bf16(stream_, din16, dout, cos, sin, shape);
}
void CudaBackend::rope_backward(float* din, const float* dout, const float* cos, const float* sin,
                                const RopeShape& shape) {
  cuda::rope_backward(stream_, din, dout, cos, sin, shape);
}

void CudaBackend::attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                                    const AttentionShape& shape, void* out16) {
  cuda::attention_forward(stream_, out, lse, q, k, v, shape, precision_ == GemmPrecision::bf16, out16);
}
void CudaBackend::attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q,
                                     const float* k, const float* v, const float* out, const float* lse,
                                     const AttentionShape& shape, bool accumulate, void* dv16) {
  const bool tensor_cores = precision_ == GemmPrecision::bf16;
  void* workspace = scratch(attention_delta_, cuda::attention_backward_scratch_bytes(shape, tensor_cores));
  cuda::attention_backward(stream_, dq, dk, dv, dout, q, k, v, out, lse, workspace, shape, tensor_cores,
                           accumulate, dv16);
}
void CudaBackend::kv_cache_write(float* k_cache, float* v_cache, const float* k, const float* v,
                                 const AttentionShape& shape, int64_t capacity, int64_t position) {
  cuda::kv_cache_write(stream_, k_cache, v_cache, k, v, shape, capacity, position);
}
void CudaBackend::attention_decode(float* out, const float* q, const float* k_cache, const float* v_cache,
                                   const AttentionShape& shape, int64_t capacity, int64_t position) {
  float* partials =
      scratch_floats(attention_decode_partials_, cuda::attention_decode_partial_floats(shape, capacity));
  cuda::attention_decode(stream_, out, partials, q, k_cache, v_cache, shape, capacity, position);
}

void CudaBackend::swiglu_forward(float* h, const float* gate, const float* up, int64_t count) {
  cuda::swiglu_forward(stream_, h, gate, up, count);
}
void CudaBackend::swiglu_forward_bf16(void* h16, const void* gate16, const void* up16, int64_t rows,
                                      int64_t cols, int64_t ld) {
  cuda::swiglu_forward_bf16(stream_, h16, gate16, up16, rows, cols, ld);
}
void CudaBackend::swiglu_backward_bf16(void* dgate16, void* dup16, const void* dh16, const void* gate16,
                                       const void* up16, int64_t rows, int64_t cols, int64_t ld) {
  cuda::swiglu_backward_bf16(stream_, dgate16, dup16, dh16, gate16, up16, rows, cols, ld);
}
void CudaBackend::swiglu_backward(float* dgate, float* dup, const float* dh, const float* gate,
                                  const float* up, int64_t count, bool accumulate) {
  cuda::swiglu_backward(stream_, dgate, dup, dh, gate, up, count, accumulate);
}

void CudaBackend::add(float* out, const float* a, const float* b, int64_t count) {
  cuda::add(stream_, out, a, b, count);
}

void CudaBackend::cross_entropy_forward(float* losses, float* lse, ConstMatrix logits,
                                        const int32_t* targets) {
  cuda::cross_entropy_forward(stream_, losses, lse, logits, targets);
}
void CudaBackend::cross_entropy_backward(Matrix dlogits, ConstMatrix logits, const float* lse,
                                         const int32_t* targets, float scale) {
  cuda::cross_entropy_backward(stream_, dlogits, logits, lse, targets, scale);
}

double CudaBackend::sum_of_squares(const float* x, int64_t count) {
  cuda::sum_of_squares(stream_, reduce_partials_, x, count);
  double result = 0.0;
  copy_to_host(&result, reduce_partials_ + cuda::kSumOfSquaresBlocks, sizeof(double));
  return result;
}

void CudaBackend::adamw_update(float* params, const float* grads, float* m, float* v, int64_t count,
                               const AdamWStep& step) {
  cuda::adamw_update(stream_, params, grads, m, v, count, step);
}

}  // namespace livs::evaluator
