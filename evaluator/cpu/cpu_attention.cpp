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
#include "evaluator/cpu/dot.hpp"

namespace livs::evaluator {

namespace {

constexpr int64_t kChunk = 128;  // keys scored per online-softmax chunk (a stack buffer)

int64_t first_key(int64_t position, int window) {
  return window > 0 ? std::max<int64_t>(0, position - window + 1) : 0;
}

// o = softmax(scale * q.k_j) v_j over key positions [lo, hi]; at(p) gives the
// key and value rows of position p. Writes the row's log-sum-exp when asked.
template <class KeyAt, class ValueAt>
void attend_row(float* o, float* lse, const float* q, int64_t lo, int64_t hi, int64_t hd, float scale,
                KeyAt key_at, ValueAt value_at) {
  float scores[kChunk];
  float running_max = -std::numeric_limits<float>::infinity();
  float running_sum = 0.0f;
  std::fill(o, o + hd, 0.0f);
  for (int64_t j0 = lo; j0 <= hi; j0 += kChunk) {
    const int64_t j1 = std::min(hi + 1, j0 + kChunk);
    float chunk_max = -std::numeric_limits<float>::infinity();
    for (int64_t j = j0; j < j1; ++j) {
      scores[j - j0] = cpu::dot(q, key_at(j), hd) * scale;
      chunk_max = std::max(chunk_max, scores[j - j0]);
    }
    const float new_max = std::max(running_max, chunk_max);
    if (running_max != new_max && j0 != lo) {
      const float alpha = std::exp(running_max - new_max);
      running_sum *= alpha;
      for (int64_t d = 0; d < hd; ++d) o[d] *= alpha;
    }
    for (int64_t j = j0; j < j1; ++j) {
      const float p = std::exp(scores[j - j0] - new_max);
      running_sum += p;
      cpu::axpy(o, p, value_at(j), hd);
    }
    running_max = new_max;
  }
  const float inv = 1.0f / running_sum;
  for (int64_t d = 0; d < hd; ++d) o[d] *= inv;
  if (lse) *lse = running_max + std::log(running_sum);
}

}  // namespace

void CpuBackend::attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                                   const AttentionShape& s) {
  const int64_t hd = s.head_dim, T = s.seq, H = s.heads, KV = s.kv_heads;
  const int64_t group = H / KV;
  const int64_t rows = int64_t(s.batch) * H * T;  // (b, h, t)
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, rows, 8), [&](const auto& r) {
    for (int64_t row = r.begin(); row != r.end(); ++row) {
      const int64_t t = row % T, h = (row / T) % H, b = row / (T * H);
      const int64_t kvh = h / group;
      const float* kb = k + (b * T * KV + kvh) * hd;
      const float* vb = v + (b * T * KV + kvh) * hd;
      attend_row(
          out + ((b * T + t) * H + h) * hd, lse + (b * H + h) * T + t, q + ((b * T + t) * H + h) * hd,
          first_key(t, s.window), t, hd, s.scale, [&](int64_t j) { return kb + j * KV * hd; },
          [&](int64_t j) { return vb + j * KV * hd; });
    }
  });
}

// With p = softmax row, dp_j = dout.v_j, D = dout.out:
//   ds_j = p_j (dp_j - D);  dq += scale ds_j k_j;  dk_j += scale ds_j q;  dv_j += p_j dout.
// One task per (batch, kv head) owns every dk/dv row it writes and visits its
// query heads and rows in order, so the sums have a fixed order.
void CpuBackend::attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q,
                                    const float* k, const float* v, const float* out, const float* lse,
                                    const AttentionShape& s) {
  const int64_t hd = s.head_dim, T = s.seq, H = s.heads, KV = s.kv_heads;
  const int64_t group = H / KV;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, int64_t(s.batch) * KV, 1), [&](const auto& r) {
    for (int64_t task = r.begin(); task != r.end(); ++task) {
      const int64_t b = task / KV, kvh = task % KV;
      auto kv_row = [&](const float* base, int64_t j) { return base + ((b * T + j) * KV + kvh) * hd; };
      auto kv_row_mut = [&](float* base, int64_t j) { return base + ((b * T + j) * KV + kvh) * hd; };
      for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
        for (int64_t i = 0; i < T; ++i) {
          const int64_t qi = ((b * T + i) * H + h) * hd;
          const float* qr = q + qi;
          const float* dor = dout + qi;
          float* dqr = dq + qi;
          const float row_lse = lse[(b * H + h) * T + i];
          const float D = cpu::dot(dor, out + qi, hd);
          for (int64_t j = first_key(i, s.window); j <= i; ++j) {
            const float* kr = kv_row(k, j);
            const float p = std::exp(cpu::dot(qr, kr, hd) * s.scale - row_lse);
            const float dp = cpu::dot(dor, kv_row(v, j), hd);
            const float ds = p * (dp - D) * s.scale;
            cpu::axpy(dqr, ds, kr, hd);
            cpu::axpy(kv_row_mut(dk, j), ds, qr, hd);
            cpu::axpy(kv_row_mut(dv, j), p, dor, hd);
          }
        }
      }
    }
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
  const int64_t hd = s.head_dim, H = s.heads, KV = s.kv_heads;
  const int64_t group = H / KV;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, int64_t(s.batch) * H, 1), [&](const auto& r) {
    for (int64_t bh = r.begin(); bh != r.end(); ++bh) {
      const int64_t b = bh / H, h = bh % H;
      const int64_t base = (b * KV + h / group) * capacity * hd;
      attend_row(
          out + bh * hd, nullptr, q + bh * hd, first_key(position, s.window), position, hd, s.scale,
          [&](int64_t p) { return k_cache + base + (p % capacity) * hd; },
          [&](int64_t p) { return v_cache + base + (p % capacity) * hd; });
    }
  });
}

}  // namespace livs::evaluator
