// Linear attention (optionally GLA-gated) on the CPU: positive feature maps,
// GLA's low-temperature log decay, and the causal scan
//   S_t = diag(alpha_t) S_{t-1} + k_t v_t^T,  out_t = S_t^T q_t.
// Each (batch, head) is one task that scans in time order, so every output
// element has one owner and a fixed summation order (deterministic).
#include <tbb/parallel_for.h>

#include <cmath>
#include <vector>

#include "evaluator/cpu/cpu_backend.hpp"
#include "evaluator/cpu/dot.hpp"

namespace livs::evaluator {

namespace {

constexpr int64_t kGrain = 1 << 12;

// Per-thread scratch that grows once to the largest shape seen, so steady
// training allocates nothing.
float* scratch(std::vector<float>& buffer, std::size_t count) {
  if (buffer.size() < count) buffer.resize(count);
  return buffer.data();
}

// Where (batch b, time t, head h) starts in a [batch, seq, heads, head_dim] tensor.
struct Layout {
  int64_t seq, heads, hd;
  int64_t at(int64_t b, int64_t t, int64_t h) const { return ((b * seq + t) * heads + h) * hd; }
};

// Multiplies row i of the hd x hd state by alpha_i = exp(log_alpha_i) (when gated).
void decay_rows(float* s, const float* log_alpha, int64_t hd) {
  if (!log_alpha) return;
  for (int64_t i = 0; i < hd; ++i) {
    const float a = std::exp(log_alpha[i]);
    float* row = s + i * hd;
    for (int64_t j = 0; j < hd; ++j) row[j] *= a;
  }
}

// S = diag(alpha) S + k v^T.
void update_state(float* s, const float* k, const float* v, const float* log_alpha, int64_t hd) {
  decay_rows(s, log_alpha, hd);
  for (int64_t i = 0; i < hd; ++i) cpu::axpy(s + i * hd, k[i], v, hd);
}

// out = S^T q, summed over key channels in order.
void read_state(float* out, const float* q, const float* s, int64_t hd) {
  for (int64_t j = 0; j < hd; ++j) out[j] = 0.0f;
  for (int64_t i = 0; i < hd; ++i) cpu::axpy(out, q[i], s + i * hd, hd);
}

}  // namespace

void CpuBackend::feature_map_forward(float* out, const float* in, int64_t count, FeatureMapKind kind) {
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, count, kGrain), [&](const auto& r) {
    for (int64_t i = r.begin(); i != r.end(); ++i) {
      const float x = in[i];
      switch (kind) {
        case FeatureMapKind::elu_plus_one:
          out[i] = x > 0.0f ? x + 1.0f : std::exp(x);
          break;
        case FeatureMapKind::relu:
          out[i] = x > 0.0f ? x : 0.0f;
          break;
        case FeatureMapKind::identity:
          out[i] = x;
          break;
      }
    }
  });
}

void CpuBackend::feature_map_backward(float* din, const float* dout, const float* in, int64_t count,
                                      FeatureMapKind kind, bool accumulate) {
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, count, kGrain), [&](const auto& r) {
    for (int64_t i = r.begin(); i != r.end(); ++i) {
      const float x = in[i];
      float slope = 1.0f;
      if (kind == FeatureMapKind::elu_plus_one)
        slope = x > 0.0f ? 1.0f : std::exp(x);
      else if (kind == FeatureMapKind::relu)
        slope = x > 0.0f ? 1.0f : 0.0f;
      din[i] = (accumulate ? din[i] : 0.0f) + dout[i] * slope;
    }
  });
}

// log(sigmoid(u)) = -softplus(-u), written to stay finite for large |u|.
void CpuBackend::gla_log_decay_forward(float* log_alpha, const float* z, const float* bias, int64_t rows,
                                       int64_t cols, float temperature) {
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, rows, 16), [&](const auto& r) {
    for (int64_t n = r.begin(); n != r.end(); ++n)
      for (int64_t c = 0; c < cols; ++c) {
        const float u = z[n * cols + c] + bias[c];
        const float log_sigmoid = u >= 0.0f ? -std::log1p(std::exp(-u)) : u - std::log1p(std::exp(u));
        log_alpha[n * cols + c] = log_sigmoid / temperature;
      }
  });
}

void CpuBackend::gla_log_decay_backward(float* dz, float* dbias, const float* dlog_alpha, const float* z,
                                        const float* bias, int64_t rows, int64_t cols, float temperature) {
  auto slope = [&](int64_t n, int64_t c) {  // d log_alpha / dz = (1 - sigmoid(u)) / temperature
    return dlog_alpha[n * cols + c] / (1.0f + std::exp(z[n * cols + c] + bias[c])) / temperature;
  };
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, rows, 16), [&](const auto& r) {
    for (int64_t n = r.begin(); n != r.end(); ++n)
      for (int64_t c = 0; c < cols; ++c) dz[n * cols + c] += slope(n, c);
  });
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, cols, 16), [&](const auto& r) {
    for (int64_t c = r.begin(); c != r.end(); ++c) {
      float sum = 0.0f;
      for (int64_t n = 0; n < rows; ++n) sum += slope(n, c);
      dbias[c] += sum;
    }
  });
}

void CpuBackend::linear_attention_forward(float* out, const float* q, const float* k, const float* v,
                                          const float* log_alpha, const LinearAttentionShape& shape) {
  const Layout at{shape.seq, shape.heads, shape.head_dim};
  const int64_t hd = shape.head_dim, tasks = int64_t(shape.batch) * shape.heads;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, tasks, 1), [&](const auto& r) {
    thread_local std::vector<float> state_buffer;
    float* s = scratch(state_buffer, std::size_t(hd * hd));
    for (int64_t task = r.begin(); task != r.end(); ++task) {
      const int64_t b = task / shape.heads, h = task % shape.heads;
      std::fill(s, s + hd * hd, 0.0f);
      for (int64_t t = 0; t < shape.seq; ++t) {
        const int64_t o = at.at(b, t, h);
        update_state(s, k + o, v + o, log_alpha ? log_alpha + o : nullptr, hd);
        read_state(out + o, q + o, s, hd);
      }
    }
  });
}

// Two scans per (batch, head), neither storing the states:
//  forward in time, recomputing S_t:  dq_t = S_t dout_t;
//  backward in time, with G = dL/dS_t: G = diag(alpha_{t+1}) G + q_t dout_t^T,
//    dk_t = G v_t, dv_t = G^T k_t.
// With L_t = cumsum(log_alpha), the decay enters only through
// exp(L_t - L_s), which gives dL_t = q_t * dq_t - k_t * dk_t (this kernel's
// own dq, dk), and dlog_alpha_t = sum_{u >= t} dL_u.
void CpuBackend::linear_attention_backward(float* dq, float* dk, float* dv, float* dlog_alpha,
                                           const float* dout, const float* q, const float* k, const float* v,
                                           const float* log_alpha, const LinearAttentionShape& shape,
                                           bool accumulate) {
  const Layout at{shape.seq, shape.heads, shape.head_dim};
  const int64_t hd = shape.head_dim, seq = shape.seq, tasks = int64_t(shape.batch) * shape.heads;
  // Each task owns its rows of the gradients: written means added into zeros.
  auto put = [accumulate](float& to, float value) { to = accumulate ? to + value : value; };
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, tasks, 1), [&](const auto& r) {
    thread_local std::vector<float> buffer;
    float* base = scratch(buffer, std::size_t(2 * hd * hd + 2 * seq * hd + 2 * hd));
    float *s = base, *g = s + hd * hd, *local_dq = g + hd * hd, *local_dk = local_dq + seq * hd,
          *dv_t = local_dk + seq * hd, *running = dv_t + hd;
    for (int64_t task = r.begin(); task != r.end(); ++task) {
      const int64_t b = task / shape.heads, h = task % shape.heads;
      std::fill(s, s + hd * hd, 0.0f);
      for (int64_t t = 0; t < seq; ++t) {
        const int64_t o = at.at(b, t, h);
        update_state(s, k + o, v + o, log_alpha ? log_alpha + o : nullptr, hd);
        for (int64_t i = 0; i < hd; ++i) local_dq[t * hd + i] = cpu::dot(s + i * hd, dout + o, hd);
      }
      std::fill(g, g + hd * hd, 0.0f);
      for (int64_t t = seq - 1; t >= 0; --t) {
        const int64_t o = at.at(b, t, h);
        if (t + 1 < seq) decay_rows(g, log_alpha ? log_alpha + at.at(b, t + 1, h) : nullptr, hd);
        for (int64_t i = 0; i < hd; ++i) cpu::axpy(g + i * hd, q[o + i], dout + o, hd);
        for (int64_t i = 0; i < hd; ++i) local_dk[t * hd + i] = cpu::dot(g + i * hd, v + o, hd);
        std::fill(dv_t, dv_t + hd, 0.0f);
        for (int64_t i = 0; i < hd; ++i) cpu::axpy(dv_t, k[o + i], g + i * hd, hd);
        for (int64_t j = 0; j < hd; ++j) put(dv[o + j], dv_t[j]);
      }
      for (int64_t t = 0; t < seq; ++t) {
        const int64_t o = at.at(b, t, h);
        for (int64_t i = 0; i < hd; ++i) {
          put(dq[o + i], local_dq[t * hd + i]);
          put(dk[o + i], local_dk[t * hd + i]);
        }
      }
      if (!dlog_alpha) continue;
      std::fill(running, running + hd, 0.0f);
      for (int64_t t = seq - 1; t >= 0; --t) {
        const int64_t o = at.at(b, t, h);
        for (int64_t i = 0; i < hd; ++i) {
          running[i] += q[o + i] * local_dq[t * hd + i] - k[o + i] * local_dk[t * hd + i];
          put(dlog_alpha[o + i], running[i]);
        }
      }
    }
  });
}

void CpuBackend::linear_attention_state_update(float* state, const float* k, const float* v,
                                               const float* log_alpha, const LinearAttentionShape& shape) {
  const int64_t hd = shape.head_dim, tasks = int64_t(shape.batch) * shape.heads;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, tasks, 1), [&](const auto& r) {
    for (int64_t task = r.begin(); task != r.end(); ++task)
      update_state(state + task * hd * hd, k + task * hd, v + task * hd,
                   log_alpha ? log_alpha + task * hd : nullptr, hd);
  });
}

void CpuBackend::linear_attention_state_read(float* out, const float* q, const float* state,
                                             const LinearAttentionShape& shape) {
  const int64_t hd = shape.head_dim, tasks = int64_t(shape.batch) * shape.heads;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, tasks, 1), [&](const auto& r) {
    for (int64_t task = r.begin(); task != r.end(); ++task)
      read_state(out + task * hd, q + task * hd, state + task * hd * hd, hd);
  });
}

}  // namespace livs::evaluator
