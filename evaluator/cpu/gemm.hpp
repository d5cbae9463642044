#pragma once
// The one matrix-product kernel of the CPU backend, with strided operands so
// that x W^T, dy W and dy^T x are all the same loop:
//   C[m, n] (+)= sum_k A[m * a_row + k * a_k] * B[k * b_k + n * b_col]
// Each C element is summed over k in increasing order with fused multiply-adds,
// whatever the tiling, the number of threads or the vector width, so the bits
// are the same on every machine.
#include <cstdint>

namespace livs::evaluator::cpu {

struct GemmOperand {
  const float* data;
  int64_t row_stride;  // A: stride of m; B: stride of k
  int64_t col_stride;  // A: stride of k; B: stride of n
};

void gemm(float* c, int64_t ldc, int64_t m, int64_t n, int64_t k, GemmOperand a, GemmOperand b,
          bool accumulate);

// The same product on the calling thread only, for kernels that already run
// inside their own parallel task (attention's blocks).
void gemm_serial(float* c, int64_t ldc, int64_t m, int64_t n, int64_t k, GemmOperand a, GemmOperand b,
                 bool accumulate);

}  // namespace livs::evaluator::cpu
