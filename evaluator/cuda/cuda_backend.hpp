#pragma once
// The CUDA backend: every kernel of evaluator/backend.hpp on one CUDA stream.
// Storage is fp32 (the views of backend.hpp); the three matmuls run on
// tensor cores in bf16 with fp32 accumulation through cuBLAS, or in exact
// fp32 (GemmPrecision::fp32, or LIVSEARCH_CUDA_FP32=1) for debugging. All our
// own kernels compute in fp32; reductions are deterministic (fixed trees, no
// atomics), so a step gives the same bits on every run.
//
// Each kernel family lives in its own .cu file with a small launcher taking
// the stream (kernels.hpp). This header includes no CUDA header so that the
// rest of the evaluator compiles with the host compiler alone.
//
// The methods must be called from a thread whose current CUDA device is this
// backend's (the constructor makes it current).
#include <cstddef>

#include "evaluator/backend.hpp"

struct CUstream_st;
struct cublasContext;

namespace livs::evaluator {

namespace cuda {
int visible_device_count();  // 0 when there is no driver or no GPU
}  // namespace cuda

enum class GemmPrecision {
  bf16,  // tensor cores, bf16 inputs, fp32 accumulation (CUBLAS_COMPUTE_32F_FAST_16BF)
  fp32,  // exact fp32 (CUBLAS_COMPUTE_32F)
};

// fp32 when the environment sets LIVSEARCH_CUDA_FP32=1, else bf16.
GemmPrecision gemm_precision_from_environment();

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device = 0, GemmPrecision precision = gemm_precision_from_environment());
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  const char* name() const override { return "cuda"; }
  int device() const { return device_; }
  GemmPrecision precision() const { return precision_; }

  void* allocate(std::size_t bytes) override;
  void free(void* pointer) override;
  void copy_to_device(void* device_dst, const void* host_src, std::size_t bytes) override;
  void copy_to_host(void* host_dst, const void* device_src, std::size_t bytes) override;
  void copy(float* dst, const float* src, int64_t count) override;
  void fill(float* dst, int64_t count, float value) override;
  void synchronize() override;

  void embedding_forward(Matrix out, ConstMatrix table, const int32_t* tokens) override;
  void embedding_backward(Matrix dtable, ConstMatrix dout, const int32_t* tokens) override;

  void rmsnorm_forward(Matrix out, float* rstd, ConstMatrix x, const float* gain, float eps) override;
  void rmsnorm_backward(Matrix dx, float* dgain, ConstMatrix dout, ConstMatrix x, const float* gain,
                        const float* rstd) override;

  void matmul(Matrix y, ConstMatrix x, ConstMatrix w, bool accumulate) override;
  void matmul_backward_input(Matrix dx, ConstMatrix dy, ConstMatrix w) override;
  void matmul_backward_weight(Matrix dw, ConstMatrix dy, ConstMatrix x) override;

  void rope_forward(float* out, const float* in, const float* cos, const float* sin,
                    const RopeShape& shape) override;
  void rope_backward(float* din, const float* dout, const float* cos, const float* sin,
                     const RopeShape& shape) override;

  void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                         const AttentionShape& shape) override;
  void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                          const float* v, const float* out, const float* lse,
                          const AttentionShape& shape) override;
  void kv_cache_write(float* k_cache, float* v_cache, const float* k, const float* v,
                      const AttentionShape& shape, int64_t capacity, int64_t position) override;
  void attention_decode(float* out, const float* q, const float* k_cache, const float* v_cache,
                        const AttentionShape& shape, int64_t capacity, int64_t position) override;

  void swiglu_forward(float* h, const float* gate, const float* up, int64_t count) override;
  void swiglu_backward(float* dgate, float* dup, const float* dh, const float* gate, const float* up,
                       int64_t count) override;

  void add(float* out, const float* a, const float* b, int64_t count) override;

  void cross_entropy_forward(float* losses, float* lse, ConstMatrix logits, const int32_t* targets) override;
  void cross_entropy_backward(Matrix dlogits, ConstMatrix logits, const float* lse, const int32_t* targets,
                              float scale) override;

  double sum_of_squares(const float* x, int64_t count) override;
  void adamw_update(float* params, const float* grads, float* m, float* v, int64_t count,
                    const AdamWStep& step) override;

 private:
  // A device buffer that grows on first use at a larger shape and is then
  // reused: after the first step at a shape, no kernel allocates.
  struct Scratch {
    void* data = nullptr;
    std::size_t bytes = 0;
  };
  void* scratch(Scratch& s, std::size_t bytes);
  void release() noexcept;
  void gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
            const float* b, int64_t ldb, float* c, int64_t ldc, float beta);

  int device_ = 0;
  GemmPrecision precision_ = GemmPrecision::bf16;
  CUstream_st* stream_ = nullptr;
  cublasContext* cublas_ = nullptr;
  void* cublas_workspace_ = nullptr;
  double* reduce_partials_ = nullptr;  // sum_of_squares: fixed-size partials, then the result
  Scratch attention_delta_;            // attention backward: dout . out per query row
  Scratch column_partials_;            // rmsnorm backward: per-chunk column sums of dgain
};

}  // namespace livs::evaluator
