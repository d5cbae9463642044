// Causal softmax attention (multi-head, grouped-query, optional sliding
// window), its backward, and the one-token decode step over a KV cache.
// The forward keeps no seq x seq matrix: keys are visited in chunks with an
// online softmax, and the log-sum-exp of each row is saved so the backward
// recomputes the probabilities.
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "evaluator/cpu/cpu_backend.hpp"
#include "evaluator/cpu/simd.hpp"

namespace livs::evaluator {

namespace {

constexpr int64_t kChunk = 128;  // keys scored per online-softmax chunk (a stack buffer)

LIVS_INLINE int64_t first_key(int64_t position, int window) {
  return window > 0 ? std::max<int64_t>(0, position - window + 1) : 0;
}

// o = softmax(scale * q.k_j) v_j over key positions [lo, hi]; key_at(p) and
// value_at(p) give the rows of position p. Writes the row's log-sum-exp when asked.
template <class KeyAt, class ValueAt>
LIVS_INLINE void attend_row(float* o, float* lse, const float* q, int64_t lo, int64_t hi, int64_t hd,
                            float scale, KeyAt key_at, ValueAt value_at) {
  float scores[kChunk];
  float running_max = -std::numeric_limits<float>::infinity();
  float running_sum = 0.0f;
  std::fill(o, o + hd, 0.0f);
  for (int64_t j0 = lo; j0 <= hi; j0 += kChunk) {
    const int64_t j1 = std::min(hi + 1, j0 + kChunk);
    float chunk_max = -std::numeric_limits<float>::infinity();
    for (int64_t j = j0; j < j1; ++j) {
      scores[j - j0] = cpu::dot_fma(q, key_at(j), hd) * scale;
      chunk_max = std::max(chunk_max, scores[j - j0]);
    }
    const float new_max = std::max(running_max, chunk_max);
    if (running_max != new_max && j0 != lo) {
      const float alpha = cpu::exp_poly(running_max - new_max);
      running_sum *= alpha;
      for (int64_t d = 0; d < hd; ++d) o[d] *= alpha;
    }
    for (int64_t j = 0; j < j1 - j0; ++j) scores[j] = cpu::exp_poly(scores[j] - new_max);  // vectorized
    for (int64_t j = j0; j < j1; ++j) {
      running_sum += scores[j - j0];
      cpu::axpy_fma(o, scores[j - j0], value_at(j), hd);
    }
    running_max = new_max;
  }
  const float inv = 1.0f / running_sum;
  for (int64_t d = 0; d < hd; ++d) o[d] *= inv;
  if (lse) *lse = running_max + std::log(running_sum);
}

// Query rows [begin, end) of the flattened (batch, head, position) index.
LIVS_CPU_CLONES void forward_rows(int64_t begin, int64_t end, float* out, float* lse, const float* q,
                                  const float* k, const float* v, const AttentionShape& s) {
  const int64_t hd = s.head_dim, T = s.seq, H = s.heads, KV = s.kv_heads;
  const int64_t group = H / KV;
  for (int64_t row = begin; row != end; ++row) {
    const int64_t t = row % T, h = (row / T) % H, b = row / (T * H);
    const float* kb = k + (b * T * KV + h / group) * hd;
    const float* vb = v + (b * T * KV + h / group) * hd;
    attend_row(
        out + ((b * T + t) * H + h) * hd, lse + (b * H + h) * T + t, q + ((b * T + t) * H + h) * hd,
        first_key(t, s.window), t, hd, s.scale, [&](int64_t j) { return kb + j * KV * hd; },
        [&](int64_t j) { return vb + j * KV * hd; });
  }
}

// One (batch, kv head): every query head of its group, rows in order.
LIVS_CPU_CLONES void backward_group(int64_t b, int64_t kvh, float* dq, float* dk, float* dv,
                                    const float* dout, const float* q, const float* k, const float* v,
                                    const float* out, const float* lse, const AttentionShape& s) {
  const int64_t hd = s.head_dim, T = s.seq, H = s.heads, KV = s.kv_heads;
  const int64_t group = H / KV;
  auto kv_offset = [&](int64_t j) { return ((b * T + j) * KV + kvh) * hd; };
  for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
    for (int64_t i = 0; i < T; ++i) {
      const int64_t qi = ((b * T + i) * H + h) * hd;
      const float* qr = q + qi;
      const float* dor = dout + qi;
      float* dqr = dq + qi;
      const float row_lse = lse[(b * H + h) * T + i];
      const float D = cpu::dot_fma(dor, out + qi, hd);
      float probs[kChunk];
      for (int64_t j0 = first_key(i, s.window); j0 <= i; j0 += kChunk) {
        const int64_t len = std::min(i + 1 - j0, kChunk);
        for (int64_t j = 0; j < len; ++j)
          probs[j] = cpu::dot_fma(qr, k + kv_offset(j0 + j), hd) * s.scale - row_lse;
        for (int64_t j = 0; j < len; ++j) probs[j] = cpu::exp_poly(probs[j]);  // vectorized
        for (int64_t j = 0; j < len; ++j) {
          const int64_t kj = kv_offset(j0 + j);
          const float p = probs[j];
          const float dp = cpu::dot_fma(dor, v + kj, hd);
          const float ds = p * (dp - D) * s.scale;
          cpu::axpy_fma(dqr, ds, k + kj, hd);
          cpu::axpy_fma(dk + kj, ds, qr, hd);
          cpu::axpy_fma(dv + kj, p, dor, hd);
        }
      }
    }
  }
}

LIVS_CPU_CLONES void decode_rows(int64_t begin, int64_t end, float* out, const float* q, const float* k_cache,
                                 const float* v_cache, const AttentionShape& s, int64_t capacity,
                                 int64_t position) {
  const int64_t hd = s.head_dim, H = s.heads, KV = s.kv_heads;
  const int64_t group = H / KV;
  for (int64_t bh = begin; bh != end; ++bh) {
    const int64_t b = bh / H, h = bh % H;
    const int64_t base = (b * KV + h / group) * capacity * hd;
    attend_row(
        out + bh * hd, nullptr, q + bh * hd, first_key(position, s.window), position, hd, s.scale,
        [&](int64_t p) { return k_cache + base + (p % capacity) * hd; },
        [&](int64_t p) { return v_cache + base + (p % capacity) * hd; });
  }
}

}  // namespace

void CpuBackend::attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                                   const AttentionShape& s) {
  const int64_t rows = int64_t(s.batch) * s.heads * s.seq;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, rows, 8),
                    [&](const auto& r) { forward_rows(r.begin(), r.end(), out, lse, q, k, v, s); });
}

// With p = softmax row, dp_j = dout.v_j, D = dout.out:
//   ds_j = p_j (dp_j - D);  dq += scale ds_j k_j;  dk_j += scale ds_j q;  dv_j += p_j dout.
// One task per (batch, kv head) owns every dk/dv row it writes and visits its
// query heads and rows in order, so the sums have a fixed order.
void CpuBackend::attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q,
                                    const float* k, const float* v, const float* out, const float* lse,
                                    const AttentionShape& s) {
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, int64_t(s.batch) * s.kv_heads, 1), [&](const auto& r) {
    for (int64_t task = r.begin(); task != r.end(); ++task)
      backward_group(task / s.kv_heads, task % s.kv_heads, dq, dk, dv, dout, q, k, v, out, lse, s);
  });
}

void CpuBackend::kv_cache_write(float* k_cache, float* v_cache, const float* k, const float* v,
                                const AttentionShape& s, int64_t capacity, int64_t position) {
  const int64_t hd = s.head_dim, KV = s.kv_heads;
  const int64_t slot = position % capacity;
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t h = 0; h < KV; ++h) {
      const int64_t src = (b * KV + h) * hd;
      const int64_t dst = ((b * KV + h) * capacity + slot) * hd;
      std::copy(k + src, k + src + hd, k_cache + dst);
      std::copy(v + src, v + src + hd, v_cache + dst);
    }
}

void CpuBackend::attention_decode(float* out, const float* q, const float* k_cache, const float* v_cache,
                                  const AttentionShape& s, int64_t capacity, int64_t position) {
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, int64_t(s.batch) * s.heads, 1), [&](const auto& r) {
    decode_rows(r.begin(), r.end(), out, q, k_cache, v_cache, s, capacity, position);
  });
}

}  // namespace livs::evaluator
