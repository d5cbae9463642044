// Depthwise causal convolution over [batch, seq, channels] (rec, ssm, gconv):
//   y[b,t,c] = bias[c] + sum_j w[c,j] * x[b, t-(k-1)+j, c],
// inputs before t = 0 from the decode state (or zero). Each output element
// sums bias first, then j = 0..k-1 in order, with explicit fma, whether it is
// computed by the parallel forward or by a one-token decode call. The inner
// loops are LIVS_CPU_CLONES functions, so std::fma is one instruction on
// AVX2/AVX-512 machines and the same bits everywhere.
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>

#include "evaluator/cpu/conv_taps.hpp"
#include "evaluator/cpu/cpu_backend.hpp"
#include "evaluator/cpu/simd.hpp"

namespace livs::evaluator {

namespace cpu_conv {

LIVS_CPU_CLONES void tap_row(float* y, const float* w, int64_t k, int64_t j, const float* x,
                             int64_t channels) {
  for (int64_t c = 0; c < channels; ++c) y[c] = std::fma(w[c * k + j], x[c], y[c]);
}

LIVS_CPU_CLONES void tap_gradient(float* dw, int64_t k, int64_t j, const float* dy, const float* x,
                                  int64_t c0, int64_t c1) {
  for (int64_t c = c0; c < c1; ++c) dw[c * k + j] = std::fma(dy[c], x[c], dw[c * k + j]);
}

}  // namespace cpu_conv

using cpu_conv::kChannelBlock;
using cpu_conv::tap_gradient;
using cpu_conv::tap_row;

void CpuBackend::causal_conv_forward(float* y, const float* x, const float* w, const float* bias,
                                     float* state, const ConvShape& s) {
  const int64_t C = s.channels, k = s.kernel, T = s.seq, hist = k - 1;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, int64_t(s.batch) * T, 4), [&](const auto& r) {
    for (int64_t row = r.begin(); row != r.end(); ++row) {
      const int64_t b = row / T, t = row % T;
      float* yr = y + row * C;
      for (int64_t c = 0; c < C; ++c) yr[c] = bias ? bias[c] : 0.0f;
      for (int64_t j = 0; j < k; ++j) {
        const int64_t src = t - hist + j;  // in x's time, negative: the state's history
        const float* xr = nullptr;
        if (src >= 0)
          xr = x + (b * T + src) * C;
        else if (state)
          xr = state + (b * hist + hist + src) * C;
        if (!xr) continue;
        tap_row(yr, w, k, j, xr, C);
      }
    }
  });
  if (!state || hist == 0) return;
  // The new history is the last k-1 inputs of [state, x]. Slot i reads slot
  // i + T of the old state (later, not yet overwritten) or a row of x.
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, s.batch), [&](const auto& r) {
    for (int64_t b = r.begin(); b != r.end(); ++b) {
      float* st = state + b * hist * C;
      for (int64_t i = 0; i < hist; ++i) {
        const int64_t src = T + i - hist;
        const float* from = src >= 0 ? x + (b * T + src) * C : st + (i + T) * C;
        std::copy_n(from, C, st + i * C);
      }
    }
  });
}

// dx[b,s,c] (+)= sum_j w[c,j] dy[b, s+(k-1)-j, c]  (rows in parallel; written
// when !accumulate_dx);
// dw[c,j] += sum_{b,t} dy[b,t,c] x[b,t-(k-1)+j,c], dbias[c] += sum dy
// (channel blocks in parallel, (b, t) in order).
void CpuBackend::causal_conv_backward(float* dx, float* dw, float* dbias, const float* dy, const float* x,
                                      const float* w, const ConvShape& s, bool accumulate_dx) {
  const int64_t C = s.channels, k = s.kernel, T = s.seq, hist = k - 1;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, int64_t(s.batch) * T, 4), [&](const auto& r) {
    for (int64_t row = r.begin(); row != r.end(); ++row) {
      const int64_t b = row / T, t = row % T;
      float* dxr = dx + row * C;
      if (!accumulate_dx) std::fill(dxr, dxr + C, 0.0f);
      for (int64_t j = 0; j < k; ++j) {
        const int64_t dst = t + hist - j;
        if (dst >= T) continue;
        const float* dyr = dy + (b * T + dst) * C;
        tap_row(dxr, w, k, j, dyr, C);
      }
    }
  });
  const int64_t blocks = (C + kChannelBlock - 1) / kChannelBlock;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, blocks), [&](const auto& r) {
    for (int64_t blk = r.begin(); blk != r.end(); ++blk) {
      const int64_t c0 = blk * kChannelBlock, c1 = std::min(C, c0 + kChannelBlock);
      for (int64_t b = 0; b < s.batch; ++b)
        for (int64_t t = 0; t < T; ++t) {
          const float* dyr = dy + (b * T + t) * C;
          if (dbias)
            for (int64_t c = c0; c < c1; ++c) dbias[c] += dyr[c];
          for (int64_t j = 0; j < k; ++j) {
            const int64_t src = t - hist + j;
            if (src < 0) continue;
            const float* xr = x + (b * T + src) * C;
            tap_gradient(dw, k, j, dyr, xr, c0, c1);
          }
        }
    }
  });
}

}  // namespace livs::evaluator
