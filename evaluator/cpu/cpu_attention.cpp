// Causal softmax attention (multi-head, grouped-query, optional sliding
// window), its backward, and the one-token decode step over a KV cache.
// Training attention is blocked like FlashAttention: a block of query rows
// against a chunk of keys at a time, the products through the serial GEMM
// (cpu/gemm.hpp), an online softmax across chunks, no seq x seq matrix; the
// log-sum-exp of each row is saved so the backward recomputes the
// probabilities. Decode (one query row) walks its keys directly.
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "evaluator/cpu/cpu_backend.hpp"
#include "evaluator/cpu/gemm.hpp"
#include "evaluator/cpu/simd.hpp"

namespace livs::evaluator {

namespace {

constexpr int64_t kChunk = 128;      // keys per online-softmax chunk (stack buffers)
constexpr int64_t kQueryBlock = 32;  // query rows per training block

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

// Where query row i may look inside the key chunk [j0, j0 + len): [from, to).
LIVS_INLINE void visible_keys(int64_t i, int window, int64_t j0, int64_t len, int64_t& from, int64_t& to) {
  from = std::max<int64_t>(first_key(i, window) - j0, 0);
  to = std::min<int64_t>(i + 1 - j0, len);
}

// One (batch, head) and query rows [i0, i1): out rows and their log-sum-exp.
LIVS_CPU_CLONES void forward_block(int64_t b, int64_t h, int64_t i0, int64_t i1, float* out, float* lse,
                                   const float* q, const float* k, const float* v, const AttentionShape& s) {
  const int64_t hd = s.head_dim, T = s.seq, H = s.heads, KV = s.kv_heads;
  const int64_t kvh = h / (H / KV), rows = i1 - i0;
  const int64_t q_stride = H * hd, kv_stride = KV * hd;
  const float* qb = q + ((b * T + i0) * H + h) * hd;
  float* ob = out + ((b * T + i0) * H + h) * hd;
  auto kv_row = [&](const float* base, int64_t j) { return base + ((b * T + j) * KV + kvh) * hd; };
  float probs[kQueryBlock * kChunk];
  float row_max[kQueryBlock], row_sum[kQueryBlock];
  for (int64_t r = 0; r < rows; ++r) {
    std::fill(ob + r * q_stride, ob + r * q_stride + hd, 0.0f);
    row_max[r] = -std::numeric_limits<float>::infinity();
    row_sum[r] = 0.0f;
  }
  for (int64_t j0 = first_key(i0, s.window); j0 < i1; j0 += kChunk) {
    const int64_t len = std::min(kChunk, i1 - j0);
    cpu::gemm_serial(probs, kChunk, rows, len, hd, {qb, q_stride, 1}, {kv_row(k, j0), 1, kv_stride}, false);
    for (int64_t r = 0; r < rows; ++r) {
      float* p = probs + r * kChunk;
      int64_t from, to;
      visible_keys(i0 + r, s.window, j0, len, from, to);
      float chunk_max = -std::numeric_limits<float>::infinity();
      for (int64_t c = from; c < to; ++c) chunk_max = std::max(chunk_max, p[c] * s.scale);
      const float new_max = std::max(row_max[r], chunk_max);
      for (int64_t c = 0; c < len; ++c)
        p[c] = (c >= from && c < to) ? cpu::exp_poly(p[c] * s.scale - new_max) : 0.0f;
      if (from < to && row_max[r] != new_max && row_max[r] != -std::numeric_limits<float>::infinity()) {
        const float alpha = cpu::exp_poly(row_max[r] - new_max);
        row_sum[r] *= alpha;
        for (int64_t d = 0; d < hd; ++d) ob[r * q_stride + d] *= alpha;
      }
      for (int64_t c = from; c < to; ++c) row_sum[r] += p[c];
      if (from < to) row_max[r] = new_max;
    }
    cpu::gemm_serial(ob, q_stride, rows, hd, len, {probs, kChunk, 1}, {kv_row(v, j0), kv_stride, 1}, true);
  }
  for (int64_t r = 0; r < rows; ++r) {
    const float inv = 1.0f / row_sum[r];
    for (int64_t d = 0; d < hd; ++d) ob[r * q_stride + d] *= inv;
    lse[(b * H + h) * T + i0 + r] = row_max[r] + std::log(row_sum[r]);
  }
}

// One (batch, kv head): every query head of its group, query blocks and key
// chunks in order, so each dk/dv/dq element is summed in a fixed order.
LIVS_CPU_CLONES void backward_group(int64_t b, int64_t kvh, float* dq, float* dk, float* dv,
                                    const float* dout, const float* q, const float* k, const float* v,
                                    const float* out, const float* lse, const AttentionShape& s,
                                    bool accumulate) {
  const int64_t hd = s.head_dim, T = s.seq, H = s.heads, KV = s.kv_heads;
  const int64_t group = H / KV, q_stride = H * hd, kv_stride = KV * hd;
  auto kv_offset = [&](int64_t j) { return ((b * T + j) * KV + kvh) * hd; };
  if (!accumulate)  // written: this task owns the dk, dv rows of its kv head and the dq rows of its group
    for (int64_t j = 0; j < T; ++j) {
      std::fill_n(dk + kv_offset(j), hd, 0.0f);
      std::fill_n(dv + kv_offset(j), hd, 0.0f);
      for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h)
        std::fill_n(dq + ((b * T + j) * H + h) * hd, hd, 0.0f);
    }
  float probs[kQueryBlock * kChunk], dscores[kQueryBlock * kChunk];
  float delta[kQueryBlock];
  for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
    for (int64_t i0 = 0; i0 < T; i0 += kQueryBlock) {
      const int64_t i1 = std::min(T, i0 + kQueryBlock), rows = i1 - i0;
      const int64_t qo = ((b * T + i0) * H + h) * hd;
      for (int64_t r = 0; r < rows; ++r)
        delta[r] = cpu::dot_fma(dout + qo + r * q_stride, out + qo + r * q_stride, hd);
      for (int64_t j0 = first_key(i0, s.window); j0 < i1; j0 += kChunk) {
        const int64_t len = std::min(kChunk, i1 - j0);
        const int64_t ko = kv_offset(j0);
        cpu::gemm_serial(probs, kChunk, rows, len, hd, {q + qo, q_stride, 1}, {k + ko, 1, kv_stride}, false);
        cpu::gemm_serial(dscores, kChunk, rows, len, hd, {dout + qo, q_stride, 1}, {v + ko, 1, kv_stride},
                         false);
        for (int64_t r = 0; r < rows; ++r) {
          float* p = probs + r * kChunk;
          float* ds = dscores + r * kChunk;
          const float row_lse = lse[(b * H + h) * T + i0 + r];
          int64_t from, to;
          visible_keys(i0 + r, s.window, j0, len, from, to);
          for (int64_t c = 0; c < len; ++c) {
            const bool visible = c >= from && c < to;
            p[c] = visible ? cpu::exp_poly(p[c] * s.scale - row_lse) : 0.0f;
            ds[c] = p[c] * (ds[c] - delta[r]) * s.scale;  // ds = p (dp - D) scale; 0 where masked
          }
        }
        cpu::gemm_serial(dq + qo, q_stride, rows, hd, len, {dscores, kChunk, 1}, {k + ko, kv_stride, 1},
                         true);
        cpu::gemm_serial(dk + ko, kv_stride, len, hd, rows, {dscores, 1, kChunk}, {q + qo, q_stride, 1},
                         true);
        cpu::gemm_serial(dv + ko, kv_stride, len, hd, rows, {probs, 1, kChunk}, {dout + qo, q_stride, 1},
                         true);
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
                                   const AttentionShape& s, void* out16) {
  if (out16) unsupported("attention_forward with a bf16 shadow", out16);
  const int64_t blocks = (s.seq + kQueryBlock - 1) / kQueryBlock;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, int64_t(s.batch) * s.heads * blocks, 1),
                    [&](const auto& r) {
                      for (int64_t task = r.begin(); task != r.end(); ++task) {
                        const int64_t blk = task % blocks, bh = task / blocks;
                        const int64_t i0 = blk * kQueryBlock, i1 = std::min<int64_t>(s.seq, i0 + kQueryBlock);
                        forward_block(bh / s.heads, bh % s.heads, i0, i1, out, lse, q, k, v, s);
                      }
                    });
}

// With p = softmax row, dp_j = dout.v_j, D = dout.out:
//   ds_j = p_j (dp_j - D);  dq += scale ds_j k_j;  dk_j += scale ds_j q;  dv_j += p_j dout
// (into zeros first when the gradients are written, not accumulated).
// One task per (batch, kv head) owns every dk/dv row it writes and visits its
// query heads and rows in order, so the sums have a fixed order.
void CpuBackend::attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q,
                                    const float* k, const float* v, const float* out, const float* lse,
                                    const AttentionShape& s, bool accumulate, void* dv16) {
  if (dv16) unsupported("attention_backward with a bf16 shadow", dv16);
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, int64_t(s.batch) * s.kv_heads, 1), [&](const auto& r) {
    for (int64_t task = r.begin(); task != r.end(); ++task)
      backward_group(task / s.kv_heads, task % s.kv_heads, dq, dk, dv, dout, q, k, v, out, lse, s,
                     accumulate);
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
