// The delta rule of deltanet (Backend::delta_rule_forward/backward), fp32,
// sequential in time per (sequence, head), parallel over (sequence, head);
// and Gated DeltaNet's decay -exp(a_log) softplus(z + dt_bias).
//
// The state S [d_k, d_v] lives row-major (S[i * d_v + j]). Backward walks the
// chunks of kScanChunk steps from the last: it recomputes the chunk's states
// from the forward's checkpoint into scratch, then runs the step backwards
// (dS is the gradient of the loss with respect to S_t, carried to t - 1):
//   dS += q_t do_t^T,           dq_t = S_t do_t
//   dk_t = dS w_t + S' du_t,    dw_t = dS^T k_t
//   dv_t = beta_t dw_t,  dbeta_t = dw_t . (v_t - u_t),  du_t = -beta_t dw_t
//   dS' = dS + k_t du_t^T,      dlog_alpha_t = sum(dS' * S'),  dS_{t-1} = alpha_t dS'
#include <tbb/parallel_for.h>

#include <cmath>
#include <vector>

#include "evaluator/cpu/cpu_backend.hpp"
#include "evaluator/cpu/scan_math.hpp"

namespace livs::evaluator {

namespace {

// Offsets into the [batch, seq, heads, head_dim] and [batch, seq, heads] layouts.
struct DeltaIndex {
  const DeltaRuleShape& s;
  int64_t vec(int64_t b, int64_t t, int64_t h) const { return ((b * s.seq + t) * s.heads + h) * s.head_dim; }
  int64_t scalar(int64_t b, int64_t t, int64_t h) const { return (b * s.seq + t) * s.heads + h; }
};

// One forward step on S (in place): returns nothing, writes o (may be null) and w.
void delta_step(float* S, float* w, float* o, const float* q, const float* k, const float* v, float alpha,
                float beta, int n) {
  for (int64_t i = 0; i < int64_t(n) * n; ++i) S[i] *= alpha;
  for (int j = 0; j < n; ++j) {
    float u = 0.0f;
    for (int i = 0; i < n; ++i) u = std::fma(S[i * n + j], k[i], u);
    w[j] = beta * (v[j] - u);
  }
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) S[i * n + j] = std::fma(k[i], w[j], S[i * n + j]);
  if (!o) return;
  for (int j = 0; j < n; ++j) {
    float acc = 0.0f;
    for (int i = 0; i < n; ++i) acc = std::fma(S[i * n + j], q[i], acc);
    o[j] = acc;
  }
}

}  // namespace

void CpuBackend::delta_rule_forward(float* o, float* checkpoints, const float* q, const float* k,
                                    const float* v, const float* log_alpha, const float* beta, float* state,
                                    const DeltaRuleShape& s) {
  const DeltaIndex at{s};
  const int n = s.head_dim;
  const int64_t nn = int64_t(n) * n, chunks = scan_chunks(s.seq);
  tbb::parallel_for(int64_t(0), int64_t(s.batch) * s.heads, [&](int64_t bh) {
    const int64_t b = bh / s.heads, h = bh % s.heads;
    std::vector<float> S(nn, 0.0f), w(n);
    float* own = state ? state + bh * nn : nullptr;
    if (own) std::copy(own, own + nn, S.begin());
    for (int64_t t = 0; t < s.seq; ++t) {
      if (checkpoints && t % kScanChunk == 0)
        std::copy(S.begin(), S.end(), checkpoints + (bh * chunks + t / kScanChunk) * nn);
      const float alpha = log_alpha ? std::exp(log_alpha[at.scalar(b, t, h)]) : 1.0f;
      delta_step(S.data(), w.data(), o + at.vec(b, t, h), q + at.vec(b, t, h), k + at.vec(b, t, h),
                 v + at.vec(b, t, h), alpha, beta[at.scalar(b, t, h)], n);
    }
    if (own) std::copy(S.begin(), S.end(), own);
  });
}

void CpuBackend::delta_rule_backward(float* dq, float* dk, float* dv, float* dlog_alpha, float* dbeta,
                                     float* scratch, const float* dout, const float* checkpoints,
                                     const float* q, const float* k, const float* v, const float* log_alpha,
                                     const float* beta, const DeltaRuleShape& s) {
  const DeltaIndex at{s};
  const int n = s.head_dim;
  const int64_t nn = int64_t(n) * n, chunks = scan_chunks(s.seq);
  tbb::parallel_for(int64_t(0), int64_t(s.batch) * s.heads, [&](int64_t bh) {
    const int64_t b = bh / s.heads, h = bh % s.heads;
    // states[r]: S_{t0 + r - 1} before step t0 + r (r = 0: the checkpoint), then after.
    float* states = scratch + bh * int64_t(kScanChunk) * nn;
    std::vector<float> dS(nn, 0.0f), S_prime(nn), w(n), u(n), dw(n), du(n), after(nn);
    for (int64_t c = chunks - 1; c >= 0; --c) {
      const int64_t t0 = c * kScanChunk, t1 = std::min<int64_t>(s.seq, t0 + kScanChunk);
      // Recompute the states entering each step of the chunk.
      std::copy(checkpoints + (bh * chunks + c) * nn, checkpoints + (bh * chunks + c + 1) * nn, states);
      for (int64_t t = t0; t + 1 < t1; ++t) {
        float* next = states + (t - t0 + 1) * nn;
        std::copy(states + (t - t0) * nn, states + (t - t0 + 1) * nn, next);
        const float alpha = log_alpha ? std::exp(log_alpha[at.scalar(b, t, h)]) : 1.0f;
        delta_step(next, w.data(), nullptr, q, k + at.vec(b, t, h), v + at.vec(b, t, h), alpha,
                   beta[at.scalar(b, t, h)], n);
      }
      for (int64_t t = t1 - 1; t >= t0; --t) {
        const float* prev = states + (t - t0) * nn;
        const float* kt = k + at.vec(b, t, h);
        const float* vt = v + at.vec(b, t, h);
        const float* qt = q + at.vec(b, t, h);
        const float* dot = dout + at.vec(b, t, h);
        const float alpha = log_alpha ? std::exp(log_alpha[at.scalar(b, t, h)]) : 1.0f;
        const float bt = beta[at.scalar(b, t, h)];
        // Forward quantities of step t.
        for (int64_t i = 0; i < nn; ++i) S_prime[i] = alpha * prev[i];
        for (int j = 0; j < n; ++j) {
          float acc = 0.0f;
          for (int i = 0; i < n; ++i) acc = std::fma(S_prime[i * n + j], kt[i], acc);
          u[j] = acc;
          w[j] = bt * (vt[j] - acc);
        }
        for (int i = 0; i < n; ++i)
          for (int j = 0; j < n; ++j) after[i * n + j] = std::fma(kt[i], w[j], S_prime[i * n + j]);
        // o_t = S_t^T q_t.
        float* dqt = dq + at.vec(b, t, h);
        for (int i = 0; i < n; ++i) {
          float acc = 0.0f;
          for (int j = 0; j < n; ++j) {
            dS[i * n + j] = std::fma(qt[i], dot[j], dS[i * n + j]);
            acc = std::fma(after[i * n + j], dot[j], acc);
          }
          dqt[i] += acc;
        }
        // S_t = S' + k w^T.
        float dbeta_t = 0.0f;
        for (int j = 0; j < n; ++j) {
          float acc = 0.0f;
          for (int i = 0; i < n; ++i) acc = std::fma(dS[i * n + j], kt[i], acc);
          dw[j] = acc;
          dv[at.vec(b, t, h) + j] += bt * acc;
          dbeta_t = std::fma(acc, vt[j] - u[j], dbeta_t);
          du[j] = -bt * acc;
        }
        dbeta[at.scalar(b, t, h)] += dbeta_t;
        float* dkt = dk + at.vec(b, t, h);
        for (int i = 0; i < n; ++i) {
          float acc = 0.0f;
          for (int j = 0; j < n; ++j) {
            acc = std::fma(dS[i * n + j], w[j], acc);
            acc = std::fma(S_prime[i * n + j], du[j], acc);
          }
          dkt[i] += acc;
        }
        // dS' = dS + k du^T; S' = alpha S_{t-1}.
        float dla = 0.0f;
        for (int i = 0; i < n; ++i)
          for (int j = 0; j < n; ++j) {
            const float g = std::fma(kt[i], du[j], dS[i * n + j]);
            dla = std::fma(g, S_prime[i * n + j], dla);
            dS[i * n + j] = alpha * g;
          }
        if (dlog_alpha) dlog_alpha[at.scalar(b, t, h)] += dla;
      }
    }
  });
}

void CpuBackend::gdn_decay_forward(float* log_alpha, const float* z, const float* a_log, const float* dt_bias,
                                   int64_t rows, int heads) {
  tbb::parallel_for(int64_t(0), rows, [&](int64_t r) {
    for (int h = 0; h < heads; ++h) {
      const int64_t i = r * heads + h;
      log_alpha[i] = -std::exp(a_log[h]) * cpu::softplus(z[i] + dt_bias[h]);
    }
  });
}

void CpuBackend::gdn_decay_backward(float* dz, float* da_log, float* ddt_bias, const float* dlog_alpha,
                                    const float* z, const float* a_log, const float* dt_bias, int64_t rows,
                                    int heads) {
  // dz is elementwise; the per-head sums run over rows in order (deterministic).
  for (int h = 0; h < heads; ++h) {
    const float a = std::exp(a_log[h]);
    double sum_a = 0.0, sum_dt = 0.0;
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t i = r * heads + h;
      const float x = z[i] + dt_bias[h];
      const float g = -a * cpu::sigmoid(x) * dlog_alpha[i];  // d/dx of -a softplus(x)
      dz[i] += g;
      sum_dt += g;
      sum_a += double(dlog_alpha[i]) * (-a * cpu::softplus(x));
    }
    da_log[h] += float(sum_a);
    ddt_bias[h] += float(sum_dt);
  }
}

}  // namespace livs::evaluator
