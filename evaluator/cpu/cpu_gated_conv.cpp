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

// The gated inputs of sequence b, times [t_first, t_last] (t_first may be
// negative: those rows come from the state, or are zero without one), as
// rows of C floats.
void gated_inputs(std::vector<float>& rows, const float* bcx, const float* state, int64_t b, int64_t t_first,
                  int64_t t_last, int64_t T, int64_t C, int64_t hist) {
  rows.assign(std::size_t((t_last - t_first + 1) * C), 0.0f);
  for (int64_t t = t_first; t <= t_last; ++t) {
    float* r = rows.data() + (t - t_first) * C;
    if (t >= 0)
      gated_input_row(r, bcx + (b * T + t) * 3 * C, C);
    else if (state)
      std::copy_n(state + (b * hist + hist + t) * C, C, r);
  }
}

}  // namespace

void CpuBackend::gated_conv_forward(float* out, const float* bcx, const float* w, float* state,
                                    const ConvShape& s) {
  const int64_t C = s.channels, k = s.kernel, T = s.seq, hist = k - 1;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, int64_t(s.batch) * T, 4), [&](const auto& r) {
    std::vector<float> window, acc(static_cast<std::size_t>(C));
    for (int64_t row = r.begin(); row != r.end(); ++row) {
      const int64_t b = row / T, t = row % T;
      gated_inputs(window, bcx, state, b, t - hist, t, T, C, hist);
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t j = 0; j < k; ++j) {
        const int64_t src = t - hist + j;
        if (src < 0 && !state) continue;  // zero history adds nothing (as causal_conv_forward skips it)
        tap_row(acc.data(), w, k, j, window.data() + j * C, C);
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
        if (src >= 0)
          gated_input_row(st + i * C, bcx + (b * T + src) * 3 * C, C);
        else
          std::copy_n(st + (i + T) * C, C, st + i * C);
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
  std::vector<float> g(std::size_t(rows * C)), bx(std::size_t(rows * C));
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, rows, 16), [&](const auto& r) {
    for (int64_t row = r.begin(); row != r.end(); ++row) {
      const float* in = bcx + row * 3 * C;
      for (int64_t c = 0; c < C; ++c) g[std::size_t(row * C + c)] = dout[row * C + c] * in[C + c];
      gated_input_row(bx.data() + row * C, in, C);
    }
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
