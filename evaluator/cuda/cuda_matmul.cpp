// The three linear-layer products through cuBLAS. Row-major [r, c] is
// column-major [c, r], so each row-major product is written transposed:
//   y = x W^T      ->  y^T  = W^T(op T) x^T       (m = out, n = rows, k = in)
//   dx += dy W     ->  dx^T = W^T dy^T            (m = in,  n = rows, k = out)
//   dW += dy^T x   ->  dW^T = x^T (dy^T)^T        (m = in,  n = out,  k = rows)
// bf16 mode: tensor cores take bf16-rounded fp32 inputs and accumulate in
// fp32 (CUBLAS_COMPUTE_32F_FAST_16BF); fp32 mode is exact (CUBLAS_COMPUTE_32F).
#include <cublas_v2.h>

#include "evaluator/cuda/cuda_backend.hpp"
#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/kernels.hpp"

namespace livs::evaluator {

void CudaBackend::gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, const float* a,
                       int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc, float beta) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {  // an empty sum: C = beta C
    if (beta == 0.0f) cuda::fill(stream_, c, m * n, 0.0f);
    return;
  }
  const float alpha = 1.0f;
  const cublasComputeType_t compute =
      precision_ == GemmPrecision::bf16 ? CUBLAS_COMPUTE_32F_FAST_16BF : CUBLAS_COMPUTE_32F;
  LIVS_CUBLAS_CHECK(cublasGemmEx(cublas_, transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                                 transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N, int(m), int(n), int(k), &alpha, a,
                                 CUDA_R_32F, int(lda), b, CUDA_R_32F, int(ldb), &beta, c, CUDA_R_32F,
                                 int(ldc), compute, CUBLAS_GEMM_DEFAULT));
}

void CudaBackend::matmul(Matrix y, ConstMatrix x, ConstMatrix w, bool accumulate) {
  gemm(true, false, w.rows, x.rows, x.cols, w.data, w.cols, x.data, x.cols, y.data, y.cols,
       accumulate ? 1.0f : 0.0f);
}

void CudaBackend::matmul_backward_input(Matrix dx, ConstMatrix dy, ConstMatrix w) {
  gemm(false, false, w.cols, dy.rows, dy.cols, w.data, w.cols, dy.data, dy.cols, dx.data, dx.cols, 1.0f);
}

void CudaBackend::matmul_backward_weight(Matrix dw, ConstMatrix dy, ConstMatrix x) {
  gemm(false, true, x.cols, dy.cols, dy.rows, x.data, x.cols, dy.data, dy.cols, dw.data, dw.cols, 1.0f);
}

}  // namespace livs::evaluator
