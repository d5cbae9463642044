#pragma once
// The depthwise convolution's two inner loops, shared by causal_conv
// (cpu_conv.cpp) and gconv's gated convolution (cpu_gated_conv.cpp), so both
// round the same way. Defined in cpu_conv.cpp as LIVS_CPU_CLONES functions.
#include <cstdint>

namespace livs::evaluator::cpu_conv {

constexpr int64_t kChannelBlock = 64;  // channels per task of a weight-gradient sum

// y[c] = fma(w[c * k + j], x[c], y[c]) over the channels of one row.
void tap_row(float* y, const float* w, int64_t k, int64_t j, const float* x, int64_t channels);

// dw[c * k + j] += dy[c] * x[c] over channels [c0, c1).
void tap_gradient(float* dw, int64_t k, int64_t j, const float* dy, const float* x, int64_t c0, int64_t c1);

}  // namespace livs::evaluator::cpu_conv
