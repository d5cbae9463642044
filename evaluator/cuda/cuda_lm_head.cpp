// The tied LM head on bf16 logits (Backend::lm_head_forward/_backward).
// The logits are the step's largest tensor (tokens x vocabulary: 1.6 GB in
// bf16 at T 1024, batch 16, vocabulary 50304), and the three products that
// touch them are the step's largest GEMMs. In bf16 mode the forward reads x
// and the table in bf16 (the model's shadows: the final norm writes x's, the
// weights' are refreshed each forward; else rounded into scratch once), writes
// the logits in bf16 straight from the GEMM (as
// PyTorch's autocast does; the cross-entropy and its log-sum-exp are fp32),
// and the backward writes bf16 dlogits over them in place, so both backward
// products read bf16 and run on bf16 tensor cores (bench/bench_gemm: 2.5x
// faster than cuBLAS rounding fp32 inputs). The backward reads the forward's
// bf16 x and table (it always follows the forward it belongs to:
// Backend::lm_head_backward).
//
// Only large logits are kept in bf16 (kBf16LogitsMinValues): rounding a
// logit of 4-8 moves it by up to 0.016, which shifts a small model's loss by
// about as much, and at a byte vocabulary the LM head is a small part of the
// step, so candidates at the search's usual shapes keep fp32 logits and the
// CPU's loss to 1e-4 (docs/architecture.md, "CUDA backend"). fp32 mode keeps
// the default fp32 path at every size.
#include "evaluator/cuda/cuda_backend.hpp"
#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/kernels.hpp"

namespace livs::evaluator {

namespace {

// 64 MiB of fp32 logits (16384 tokens x a 1024-token vocabulary).
constexpr int64_t kBf16LogitsMinValues = int64_t(16) << 20;

}  // namespace

bool CudaBackend::bf16_logits(int64_t rows, int64_t vocab) const {
  return wants_gemm_shadows() && rows * vocab >= kBf16LogitsMinValues;
}

int64_t CudaBackend::lm_head_logits_floats(int64_t rows, int64_t vocab) const {
  if (!bf16_logits(rows, vocab)) return Backend::lm_head_logits_floats(rows, vocab);
  return (rows * vocab + 1) / 2;  // bf16 values
}

void CudaBackend::lm_head_forward(float* losses, float* lse, Matrix logits, GemmOperand x, GemmOperand table,
                                  const int32_t* targets) {
  if (!bf16_logits(logits.rows, logits.cols)) {
    Backend::lm_head_forward(losses, lse, logits, x, table, targets);
    return;
  }
  const int64_t N = logits.rows, V = logits.cols, D = x.cols;
  if (N <= 0 || V <= 0) return;
  // The model's shadows (the final norm's output, the weights') or copies.
  lm_head_x16_ = bf16_operand({x.data, x.bf16}, lm_head_x_bf16_, N * D);
  lm_head_table16_ = bf16_operand({table.data, table.bf16}, lm_head_table_bf16_, V * D);
  // Column-major as in cuda_matmul.cpp: logits^T = table (op T) x^T.
  gemm_bf16(true, false, V, N, D, lm_head_table16_, D, lm_head_x16_, D, logits.data, V, 0.0f, true);
  cuda::cross_entropy_forward_bf16(stream_, losses, lse, logits.data, N, V, targets);
}

void CudaBackend::lm_head_backward(Matrix dx, Matrix dtable, Matrix logits, ConstMatrix x, ConstMatrix table,
                                   const float* lse, const int32_t* targets, float scale) {
  if (!bf16_logits(logits.rows, logits.cols)) {  // fp32 dlogits in place
    Backend::lm_head_backward(dx, dtable, logits, x, table, lse, targets, scale);
    return;
  }
  const int64_t N = logits.rows, V = logits.cols, D = x.cols;
  if (N <= 0 || V <= 0 || D <= 0) return;
  cuda::cross_entropy_backward_bf16_in_place(stream_, logits.data, N, V, lse, targets, scale);
  // dtable^T += x^T dlogits, dx^T += table^T dlogits^T, on the forward's bf16 x and table.
  gemm_bf16(false, true, D, V, N, lm_head_x16_, D, logits.data, V, dtable.data, D, 1.0f);
  gemm_bf16(false, false, D, N, V, lm_head_table16_, D, logits.data, V, dx.data, D, 1.0f);
}

}  // namespace livs::evaluator
