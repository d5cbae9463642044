// Embedding lookup and its scatter-add backward.
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cstring>

#include "evaluator/cpu/cpu_backend.hpp"

namespace livs::evaluator {

void CpuBackend::embedding_forward(Matrix out, ConstMatrix table, const int32_t* tokens) {
  const int64_t d = out.cols;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, out.rows, 64), [&](const auto& r) {
    for (int64_t n = r.begin(); n != r.end(); ++n)
      std::memcpy(out.data + n * d, table.data + int64_t(tokens[n]) * d, d * sizeof(float));
  });
}

// Parallel over column blocks, each walking the tokens in order: a row of the
// table that several tokens hit is summed in token order, never racing.
void CpuBackend::embedding_backward(Matrix dtable, ConstMatrix dout, const int32_t* tokens) {
  const int64_t d = dout.cols;
  constexpr int64_t kBlock = 16;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, (d + kBlock - 1) / kBlock), [&](const auto& r) {
    for (int64_t b = r.begin(); b != r.end(); ++b) {
      const int64_t c0 = b * kBlock, c1 = std::min(d, c0 + kBlock);
      for (int64_t n = 0; n < dout.rows; ++n) {
        float* dst = dtable.data + int64_t(tokens[n]) * d;
        const float* src = dout.data + n * d;
        for (int64_t c = c0; c < c1; ++c) dst[c] += src[c];
      }
    }
  });
}

}  // namespace livs::evaluator
