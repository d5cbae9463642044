// The tied LM head's backward with bf16 dlogits (Backend::lm_head_backward).
// dlogits is the largest tensor of a step (tokens x vocabulary: 3.3 GB in
// fp32 at T 1024, batch 16, vocabulary 50304), and both products that read it
// reduce over a deep dimension, where cuBLAS's in-kernel rounding of fp32 is
// 2.5x slower than bf16 inputs (docs/benchmarks.md, "GEMM inputs"). So the
// cross-entropy gradient is written straight to bf16, a chunk of rows at a
// time (the chunk's buffer stays under lm_head_chunk_bytes() whatever the vocabulary),
// and each chunk's two products accumulate into dx and dtable in chunk order,
// which keeps the result deterministic.
#include <algorithm>

#include "evaluator/cuda/cuda_backend.hpp"
#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/kernels.hpp"

namespace livs::evaluator {

void CudaBackend::lm_head_backward(Matrix dx, Matrix dtable, Matrix logits, ConstMatrix x, ConstMatrix table,
                                   const float* lse, const int32_t* targets, float scale) {
  if (precision_ != GemmPrecision::bf16) {  // the exact path: fp32 dlogits in place
    Backend::lm_head_backward(dx, dtable, logits, x, table, lse, targets, scale);
    return;
  }
  const int64_t N = logits.rows, V = logits.cols, D = x.cols;
  if (N <= 0 || V <= 0 || D <= 0) return;
  const int64_t chunk = std::clamp<int64_t>(int64_t(lm_head_chunk_bytes_) / (V * 2), 1, N);
  void* dlogits16 = scratch(lm_head_dlogits_bf16_, std::size_t(chunk * V) * 2);
  void* table16 = scratch(gemm_a_bf16_, std::size_t(V * D) * 2);
  void* x16 = scratch(gemm_b_bf16_, std::size_t(chunk * D) * 2);
  cuda::to_bf16(stream_, table16, table.data, V * D);
  for (int64_t first = 0; first < N; first += chunk) {
    const int64_t rows = std::min(chunk, N - first);
    cuda::cross_entropy_backward_bf16(stream_, dlogits16, ConstMatrix{logits.data + first * V, rows, V},
                                      lse + first, targets + first, scale);
    cuda::to_bf16(stream_, x16, x.data + first * D, rows * D);
    // Column-major forms as in cuda_matmul.cpp: dtable^T += x^T dlogits, dx^T += table^T dlogits^T.
    gemm_bf16(false, true, D, V, rows, x16, D, dlogits16, V, dtable.data, D, 1.0f);
    gemm_bf16(false, false, D, rows, V, table16, D, dlogits16, V, dx.data + first * D, D, 1.0f);
  }
}

}  // namespace livs::evaluator
