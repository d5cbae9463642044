// Mamba-2's SSD scan on the CPU, in fp32: the recurrence itself, one head at
// a time, which is the reference the chunked GPU kernels (cuda/ssd.cu) are
// checked against. Forward: (sequence, head) tasks walking time, keeping the
// state entering every chunk of kScanChunk steps. Backward: one task per
// sequence (B and C are shared by the heads, so a sequence's dB and dC rows
// are written by one task, heads in order); each chunk's states are
// recomputed from its checkpoint with the forward's arithmetic, then the
// chunk is walked in reverse. dA and dD are per-sequence partials summed over
// the batch in order, so the bits do not depend on the number of threads.
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "evaluator/cpu/cpu_backend.hpp"
#include "evaluator/cpu/simd.hpp"

namespace livs::evaluator {

namespace {

void check_shape(const char* kernel, const SsdShape& s) {
  if (s.batch < 1 || s.seq < 1 || s.heads < 1 || s.head_dim < 1 || s.state < 1 || s.state > 1024)
    throw std::invalid_argument(std::string(kernel) + ": invalid shape (batch " + std::to_string(s.batch) +
                                ", seq " + std::to_string(s.seq) + ", heads " + std::to_string(s.heads) +
                                ", head_dim " + std::to_string(s.head_dim) + ", state " +
                                std::to_string(s.state) + " (at most 1024))");
}

// One step of head h on a [P, N] state: H = a H + (dt x) B^T.
LIVS_INLINE void ssd_step(float* next, const float* prev, float a, const float* dtx, const float* Bt,
                          int64_t P, int64_t N) {
  for (int64_t p = 0; p < P; ++p)
    for (int64_t n = 0; n < N; ++n) next[p * N + n] = std::fma(a, prev[p * N + n], dtx[p] * Bt[n]);
}

// Sequence b, head h through time from `state` (or zero).
LIVS_CPU_CLONES void ssd_forward_task(float* y, float* checkpoints, const float* xbc, const float* dt,
                                      const float* a_log, const float* D, float* state, int64_t b, int64_t h,
                                      const SsdShape& s, float* H, float* dtx) {
  const int64_t T = s.seq, Hn = s.heads, P = s.head_dim, N = s.state, I = s.inner(), W = s.xbc_width();
  const int64_t chunks = scan_chunks(s.seq);
  const float A = -std::exp(a_log[h]);
  float* st = state ? state + (b * Hn + h) * P * N : nullptr;
  if (st)
    std::copy_n(st, P * N, H);
  else
    std::fill_n(H, P * N, 0.0f);
  for (int64_t t = 0; t < T; ++t) {
    if (checkpoints && t % kScanChunk == 0)
      std::copy_n(H, P * N, checkpoints + ((b * chunks + t / kScanChunk) * Hn + h) * P * N);
    const int64_t row = b * T + t;
    const float* x = xbc + row * W + h * P;
    const float* Bt = xbc + row * W + I;
    const float* Ct = Bt + N;
    const float d = dt[row * Hn + h], a = std::exp(d * A);
    for (int64_t p = 0; p < P; ++p) dtx[p] = d * x[p];
    ssd_step(H, H, a, dtx, Bt, P, N);
    float* yt = y + row * I + h * P;
    for (int64_t p = 0; p < P; ++p) {
      float acc = 0.0f;
      for (int64_t n = 0; n < N; ++n) acc = std::fma(Ct[n], H[p * N + n], acc);
      yt[p] = std::fma(D[h], x[p], acc);
    }
  }
  if (st) std::copy_n(H, P * N, st);
}

// With G_t = dL/dH_t = dy_t C_t^T + a_{t+1} G_{t+1} (per head, [P, N]):
//   dC_t[n] += sum_p dy_t[p] H_t[p,n],   dB_t[n] += dt_t sum_p G[p,n] x_t[p],
//   dx_t[p] += D dy_t[p] + dt_t sum_n G[p,n] B_t[n],
//   ddt_t += sum_{p,n} G[p,n] (x_t[p] B_t[n] + A a_t H_{t-1}[p,n]),
//   dA += sum_{p,n} G[p,n] a_t dt_t H_{t-1}[p,n],  da_log = dA A,  dD += sum_p dy_t[p] x_t[p].
// scratch: (kScanChunk + 1) P N recomputed states, P N for G, P for dt x.
LIVS_CPU_CLONES void ssd_backward_task(float* dxbc, float* ddt, float* part, const float* dy,
                                       const float* checkpoints, const float* xbc, const float* dt,
                                       const float* a_log, const float* D, int64_t b, const SsdShape& s,
                                       float* scratch) {
  const int64_t T = s.seq, Hn = s.heads, P = s.head_dim, N = s.state, I = s.inner(), W = s.xbc_width();
  const int64_t chunks = scan_chunks(s.seq), PN = P * N;
  float* hs = scratch;
  float* G = hs + (kScanChunk + 1) * PN;
  float* dtx = G + PN;
  for (int64_t t = 0; t < T; ++t)  // dB and dC are summed over the heads below; dx and ddt are written
    std::fill_n(dxbc + (b * T + t) * W + I, 2 * N, 0.0f);
  for (int64_t h = 0; h < Hn; ++h) {
    const float A = -std::exp(a_log[h]);
    std::fill_n(G, PN, 0.0f);
    float dA = 0.0f, dD = 0.0f;
    for (int64_t c = chunks - 1; c >= 0; --c) {
      const int64_t t0 = c * kScanChunk, len = std::min<int64_t>(kScanChunk, T - t0);
      std::copy_n(checkpoints + ((b * chunks + c) * Hn + h) * PN, PN, hs);
      for (int64_t k = 0; k < len; ++k) {
        const int64_t row = b * T + t0 + k;
        const float* x = xbc + row * W + h * P;
        const float d = dt[row * Hn + h];
        for (int64_t p = 0; p < P; ++p) dtx[p] = d * x[p];
        ssd_step(hs + (k + 1) * PN, hs + k * PN, std::exp(d * A), dtx, xbc + row * W + I, P, N);
      }
      for (int64_t k = len - 1; k >= 0; --k) {
        const int64_t row = b * T + t0 + k;
        const float* x = xbc + row * W + h * P;
        const float* Bt = xbc + row * W + I;
        const float* Ct = Bt + N;
        float* dx = dxbc + row * W + h * P;
        float* dB = dxbc + row * W + I;
        float* dC = dB + N;
        const float* dyt = dy + row * I + h * P;
        const float d = dt[row * Hn + h], a = std::exp(d * A);
        const float* hp = hs + k * PN;
        const float* ht = hp + PN;
        float dd = 0.0f;
        for (int64_t p = 0; p < P; ++p) {
          dD = std::fma(dyt[p], x[p], dD);
          float dxp = D[h] * dyt[p];
          for (int64_t n = 0; n < N; ++n) {
            const float g = std::fma(dyt[p], Ct[n], G[p * N + n]);
            dC[n] = std::fma(dyt[p], ht[p * N + n], dC[n]);
            dB[n] = std::fma(g, d * x[p], dB[n]);
            dxp = std::fma(g, d * Bt[n], dxp);
            dd = std::fma(g, std::fma(A * a, hp[p * N + n], x[p] * Bt[n]), dd);
            dA = std::fma(g, a * d * hp[p * N + n], dA);
            G[p * N + n] = g * a;
          }
          dx[p] = dxp;
        }
        ddt[row * Hn + h] = dd;
      }
    }
    part[h] = dA * A;
    part[Hn + h] = dD;
  }
}

}  // namespace

void CpuBackend::ssd_forward(float* y, float* checkpoints, const float* xbc, const float* dt,
                             const float* a_log, const float* D, float* state, const SsdShape& s) {
  check_shape("ssd_forward", s);
  if (!checkpoints && !state) throw std::invalid_argument("ssd_forward: needs checkpoints or a state");
  const int64_t PN = int64_t(s.head_dim) * s.state;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, int64_t(s.batch) * s.heads), [&](const auto& r) {
    thread_local std::vector<float> scratch;
    scratch.resize(std::max<std::size_t>(scratch.size(), std::size_t(PN + s.head_dim)));
    for (int64_t task = r.begin(); task != r.end(); ++task)
      ssd_forward_task(y, checkpoints, xbc, dt, a_log, D, state, task / s.heads, task % s.heads, s,
                       scratch.data(), scratch.data() + PN);
  });
}

void CpuBackend::ssd_backward(float* dxbc, float* ddt, float* da_log, float* dD, float* partials,
                              const float* dy, const float* checkpoints, const float* xbc, const float* dt,
                              const float* a_log, const float* D, const SsdShape& s) {
  check_shape("ssd_backward", s);
  const int64_t PN = int64_t(s.head_dim) * s.state, Hn = s.heads;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, s.batch), [&](const auto& r) {
    thread_local std::vector<float> scratch;
    scratch.resize(std::max<std::size_t>(scratch.size(), std::size_t((kScanChunk + 2) * PN + s.head_dim)));
    for (int64_t b = r.begin(); b != r.end(); ++b)
      ssd_backward_task(dxbc, ddt, partials + b * 2 * Hn, dy, checkpoints, xbc, dt, a_log, D, b, s,
                        scratch.data());
  });
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t h = 0; h < Hn; ++h) {
      da_log[h] += partials[b * 2 * Hn + h];
      dD[h] += partials[b * 2 * Hn + Hn + h];
    }
}

}  // namespace livs::evaluator
