// The two diagonal scans, in fp32: Griffin's RG-LRU and Mamba's selective
// scan. Forward: (sequence, channel block) tasks, each running its channels
// through time; the selective scan keeps only the state entering each chunk
// of kScanChunk steps, and its backward recomputes a chunk's states from that
// checkpoint before walking the chunk in reverse (Mamba's kernel does the
// same: memory of batch x chunks instead of batch x seq states). Backward
// runs the recurrence in reverse; every reduction over
// the batch (dlambda; dA and dD) is summed in a fixed order (sequences in
// order inside a channel-block task, or per-sequence partials added in order),
// so the bits do not depend on the number of threads. A decode step is the
// forward with seq = 1 and the state, the same arithmetic as the parallel pass.
//
// Each task body is a LIVS_CPU_CLONES function so that std::fma compiles to
// the instruction on AVX2/AVX-512 machines (a libm call in the baseline
// clone); with -ffp-contract=off every clone gives the same bits.
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "evaluator/cpu/cpu_backend.hpp"
#include "evaluator/cpu/scan_math.hpp"
#include "evaluator/cpu/simd.hpp"

namespace livs::evaluator {

namespace {

constexpr int64_t kChannelBlock = 32;
// The selective scan keeps its per-channel carry on the stack; the genome allows d_state up to 1024.
constexpr int kMaxScanState = 1024;

int64_t channel_blocks(int64_t channels) { return (channels + kChannelBlock - 1) / kChannelBlock; }

// One RG-LRU step's coefficients for gate pre-activations ga, gi and softplus(lambda) sp.
struct RglruStep {
  float r, i, log_a, a, v, m;  // v = 1 - a^2, m = sqrt(v)
  RglruStep(float ga, float gi, float sp, float c) {
    r = cpu::sigmoid(ga);
    i = cpu::sigmoid(gi);
    log_a = -c * r * sp;
    a = std::exp(log_a);
    v = -std::expm1(2.0f * log_a);  // 1 - a^2 without cancellation near a = 1
    m = std::sqrt(v);
  }
};

LIVS_CPU_CLONES void rglru_forward_task(float* h, const float* u, const float* gate_a, const float* gate_i,
                                        const float* lambda, float c, float* state, int64_t b, int64_t c0,
                                        int64_t c1, int64_t T, int64_t C) {
  for (int64_t ch = c0; ch < c1; ++ch) {
    const float sp = cpu::softplus(lambda[ch]);
    float carry = state ? state[b * C + ch] : 0.0f;
    for (int64_t t = 0; t < T; ++t) {
      const int64_t e = (b * T + t) * C + ch;
      const RglruStep st(gate_a[e], gate_i[e], sp, c);
      carry = std::fma(st.a, carry, st.m * (st.i * u[e]));
      h[e] = carry;
    }
    if (state) state[b * C + ch] = carry;
  }
}

// With g_t = dL/dh_t (dh_t plus a_{t+1} g_{t+1}) and x_t = i_t u_t:
//   d log a_t = g_t (a_t h_{t-1} + x_t dm/dlog a),  dm/dlog a = -a^2 / sqrt(max(1 - a^2, floor)),
//   du_t += g_t m_t i_t,  dgate_i += g_t m_t u_t i (1 - i),
//   dgate_a += d log a_t (-c sp) r (1 - r),  dlambda += sum d log a_t (-c r) sigmoid(lambda).
LIVS_CPU_CLONES void rglru_backward_task(float* du, float* dgate_a, float* dgate_i, float* dlambda,
                                         const float* dh, const float* h, const float* u, const float* gate_a,
                                         const float* gate_i, const float* lambda, float c, int64_t batch,
                                         int64_t c0, int64_t c1, int64_t T, int64_t C) {
  for (int64_t ch = c0; ch < c1; ++ch) {
    const float sp = cpu::softplus(lambda[ch]);
    float dsp = 0.0f;  // dL/dsoftplus(lambda), summed over sequences and time in order
    for (int64_t b = 0; b < batch; ++b) {
      float carry = 0.0f;
      for (int64_t t = T - 1; t >= 0; --t) {
        const int64_t e = (b * T + t) * C + ch;
        const RglruStep st(gate_a[e], gate_i[e], sp, c);
        const float g = dh[e] + carry;
        const float h_prev = t > 0 ? h[e - C] : 0.0f;
        const float x = st.i * u[e];
        const float dm_dlog_a = -(st.a * st.a) / std::sqrt(std::max(st.v, cpu::kSqrtFloor));
        const float dlog_a = g * (st.a * h_prev + x * dm_dlog_a);
        const float dx = g * st.m;
        du[e] += dx * st.i;
        dgate_i[e] += dx * u[e] * st.i * (1.0f - st.i);
        dgate_a[e] += dlog_a * (-c * sp) * st.r * (1.0f - st.r);
        dsp += dlog_a * (-c * st.r);
        carry = g * st.a;
      }
    }
    dlambda[ch] += dsp * cpu::sigmoid(lambda[ch]);
  }
}

// Runs channels [c0, c1) of sequence b through time from `state` (or zero),
// writing the state entering each chunk of kScanChunk steps to `checkpoints`
// (when not null) and the last state back to `state` (when not null).
LIVS_CPU_CLONES void scan_forward_task(float* y, float* checkpoints, const float* u, const float* delta,
                                       const float* a_log, const float* B, const float* C, const float* D,
                                       float* state, int64_t b, int64_t c0, int64_t c1, int64_t T, int64_t Ch,
                                       int64_t N) {
  float A[kMaxScanState], h[kMaxScanState];
  const int64_t chunks = scan_chunks(int(T));
  for (int64_t ch = c0; ch < c1; ++ch) {
    for (int64_t n = 0; n < N; ++n) A[n] = -std::exp(a_log[ch * N + n]);
    float* st = state ? state + (b * Ch + ch) * N : nullptr;
    if (st)
      std::copy_n(st, N, h);
    else
      std::fill_n(h, N, 0.0f);
    for (int64_t t = 0; t < T; ++t) {
      if (checkpoints && t % kScanChunk == 0)
        std::copy_n(h, N, checkpoints + ((b * chunks + t / kScanChunk) * Ch + ch) * N);
      const int64_t e = (b * T + t) * Ch + ch;
      const float* Bt = B + (b * T + t) * N;
      const float* Ct = C + (b * T + t) * N;
      const float dl = delta[e], du = dl * u[e];
      float acc = 0.0f;
      for (int64_t n = 0; n < N; ++n) {
        h[n] = std::fma(std::exp(dl * A[n]), h[n], du * Bt[n]);
        acc = std::fma(Ct[n], h[n], acc);
      }
      y[e] = std::fma(D[ch], u[e], acc);
    }
    if (st) std::copy_n(h, N, st);
  }
}

// The states of one chunk, recomputed from its checkpoint with the forward's
// arithmetic (so the same bits as the forward had): rows 0..len of [len + 1, N],
// row 0 the checkpoint (h_{t0 - 1}), row k the state h_{t0 + k - 1}.
LIVS_CPU_CLONES void recompute_chunk(float* hs, const float* checkpoint, const float* A, const float* u,
                                     const float* delta, const float* B, int64_t b, int64_t ch, int64_t t0,
                                     int64_t len, int64_t T, int64_t Ch, int64_t N) {
  std::copy_n(checkpoint, N, hs);
  for (int64_t k = 0; k < len; ++k) {
    const int64_t row = b * T + t0 + k, e = row * Ch + ch;
    const float dl = delta[e], du = dl * u[e];
    const float* Bt = B + row * N;
    const float* prev = hs + k * N;
    float* next = hs + (k + 1) * N;
    for (int64_t n = 0; n < N; ++n) next[n] = std::fma(std::exp(dl * A[n]), prev[n], du * Bt[n]);
  }
}

// Per sequence b, channels in order, chunks and time in reverse, with
// g_t[n] = dL/dh_t[n] = dy_t C_t[n] + exp(delta_{t+1} A) g_{t+1}[n]:
//   dC_t[n] += dy_t h_t[n],  dB_t[n] += g delta_t u_t,
//   ddelta_t += sum_n g (h_{t-1} exp(delta_t A) A + B_t[n] u_t),
//   du_t += dy_t D + sum_n g delta_t B_t[n],
//   dA += g h_{t-1} exp(delta_t A) delta_t (per-sequence partial, summed over b in order later),
//   da_log = dA * A (A = -exp(a_log)).
// Each chunk's states come from its checkpoint (recompute_chunk) into `hs`
// ((kScanChunk + 1) * N floats).
LIVS_CPU_CLONES void scan_backward_task(float* du, float* ddelta, float* dB, float* dC, float* part,
                                        float* hs, const float* dy, const float* checkpoints, const float* u,
                                        const float* delta, const float* a_log, const float* B,
                                        const float* C, const float* D, int64_t b, int64_t T, int64_t Ch,
                                        int64_t N) {
  float A[kMaxScanState], carry[kMaxScanState], dA[kMaxScanState];
  const int64_t chunks = scan_chunks(int(T));
  for (int64_t ch = 0; ch < Ch; ++ch) {
    for (int64_t n = 0; n < N; ++n) {
      A[n] = -std::exp(a_log[ch * N + n]);
      carry[n] = dA[n] = 0.0f;
    }
    float dd_sum = 0.0f;
    for (int64_t c = chunks - 1; c >= 0; --c) {
      const int64_t t0 = c * kScanChunk, len = std::min<int64_t>(kScanChunk, T - t0);
      recompute_chunk(hs, checkpoints + ((b * chunks + c) * Ch + ch) * N, A, u, delta, B, b, ch, t0, len, T,
                      Ch, N);
      for (int64_t k = len - 1; k >= 0; --k) {
        const int64_t row = b * T + t0 + k, e = row * Ch + ch;
        const float dyt = dy[e], ut = u[e], dl = delta[e];
        const float* hp = hs + k * N;
        const float* ht = hp + N;
        const float* Bt = B + row * N;
        const float* Ct = C + row * N;
        float* dBt = dB + row * N;
        float* dCt = dC + row * N;
        float ddl = 0.0f, dut = dyt * D[ch];
        dd_sum += dyt * ut;
        for (int64_t n = 0; n < N; ++n) {
          const float decay = std::exp(dl * A[n]);
          const float g = std::fma(dyt, Ct[n], carry[n]);
          dCt[n] += dyt * ht[n];
          dBt[n] += g * dl * ut;
          ddl += g * (hp[n] * decay * A[n] + Bt[n] * ut);
          dut += g * dl * Bt[n];
          dA[n] += g * hp[n] * decay * dl;
          carry[n] = g * decay;
        }
        du[e] += dut;
        ddelta[e] += ddl;
      }
    }
    for (int64_t n = 0; n < N; ++n) part[ch * N + n] = dA[n] * A[n];
    part[Ch * N + ch] = dd_sum;
  }
}

void check_state_size(const char* kernel, int64_t n) {
  if (n < 1 || n > kMaxScanState)
    throw std::invalid_argument(std::string(kernel) + ": d_state " + std::to_string(n) + " outside [1, " +
                                std::to_string(kMaxScanState) + "]");
}

}  // namespace

void CpuBackend::rglru_forward(float* h, const float* u, const float* gate_a, const float* gate_i,
                               const float* lambda, float c, float* state, const ScanShape& s) {
  const int64_t C = s.channels, T = s.seq, blocks = channel_blocks(C);
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, int64_t(s.batch) * blocks), [&](const auto& r) {
    for (int64_t task = r.begin(); task != r.end(); ++task) {
      const int64_t b = task / blocks, c0 = (task % blocks) * kChannelBlock;
      rglru_forward_task(h, u, gate_a, gate_i, lambda, c, state, b, c0, std::min(C, c0 + kChannelBlock), T,
                         C);
    }
  });
}

void CpuBackend::rglru_backward(float* du, float* dgate_a, float* dgate_i, float* dlambda, const float* dh,
                                const float* h, const float* u, const float* gate_a, const float* gate_i,
                                const float* lambda, float c, const ScanShape& s) {
  const int64_t C = s.channels;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, channel_blocks(C)), [&](const auto& r) {
    for (int64_t blk = r.begin(); blk != r.end(); ++blk) {
      const int64_t c0 = blk * kChannelBlock;
      rglru_backward_task(du, dgate_a, dgate_i, dlambda, dh, h, u, gate_a, gate_i, lambda, c, s.batch, c0,
                          std::min(C, c0 + kChannelBlock), s.seq, C);
    }
  });
}

void CpuBackend::selective_scan_forward(float* y, float* checkpoints, const float* u, const float* delta,
                                        const float* a_log, const float* B, const float* C, const float* D,
                                        float* state, const ScanShape& s) {
  const int64_t Ch = s.channels, blocks = channel_blocks(Ch);
  if (!checkpoints && !state)
    throw std::invalid_argument("selective_scan_forward: needs checkpoints or a state");
  check_state_size("selective_scan_forward", s.state);
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, int64_t(s.batch) * blocks), [&](const auto& r) {
    for (int64_t task = r.begin(); task != r.end(); ++task) {
      const int64_t b = task / blocks, c0 = (task % blocks) * kChannelBlock;
      scan_forward_task(y, checkpoints, u, delta, a_log, B, C, D, state, b, c0,
                        std::min(Ch, c0 + kChannelBlock), s.seq, Ch, s.state);
    }
  });
}

void CpuBackend::selective_scan_backward(float* du, float* ddelta, float* da_log, float* dB, float* dC,
                                         float* dD, float* partials, const float* dy,
                                         const float* checkpoints, const float* u, const float* delta,
                                         const float* a_log, const float* B, const float* C, const float* D,
                                         const ScanShape& s) {
  const int64_t Ch = s.channels, N = s.state, P = Ch * (N + 1);
  check_state_size("selective_scan_backward", N);
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, s.batch), [&](const auto& r) {
    // One chunk's recomputed states per worker thread, grown once and reused.
    thread_local std::vector<float> chunk_states;
    chunk_states.resize(std::max<std::size_t>(chunk_states.size(), std::size_t(kScanChunk + 1) * N));
    for (int64_t b = r.begin(); b != r.end(); ++b)
      scan_backward_task(du, ddelta, dB, dC, partials + b * P, chunk_states.data(), dy, checkpoints, u, delta,
                         a_log, B, C, D, b, s.seq, Ch, N);
  });
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, Ch), [&](const auto& r) {
    for (int64_t ch = r.begin(); ch != r.end(); ++ch)
      for (int64_t b = 0; b < s.batch; ++b) {
        const float* part = partials + b * P;
        for (int64_t n = 0; n < N; ++n) da_log[ch * N + n] += part[ch * N + n];
        dD[ch] += part[Ch * N + ch];
      }
  });
}

}  // namespace livs::evaluator
