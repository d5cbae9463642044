// gconv's gated short convolution on the input projection's output
// bcx = [b | c | x~] (rows of 3C): out = c * conv(b * x~), conv as
// causal_conv_forward without a bias. Every value is computed in the order
// the separate products and convolution used (b * x~ rounded to float, taps
// j = 0..k-1 with fma from zero, then the product with c), so the fused call
// gives their bits.
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "evaluator/cpu/conv_taps.hpp"
#include "evaluator/cpu/cpu_backend.hpp"
#include "evaluator/cpu/simd.hpp"

namespace livs::evaluator {

using cpu_conv::kChannelBlock;
using cpu_conv::tap_gradient;
using cpu_conv::tap_row;

namespace {

// The gated input b * x~ of one row, channels [0, C).
LIVS_CPU_CLONES void gated_input_row(float* out, const float* bcx_row, int64_t C) {
  for (int64_t c = 0; c < C; ++c) out[c] = bcx_row[c] * bcx_row[2 * C + c];
}

// b * x~ of every row, rows x C (formed once, read by every tap).
std::vector<float> gated_inputs(const float* bcx, int64_t rows, int64_t C) {
  std::vector<float> bx(std::size_t(rows * C));
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, rows, 16), [&](const auto& r) {
    for (int64_t row = r.begin(); row != r.end(); ++row)
      gated_input_row(bx.data() + row * C, bcx + row * 3 * C, C);
  });
  return bx;
}

}  // namespace

void CpuBackend::gated_conv_forward(float* out, const float* bcx, const float* w, float* state,
                                    const ConvShape& s) {
  const int64_t C = s.channels, k = s.kernel, T = s.seq, hist = k - 1;
  const std::vector<float> bx = gated_inputs(bcx, int64_t(s.batch) * T, C);
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, int64_t(s.batch) * T, 4), [&](const auto& r) {
    std::vector<float> acc(static_cast<std::size_t>(C));
    for (int64_t row = r.begin(); row != r.end(); ++row) {
      const int64_t b = row / T, t = row % T;
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t j = 0; j < k; ++j) {
        const int64_t src = t - hist + j;  // negative: the state's history (zero without one, and skipped)
        if (src >= 0)
          tap_row(acc.data(), w, k, j, bx.data() + (b * T + src) * C, C);
        else if (state)
          tap_row(acc.data(), w, k, j, state + (b * hist + hist + src) * C, C);
      }
      const float* c_row = bcx + row * 3 * C + C;
      for (int64_t c = 0; c < C; ++c) out[row * C + c] = c_row[c] * acc[std::size_t(c)];
    }
  });
  if (!state || hist == 0) return;
  // The new history is the last k-1 gated inputs of [state, b * x~]; slot i
  // reads slot i + T of the old state (later, not yet overwritten) or a row.
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, s.batch), [&](const auto& r) {
    for (int64_t b = r.begin(); b != r.end(); ++b) {
      float* st = state + b * hist * C;
      for (int64_t i = 0; i < hist; ++i) {
        const int64_t src = T + i - hist;
        const float* from = src >= 0 ? bx.data() + (b * T + src) * C : st + (i + T) * C;
        std::copy_n(from, C, st + i * C);
      }
    }
  });
}

// With g = dout * c (the gradient of conv's output) and bx = b * x~:
//   dc = dout * conv(bx), dbx[s] = sum_j w[j] g[s + k-1 - j],
//   db = dbx * x~, dx~ = dbx * b, dw[c, j] += sum_{b,t} g[t] bx[t - (k-1) + j].
// g and bx are formed once for every row (two temporaries of rows x C).
void CpuBackend::gated_conv_backward(float* dbcx, float* dw, const float* dout, const float* bcx,
                                     const float* w, const ConvShape& s) {
  const int64_t C = s.channels, k = s.kernel, T = s.seq, hist = k - 1, rows = int64_t(s.batch) * T;
  const std::vector<float> bx = gated_inputs(bcx, rows, C);
  std::vector<float> g(std::size_t(rows * C));
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, rows, 16), [&](const auto& r) {
    for (int64_t row = r.begin(); row != r.end(); ++row)
      for (int64_t c = 0; c < C; ++c)
        g[std::size_t(row * C + c)] = dout[row * C + c] * bcx[row * 3 * C + C + c];
  });
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, rows, 4), [&](const auto& r) {
    std::vector<float> conv(static_cast<std::size_t>(C)), dbx(static_cast<std::size_t>(C));
    for (int64_t row = r.begin(); row != r.end(); ++row) {
      const int64_t b = row / T, t = row % T;
      std::fill(conv.begin(), conv.end(), 0.0f);
      for (int64_t j = 0; j < k; ++j) {
        const int64_t src = t - hist + j;
        if (src >= 0) tap_row(conv.data(), w, k, j, bx.data() + (b * T + src) * C, C);
      }
      std::fill(dbx.begin(), dbx.end(), 0.0f);
      for (int64_t j = 0; j < k; ++j) {
        const int64_t dst = t + hist - j;
        if (dst < T) tap_row(dbx.data(), w, k, j, g.data() + (b * T + dst) * C, C);
      }
      const float* in = bcx + row * 3 * C;
      float* d = dbcx + row * 3 * C;
      for (int64_t c = 0; c < C; ++c) {
        d[c] = dbx[std::size_t(c)] * in[2 * C + c];
        d[C + c] = dout[row * C + c] * conv[std::size_t(c)];
        d[2 * C + c] = dbx[std::size_t(c)] * in[c];
      }
    }
  });
  // dw: channel blocks in parallel, (b, t) then j in order within each.
  const int64_t blocks = (C + kChannelBlock - 1) / kChannelBlock;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, blocks), [&](const auto& r) {
    for (int64_t blk = r.begin(); blk != r.end(); ++blk) {
      const int64_t c0 = blk * kChannelBlock, c1 = std::min(C, c0 + kChannelBlock);
      for (int64_t row = 0; row < rows; ++row) {
        const int64_t t = row % T;
        const float* gr = g.data() + row * C;
        for (int64_t j = 0; j < k; ++j) {
          const int64_t src = t - hist + j;
          if (src < 0) continue;
          tap_gradient(dw, k, j, gr, bx.data() + (row - t + src) * C, c0, c1);
        }
      }
    }
  });
}

}  // namespace livs::evaluator
