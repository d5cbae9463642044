// The three linear-layer products through cuBLAS. Row-major [r, c] is
// column-major [c, r], so each row-major product is written transposed:
//   y = x W^T      ->  y^T  = W^T(op T) x^T       (m = out, n = rows, k = in)
//   dx += dy W     ->  dx^T = W^T dy^T            (m = in,  n = rows, k = out)
//   dW += dy^T x   ->  dW^T = x^T (dy^T)^T        (m = in,  n = out,  k = rows)
// bf16 mode: tensor cores multiply bf16-rounded inputs and accumulate in
// fp32; fp32 mode is exact (CUBLAS_COMPUTE_32F). In bf16 mode the inputs
// reach cuBLAS one of two ways, whichever bench/bench_gemm measured faster
// for the product's shape on an H100 (docs/benchmarks.md, "GEMM inputs"):
// - converted: both inputs are first rounded into bf16 copies (scratch that
//   grows on first use, like every Scratch), then a bf16 x bf16 -> fp32 GEMM.
//   Faster whenever the reduction depth k is small (the forward products and
//   dx = dy W): the copies are small next to the product's work;
// - in the kernel: fp32 inputs with CUBLAS_COMPUTE_32F_FAST_16BF, which
//   rounds while loading. Faster for the weight gradients (k = tokens) and the
//   LM head's dx (k = vocab), whose inputs are the largest tensors of the step.
// An operand that comes with a bf16 shadow (GemmOperand) is read as it is,
// and the product runs in bf16 whatever its k (the shadow's producer paid
// for the rounding once, for every product that reads it).
// LIVSEARCH_CUDA_GEMM_CONVERT=0 turns the conversion and shadows off (for comparison).
#include <cublas_v2.h>

#include <cstdlib>
#include <cstring>

#include "common/environment_switch.hpp"
#include "evaluator/cuda/cuda_backend.hpp"
#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/kernels.hpp"

namespace livs::evaluator {

namespace {

// The largest reduction depth at which converted inputs won in
// bench/bench_gemm (k 512-1536 won; k 16384 and 50304 lost).
constexpr int64_t kConvertMaxDepth = 4096;

bool conversion_enabled() {
  static const bool enabled = enabled_unless_zero("LIVSEARCH_CUDA_GEMM_CONVERT");
  return enabled;
}

}  // namespace

bool CudaBackend::wants_gemm_shadows() const {
  return precision_ == GemmPrecision::bf16 && conversion_enabled();
}

void CudaBackend::round_to_bf16(void* dst, const float* src, int64_t count) {
  cuda::to_bf16(stream_, dst, src, count);
}

const void* CudaBackend::bf16_operand(Operand operand, Scratch& copy, int64_t count) {
  if (operand.bf16) return operand.bf16;
  void* rounded = scratch(copy, std::size_t(count) * 2);
  cuda::to_bf16(stream_, rounded, operand.fp32, count);
  return rounded;
}

void CudaBackend::gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, Operand a,
                       int64_t lda, Operand b, int64_t ldb, float* c, int64_t ldc, float beta) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {  // an empty sum: C = beta C
    if (beta == 0.0f) cuda::fill(stream_, c, m * n, 0.0f);
    return;
  }
  const float alpha = 1.0f;
  // A shadow makes the bf16 product cheap whatever k is: at most the other
  // operand still needs its copy.
  const bool shadowed = a.bf16 != nullptr || b.bf16 != nullptr;
  if (wants_gemm_shadows() && (shadowed || k <= kConvertMaxDepth)) {
    // Stored extents (column-major): op(A) is m x k, op(B) is k x n.
    const int64_t a_count = lda * (transpose_a ? m : k), b_count = ldb * (transpose_b ? k : n);
    gemm_bf16(transpose_a, transpose_b, m, n, k, bf16_operand(a, gemm_a_bf16_, a_count), lda,
              bf16_operand(b, gemm_b_bf16_, b_count), ldb, c, ldc, beta);
    return;
  }
  const cublasComputeType_t compute =
      precision_ == GemmPrecision::bf16 ? CUBLAS_COMPUTE_32F_FAST_16BF : CUBLAS_COMPUTE_32F;
  LIVS_CUBLAS_CHECK(cublasGemmEx(cublas_, transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                                 transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N, int(m), int(n), int(k), &alpha,
                                 a.fp32, CUDA_R_32F, int(lda), b.fp32, CUDA_R_32F, int(ldb), &beta, c,
                                 CUDA_R_32F, int(ldc), compute, CUBLAS_GEMM_DEFAULT));
}

void CudaBackend::gemm_bf16(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k,
                            const void* a, int64_t lda, const void* b, int64_t ldb, void* c, int64_t ldc,
                            float beta, bool bf16_output) {
  const float alpha = 1.0f;
  LIVS_CUBLAS_CHECK(cublasGemmEx(
      cublas_, transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N, transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N, int(m),
      int(n), int(k), &alpha, a, CUDA_R_16BF, int(lda), b, CUDA_R_16BF, int(ldb), &beta, c,
      bf16_output ? CUDA_R_16BF : CUDA_R_32F, int(ldc), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void CudaBackend::gemm_to_bf16(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, Operand a,
                               int64_t lda, Operand b, int64_t ldb, void* c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {  // an empty sum: bf16 zero is all zero bits
    LIVS_CUDA_CHECK(cudaMemsetAsync(c, 0, std::size_t(ldc) * std::size_t(n) * 2, stream_));
    return;
  }
  const int64_t a_count = lda * (transpose_a ? m : k), b_count = ldb * (transpose_b ? k : n);
  gemm_bf16(transpose_a, transpose_b, m, n, k, bf16_operand(a, gemm_a_bf16_, a_count), lda,
            bf16_operand(b, gemm_b_bf16_, b_count), ldb, c, ldc, 0.0f, /*bf16_output=*/true);
}

void CudaBackend::matmul_bf16_output(void* y16, GemmOperand x, GemmOperand w) {
  gemm_to_bf16(true, false, w.rows, x.rows, x.cols, {w.data, w.bf16}, w.cols, {x.data, x.bf16}, x.cols, y16,
               w.rows);
}

void CudaBackend::matmul_backward_input_bf16_output(void* dx16, GemmOperand dy, GemmOperand w) {
  gemm_to_bf16(false, false, w.cols, dy.rows, dy.cols, {w.data, w.bf16}, w.cols, {dy.data, dy.bf16}, dy.cols,
               dx16, w.cols);
}

void CudaBackend::matmul(Matrix y, GemmOperand x, GemmOperand w, bool accumulate) {
  gemm(true, false, w.rows, x.rows, x.cols, {w.data, w.bf16}, w.cols, {x.data, x.bf16}, x.cols, y.data,
       y.cols, accumulate ? 1.0f : 0.0f);
}

void CudaBackend::matmul_backward_input(Matrix dx, GemmOperand dy, GemmOperand w, bool accumulate) {
  gemm(false, false, w.cols, dy.rows, dy.cols, {w.data, w.bf16}, w.cols, {dy.data, dy.bf16}, dy.cols, dx.data,
       dx.cols, accumulate ? 1.0f : 0.0f);
}

void CudaBackend::matmul_backward_weight(Matrix dw, GemmOperand dy, GemmOperand x) {
  gemm(false, true, x.cols, dy.cols, dy.rows, {x.data, x.bf16}, x.cols, {dy.data, dy.bf16}, dy.cols, dw.data,
       dw.cols, 1.0f);
}

// With x shadowed, both products run in bf16 and each would round dy into
// its own copy: round it once and hand both the copy. (Without a shadow of x
// the weight gradient reads fp32 dy in the kernel, and only dx's product
// rounds it, as before.)
void CudaBackend::linear_backward(Matrix dw, Matrix dx, GemmOperand dy, GemmOperand x, GemmOperand w,
                                  bool accumulate_dx) {
  if (wants_gemm_shadows() && x.bf16 && !dy.bf16)
    dy.bf16 = bf16_operand({dy.data, nullptr}, gemm_dy_bf16_, dy.rows * dy.cols);
  matmul_backward_weight(dw, dy, x);
  matmul_backward_input(dx, dy, w, accumulate_dx);
}

}  // namespace livs::evaluator
