// RMSNorm: y = x * rstd * g with rstd = 1 / sqrt(mean(x^2) + eps).
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>

#include "evaluator/cpu/cpu_backend.hpp"
#include "evaluator/cpu/dot.hpp"

namespace livs::evaluator {

// The CPU wants no GEMM shadows, so it is never asked for them.
void CpuBackend::rmsnorm_forward(Matrix out, float* rstd, ConstMatrix x, const float* gain, float eps,
                                 void* out16) {
  if (out16) unsupported("rmsnorm_forward with a bf16 shadow", out16);
  const int64_t d = x.cols;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, x.rows, 16), [&](const auto& r) {
    for (int64_t n = r.begin(); n != r.end(); ++n) {
      const float* xr = x.data + n * d;
      float* yr = out.data + n * d;
      const float s = 1.0f / std::sqrt(cpu::dot(xr, xr, d) / float(d) + eps);
      rstd[n] = s;
      for (int64_t i = 0; i < d; ++i) yr[i] = xr[i] * s * gain[i];
    }
  });
}

// dx_i (+)= rstd * g_i dy_i - rstd^3 / D * x_i * sum_j g_j dy_j x_j (added when accumulate_dx)
// dg_i += sum_n dy_ni x_ni rstd_n (columns in parallel, rows in order)
void CpuBackend::rmsnorm_backward(Matrix dx, float* dgain, ConstMatrix dout, ConstMatrix x, const float* gain,
                                  const float* rstd, void* dx16, bool accumulate_dx) {
  if (dx16) unsupported("rmsnorm_backward with a bf16 shadow", dx16);
  const int64_t d = x.cols;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, x.rows, 16), [&](const auto& r) {
    for (int64_t n = r.begin(); n != r.end(); ++n) {
      const float* xr = x.data + n * d;
      const float* dyr = dout.data + n * d;
      float* dxr = dx.data + n * d;
      float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};  // sum_j g_j dy_j x_j in a fixed order
      int64_t j = 0;
      for (; j + 8 <= d; j += 8)
        for (int l = 0; l < 8; ++l) lane[l] += gain[j + l] * dyr[j + l] * xr[j + l];
      for (int l = 0; j < d; ++j, ++l) lane[l] += gain[j] * dyr[j] * xr[j];
      const float dot =
          ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
      const float s = rstd[n];
      const float c = s * s * s * dot / float(d);
      for (int64_t i = 0; i < d; ++i)
        dxr[i] = (accumulate_dx ? dxr[i] : 0.0f) + (s * gain[i] * dyr[i] - c * xr[i]);
    }
  });
  constexpr int64_t kBlock = 16;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, (d + kBlock - 1) / kBlock), [&](const auto& r) {
    for (int64_t b = r.begin(); b != r.end(); ++b) {
      const int64_t c0 = b * kBlock, c1 = std::min(d, c0 + kBlock);
      for (int64_t n = 0; n < x.rows; ++n)
        for (int64_t c = c0; c < c1; ++c) dgain[c] += dout.data[n * d + c] * x.data[n * d + c] * rstd[n];
    }
  });
}

}  // namespace livs::evaluator
