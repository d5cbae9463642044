// The diagonal scans in fp32: Griffin's RG-LRU and Mamba's selective scan.
// One thread per (sequence, channel) runs its channel through time, the
// arithmetic of the CPU backend step for step (fmaf where it uses fma). The
// reductions over the batch (dlambda; dA, dD) go through per-sequence
// partials summed in order, and dB/dC (sums over channels) through a second
// kernel with one thread per (token, state): no atomics anywhere.
//
// A chunked parallel scan (as in Mamba's kernels) is the next step for long
// sequences; this form is exact and simple, and parallel over batch x channels.
#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/device_math.cuh"
#include "evaluator/cuda/kernels.hpp"

namespace livs::evaluator::cuda {

namespace {

constexpr float kSqrtFloor = 1e-6f;  // as cpu/scan_math.hpp: bounds d sqrt(v)/dv

__device__ inline float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
__device__ inline float softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

struct RglruStep {
  float r, i, log_a, a, v, m;  // v = 1 - a^2, m = sqrt(v)
  __device__ RglruStep(float ga, float gi, float sp, float c) {
    r = sigmoid(ga);
    i = sigmoid(gi);
    log_a = -c * r * sp;
    a = expf(log_a);
    v = -expm1f(2.0f * log_a);
    m = sqrtf(v);
  }
};

unsigned blocks_for(int64_t threads) { return unsigned((threads + 127) / 128); }

__global__ void rglru_forward_kernel(float* h, const float* u, const float* gate_a, const float* gate_i,
                                     const float* lambda, float c, float* state, ScanShape s) {
  const int64_t C = s.channels, T = s.seq;
  const int64_t bc = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (bc >= int64_t(s.batch) * C) return;
  const int64_t b = bc / C, ch = bc % C;
  const float sp = softplus(lambda[ch]);
  float carry = state ? state[bc] : 0.0f;
  for (int64_t t = 0; t < T; ++t) {
    const int64_t e = (b * T + t) * C + ch;
    const RglruStep st(gate_a[e], gate_i[e], sp, c);
    carry = fmaf(st.a, carry, st.m * (st.i * u[e]));
    h[e] = carry;
  }
  if (state) state[bc] = carry;
}

// dsp_partials[b, ch]: this sequence's dL/dsoftplus(lambda[ch]).
__global__ void rglru_backward_kernel(float* du, float* dgate_a, float* dgate_i, float* dsp_partials,
                                      const float* dh, const float* h, const float* u, const float* gate_a,
                                      const float* gate_i, const float* lambda, float c, ScanShape s) {
  const int64_t C = s.channels, T = s.seq;
  const int64_t bc = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (bc >= int64_t(s.batch) * C) return;
  const int64_t b = bc / C, ch = bc % C;
  const float sp = softplus(lambda[ch]);
  float dsp = 0.0f, carry = 0.0f;
  for (int64_t t = T - 1; t >= 0; --t) {
    const int64_t e = (b * T + t) * C + ch;
    const RglruStep st(gate_a[e], gate_i[e], sp, c);
    const float g = dh[e] + carry;
    const float h_prev = t > 0 ? h[e - C] : 0.0f;
    const float x = st.i * u[e];
    const float dm_dlog_a = -(st.a * st.a) / sqrtf(fmaxf(st.v, kSqrtFloor));
    const float dlog_a = g * (st.a * h_prev + x * dm_dlog_a);
    const float dx = g * st.m;
    du[e] += dx * st.i;
    dgate_i[e] += dx * u[e] * st.i * (1.0f - st.i);
    dgate_a[e] += dlog_a * (-c * sp) * st.r * (1.0f - st.r);
    dsp += dlog_a * (-c * st.r);
    carry = g * st.a;
  }
  dsp_partials[bc] = dsp;
}

__global__ void rglru_lambda_kernel(float* dlambda, const float* dsp_partials, const float* lambda, int batch,
                                    int64_t C) {
  const int64_t ch = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (ch >= C) return;
  float dsp = 0.0f;
  for (int b = 0; b < batch; ++b) dsp += dsp_partials[b * C + ch];
  dlambda[ch] += dsp * sigmoid(lambda[ch]);
}

__global__ void selective_scan_forward_kernel(float* y, float* h_all, const float* u, const float* delta,
                                              const float* a_log, const float* B, const float* C,
                                              const float* D, float* state, ScanShape s) {
  const int64_t Ch = s.channels, T = s.seq, N = s.state;
  const int64_t bc = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (bc >= int64_t(s.batch) * Ch) return;
  const int64_t b = bc / Ch, ch = bc % Ch;
  float* st = state ? state + bc * N : nullptr;
  const float* prev = st;
  for (int64_t t = 0; t < T; ++t) {
    const int64_t e = (b * T + t) * Ch + ch;
    const float* Bt = B + (b * T + t) * N;
    const float* Ct = C + (b * T + t) * N;
    float* ht = h_all ? h_all + e * N : st;
    const float dl = delta[e], du = dl * u[e];
    float acc = 0.0f;
    for (int64_t n = 0; n < N; ++n) {
      const float decay = expf(dl * -expf(a_log[ch * N + n]));
      const float hn = fmaf(decay, prev ? prev[n] : 0.0f, du * Bt[n]);
      ht[n] = hn;
      acc = fmaf(Ct[n], hn, acc);
    }
    y[e] = fmaf(D[ch], u[e], acc);
    prev = ht;
  }
  if (st && h_all && T > 0)
    for (int64_t n = 0; n < N; ++n) st[n] = prev[n];
}

// One thread per (sequence, channel), time reversed. The carry g_{t+1}
// exp(delta_{t+1} A) lives in `carry` [batch, channels, state] (d_state may be
// large); g_t * delta_t * u_t goes to `gbu` [batch, seq, channels, state] for
// the dB kernel. Per-sequence dA * A and dD go to `partials` [batch, Ch*(N+1)].
__global__ void selective_scan_backward_kernel(float* du, float* ddelta, float* partials, float* carry,
                                               float* gbu, const float* dy, const float* h_all,
                                               const float* u, const float* delta, const float* a_log,
                                               const float* B, const float* D, const float* C, ScanShape s) {
  const int64_t Ch = s.channels, T = s.seq, N = s.state, P = Ch * (N + 1);
  const int64_t bc = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (bc >= int64_t(s.batch) * Ch) return;
  const int64_t b = bc / Ch, ch = bc % Ch;
  float* cr = carry + bc * N;
  float* part = partials + b * P;
  for (int64_t n = 0; n < N; ++n) {
    cr[n] = 0.0f;
    part[ch * N + n] = 0.0f;  // dA, turned into dA * A at the end
  }
  float dd_sum = 0.0f;
  for (int64_t t = T - 1; t >= 0; --t) {
    const int64_t e = (b * T + t) * Ch + ch, row = b * T + t;
    const float dyt = dy[e], ut = u[e], dl = delta[e];
    const float* hp = t > 0 ? h_all + (e - Ch) * N : nullptr;
    float ddl = 0.0f, dut = dyt * D[ch];
    dd_sum += dyt * ut;
    for (int64_t n = 0; n < N; ++n) {
      const float A = -expf(a_log[ch * N + n]);
      const float decay = expf(dl * A);
      const float g = fmaf(dyt, C[row * N + n], cr[n]);
      const float h_prev = hp ? hp[n] : 0.0f;
      gbu[e * N + n] = g * dl * ut;
      ddl += g * (h_prev * decay * A + B[row * N + n] * ut);
      dut += g * dl * B[row * N + n];
      part[ch * N + n] += g * h_prev * decay * dl;
      cr[n] = g * decay;
    }
    du[e] += dut;
    ddelta[e] += ddl;
  }
  for (int64_t n = 0; n < N; ++n) part[ch * N + n] *= -expf(a_log[ch * N + n]);
  part[Ch * N + ch] = dd_sum;
}

// dB[row, n] += sum_ch gbu[row, ch, n]; dC[row, n] += sum_ch dy[row, ch] h[row, ch, n] (channels in order).
__global__ void selective_scan_bc_kernel(float* dB, float* dC, const float* gbu, const float* dy,
                                         const float* h_all, int64_t rows, int64_t Ch, int64_t N) {
  const int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (idx >= rows * N) return;
  const int64_t row = idx / N, n = idx % N;
  float sb = 0.0f, sc = 0.0f;
  for (int64_t ch = 0; ch < Ch; ++ch) {
    const int64_t e = row * Ch + ch;
    sb += gbu[e * N + n];
    sc += dy[e] * h_all[e * N + n];
  }
  dB[idx] += sb;
  dC[idx] += sc;
}

__global__ void selective_scan_params_kernel(float* da_log, float* dD, const float* partials, int batch,
                                             int64_t Ch, int64_t N) {
  const int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t P = Ch * (N + 1);
  if (idx >= P) return;
  float sum = 0.0f;
  for (int b = 0; b < batch; ++b) sum += partials[b * P + idx];
  if (idx < Ch * N)
    da_log[idx] += sum;
  else
    dD[idx - Ch * N] += sum;
}

}  // namespace

void rglru_forward(cudaStream_t stream, float* h, const float* u, const float* gate_a, const float* gate_i,
                   const float* lambda, float c, float* state, const ScanShape& s) {
  const int64_t threads = int64_t(s.batch) * s.channels;
  if (threads <= 0) return;
  rglru_forward_kernel<<<blocks_for(threads), 128, 0, stream>>>(h, u, gate_a, gate_i, lambda, c, state, s);
  LIVS_CUDA_CHECK_LAUNCH();
}

void rglru_backward(cudaStream_t stream, float* du, float* dgate_a, float* dgate_i, float* dlambda,
                    const float* dh, const float* h, const float* u, const float* gate_a, const float* gate_i,
                    const float* lambda, float c, const ScanShape& s, float* dsp_partials) {
  const int64_t threads = int64_t(s.batch) * s.channels;
  if (threads <= 0) return;
  rglru_backward_kernel<<<blocks_for(threads), 128, 0, stream>>>(du, dgate_a, dgate_i, dsp_partials, dh, h, u,
                                                                 gate_a, gate_i, lambda, c, s);
  LIVS_CUDA_CHECK_LAUNCH();
  rglru_lambda_kernel<<<blocks_for(s.channels), 128, 0, stream>>>(dlambda, dsp_partials, lambda, s.batch,
                                                                  s.channels);
  LIVS_CUDA_CHECK_LAUNCH();
}

void selective_scan_forward(cudaStream_t stream, float* y, float* h_all, const float* u, const float* delta,
                            const float* a_log, const float* B, const float* C, const float* D, float* state,
                            const ScanShape& s) {
  if (!h_all && !state) throw std::invalid_argument("selective_scan_forward: needs h_all or a state");
  const int64_t threads = int64_t(s.batch) * s.channels;
  if (threads <= 0) return;
  selective_scan_forward_kernel<<<blocks_for(threads), 128, 0, stream>>>(y, h_all, u, delta, a_log, B, C, D,
                                                                         state, s);
  LIVS_CUDA_CHECK_LAUNCH();
}

int64_t selective_scan_scratch(const ScanShape& s) {
  return int64_t(s.batch) * s.channels * s.state + int64_t(s.batch) * s.seq * s.channels * s.state;
}

void selective_scan_backward(cudaStream_t stream, float* du, float* ddelta, float* da_log, float* dB,
                             float* dC, float* dD, float* partials, const float* dy, const float* h_all,
                             const float* u, const float* delta, const float* a_log, const float* B,
                             const float* C, const float* D, const ScanShape& s, float* scratch) {
  const int64_t threads = int64_t(s.batch) * s.channels, N = s.state, rows = int64_t(s.batch) * s.seq;
  if (threads <= 0) return;
  float* carry = scratch;
  float* gbu = scratch + threads * N;
  selective_scan_backward_kernel<<<blocks_for(threads), 128, 0, stream>>>(
      du, ddelta, partials, carry, gbu, dy, h_all, u, delta, a_log, B, D, C, s);
  LIVS_CUDA_CHECK_LAUNCH();
  if (rows * N > 0) {
    selective_scan_bc_kernel<<<blocks_for(rows * N), 128, 0, stream>>>(dB, dC, gbu, dy, h_all, rows,
                                                                       s.channels, N);
    LIVS_CUDA_CHECK_LAUNCH();
  }
  const int64_t P = int64_t(s.channels) * (N + 1);
  selective_scan_params_kernel<<<blocks_for(P), 128, 0, stream>>>(da_log, dD, partials, s.batch, s.channels,
                                                                  N);
  LIVS_CUDA_CHECK_LAUNCH();
}

}  // namespace livs::evaluator::cuda
