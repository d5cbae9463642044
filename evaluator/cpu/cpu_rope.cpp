// Rotary position embedding, "rotate half" pairs (i, i + head_dim / 2).
#include <tbb/parallel_for.h>

#include "evaluator/cpu/cpu_backend.hpp"

namespace livs::evaluator {

namespace {

// Calls rotate(src_offset, dst_offset, cos_row, sin_row) for every (token,
// head) vector of a [batch, seq, heads, head_dim] tensor (rows src_stride /
// dst_stride apart), with the tables at the token's position; forward and
// backward differ only in the rotation they apply.
template <class Rotate>
void for_each_rope_vector(const float* cos, const float* sin, const RopeShape& s, Rotate rotate) {
  const int64_t half = s.head_dim / 2;
  const int64_t rows = int64_t(s.batch) * s.seq, src_ld = s.src_stride(), dst_ld = s.dst_stride();
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, rows, 16), [&](const auto& r) {
    for (int64_t n = r.begin(); n != r.end(); ++n) {
      const int64_t pos = s.position_offset + n % s.seq;
      for (int64_t h = 0; h < s.heads; ++h)
        rotate(n * src_ld + h * s.head_dim, n * dst_ld + h * s.head_dim, cos + pos * half, sin + pos * half);
    }
  });
}

}  // namespace

void CpuBackend::rope_forward(float* out, const float* in, const float* cos, const float* sin,
                              const RopeShape& s) {
  const int64_t half = s.head_dim / 2;
  for_each_rope_vector(cos, sin, s, [&](int64_t from, int64_t to, const float* c, const float* sn) {
    const float* x = in + from;
    float* y = out + to;
    for (int64_t i = 0; i < half; ++i) {
      const float x1 = x[i], x2 = x[i + half];
      y[i] = x1 * c[i] - x2 * sn[i];
      y[i + half] = x1 * sn[i] + x2 * c[i];
    }
  });
}

void CpuBackend::rope_backward(float* din, const float* dout, const float* cos, const float* sin,
                               const RopeShape& s) {
  const int64_t half = s.head_dim / 2;
  for_each_rope_vector(cos, sin, s, [&](int64_t from, int64_t to, const float* c, const float* sn) {
    const float* dy = dout + from;
    float* dx = din + to;
    for (int64_t i = 0; i < half; ++i) {
      const float d1 = dy[i], d2 = dy[i + half];
      dx[i] = d1 * c[i] + d2 * sn[i];
      dx[i + half] = -d1 * sn[i] + d2 * c[i];
    }
  });
}

}  // namespace livs::evaluator
