#include "evaluator/cpu/gemm.hpp"

#include <tbb/blocked_range2d.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>

#include "evaluator/cpu/simd.hpp"

namespace livs::evaluator::cpu {

namespace {

constexpr int kRows = 8;         // rows of C per micro-kernel call
constexpr int kCols = 32;        // columns of C per micro-kernel call (the packed B panel width)
constexpr int64_t kDepth = 256;  // k values per packed B panel (32 KiB: stays in L1)
constexpr int64_t kTaskRows = 64;

// acc[r][j] = fma(A(r, kk), panel[kk][j], acc[r][j]) over the panel's depth,
// starting from C (or zero), then stored back. Only `rows` x `cols` of C are
// touched; the panel is zero-padded past `cols`.
template <int R>
LIVS_INLINE void micro_kernel(float* c, int64_t ldc, int cols, const float* a, int64_t a_row, int64_t a_k,
                              const float* panel, int64_t depth, bool load_c) {
  float acc[R][kCols];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < kCols; ++j) acc[r][j] = (load_c && j < cols) ? c[r * ldc + j] : 0.0f;
  for (int64_t kk = 0; kk < depth; ++kk) {
    const float* p = panel + kk * kCols;
    for (int r = 0; r < R; ++r) {
      const float av = a[r * a_row + kk * a_k];
      for (int j = 0; j < kCols; ++j) acc[r][j] = std::fma(av, p[j], acc[r][j]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < cols; ++j) c[r * ldc + j] = acc[r][j];
}

template <int R>
LIVS_INLINE void rows_block(float* c, int64_t ldc, int64_t rows, int cols, const float* a, int64_t a_row,
                            int64_t a_k, const float* panel, int64_t depth, bool load_c) {
  int64_t r = 0;
  for (; r + R <= rows; r += R)
    micro_kernel<R>(c + r * ldc, ldc, cols, a + r * a_row, a_row, a_k, panel, depth, load_c);
  for (; r < rows; ++r)
    micro_kernel<1>(c + r * ldc, ldc, cols, a + r * a_row, a_row, a_k, panel, depth, load_c);
}

// One task: rows [m0, m1) and one panel of columns [n0, n0 + cols).
LIVS_CPU_CLONES void gemm_task(float* c, int64_t ldc, int64_t m0, int64_t m1, int64_t n0, int cols, int64_t k,
                               GemmOperand a, GemmOperand b, bool accumulate) {
  alignas(64) float panel[kDepth * kCols];
  for (int64_t k0 = 0; k0 < k; k0 += kDepth) {
    const int64_t depth = std::min(kDepth, k - k0);
    for (int64_t kk = 0; kk < depth; ++kk) {
      const float* src = b.data + (k0 + kk) * b.row_stride + n0 * b.col_stride;
      float* dst = panel + kk * kCols;
      int j = 0;
      if (b.col_stride == 1)
        for (; j < cols; ++j) dst[j] = src[j];
      else
        for (; j < cols; ++j) dst[j] = src[j * b.col_stride];
      for (; j < kCols; ++j) dst[j] = 0.0f;
    }
    rows_block<kRows>(c + m0 * ldc + n0, ldc, m1 - m0, cols, a.data + m0 * a.row_stride + k0 * a.col_stride,
                      a.row_stride, a.col_stride, panel, depth, accumulate || k0 > 0);
  }
}

}  // namespace

void gemm_serial(float* c, int64_t ldc, int64_t m, int64_t n, int64_t k, GemmOperand a, GemmOperand b,
                 bool accumulate) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    if (!accumulate)
      for (int64_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, 0.0f);
    return;
  }
  for (int64_t n0 = 0; n0 < n; n0 += kCols)
    gemm_task(c, ldc, 0, m, n0, static_cast<int>(std::min<int64_t>(kCols, n - n0)), k, a, b, accumulate);
}

void gemm(float* c, int64_t ldc, int64_t m, int64_t n, int64_t k, GemmOperand a, GemmOperand b,
          bool accumulate) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    if (!accumulate)
      for (int64_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, 0.0f);
    return;
  }
  const int64_t row_tasks = (m + kTaskRows - 1) / kTaskRows;
  const int64_t col_tasks = (n + kCols - 1) / kCols;
  tbb::parallel_for(tbb::blocked_range2d<int64_t>(0, row_tasks, 0, col_tasks), [&](const auto& range) {
    for (int64_t rt = range.rows().begin(); rt != range.rows().end(); ++rt)
      for (int64_t ct = range.cols().begin(); ct != range.cols().end(); ++ct) {
        const int64_t m0 = rt * kTaskRows, m1 = std::min(m, m0 + kTaskRows);
        const int64_t n0 = ct * kCols;
        const int cols = static_cast<int>(std::min<int64_t>(kCols, n - n0));
        gemm_task(c, ldc, m0, m1, n0, cols, k, a, b, accumulate);
      }
  });
}

}  // namespace livs::evaluator::cpu
