// Linear layers through the one strided GEMM (cpu/gemm.hpp); fp32 throughout,
// so GemmOperand shadows are never planned here and never read.
#include "evaluator/cpu/cpu_backend.hpp"
#include "evaluator/cpu/gemm.hpp"

namespace livs::evaluator {

// y[n, o] = sum_i x[n, i] W[o, i]
void CpuBackend::matmul(Matrix y, GemmOperand x, GemmOperand w, bool accumulate) {
  cpu::gemm(y.data, y.cols, x.rows, w.rows, x.cols, {x.data, x.cols, 1}, {w.data, 1, w.cols}, accumulate);
}

// dx[n, i] (+)= sum_o dy[n, o] W[o, i]
void CpuBackend::matmul_backward_input(Matrix dx, GemmOperand dy, GemmOperand w, bool accumulate) {
  cpu::gemm(dx.data, dx.cols, dy.rows, w.cols, dy.cols, {dy.data, dy.cols, 1}, {w.data, w.cols, 1},
            accumulate);
}

// dW[o, i] += sum_n dy[n, o] x[n, i]
void CpuBackend::matmul_backward_weight(Matrix dw, GemmOperand dy, GemmOperand x) {
  cpu::gemm(dw.data, dw.cols, dy.cols, x.cols, dy.rows, {dy.data, 1, dy.cols}, {x.data, x.cols, 1}, true);
}

}  // namespace livs::evaluator
