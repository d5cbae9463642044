// The diagonal scans in fp32: Griffin's RG-LRU and Mamba's selective scan,
// chunked as in Mamba's kernels.
//
// Time is cut into chunks of kScanChunk steps. A thread owns one channel of
// one sequence over a range of chunks: all of them (sequential over time,
// when batch x channels fills the GPU) or one (time-parallel, for long
// sequences at small batch). The time-parallel form runs three passes:
//   1. each chunk scans from a zero state and records its end state and its
//      total log-decay (the product of the decays is exp(A * sum delta));
//   2. one thread per (sequence, channel[, state]) carries the states across
//      the chunks in order: carry_in[c + 1] = exp(log decay_c) carry_in[c] + end_c;
//   3. each chunk rescans from its carry-in, producing the outputs.
// Backward does the same in reverse time for the adjoint.
//
// The selective scan keeps only the state entering each chunk (the
// checkpoints) for backward; its backward recomputes a chunk's states from
// the checkpoint, 16 steps at a time in registers, then runs the adjoint over
// them in reverse. Threads hold a slice of the states in registers (16 in the
// forward, 4 in the backward) and loop over slices when d_state is larger.
// dB and dC (sums over channels) are reduced across the warp's 32 channels
// with shuffles, written per warp and summed over warps in order by a second
// kernel; dA, dD and dlambda (sums over sequences and time) are written per
// (sequence, chunk range) and summed in order: no atomics anywhere.
#include <cuda_runtime.h>

#include <stdexcept>

#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/device_math.cuh"
#include "evaluator/cuda/grid_dependency.cuh"
#include "evaluator/cuda/kernels.hpp"

namespace livs::evaluator::cuda {

namespace {

constexpr float kSqrtFloor = 1e-6f;  // as cpu/scan_math.hpp: bounds d sqrt(v)/dv
constexpr int kThreads = 128;        // channels per block (4 warps)
// Below this many (sequence, channel) threads the scans also split time.
constexpr int64_t kFillThreads = 65536;
constexpr int kForwardSlice = 16;  // states per thread in the selective forward
constexpr int kBackwardSlice = 4;  // ... and backward (the sub-block's states live in registers)
constexpr int kSubBlock = 16;      // backward recomputes this many steps at a time
static_assert(kScanChunk % kSubBlock == 0, "sub-blocks tile a chunk");
constexpr int kSubBlocks = kScanChunk / kSubBlock;

// The selective scan's decay rate A = -exp(a_log) (Mamba's parameterisation)
// of state n of channel ch, d_state N; 0 past the last state (padding lanes).
__device__ inline float decay_rate(const float* a_log, int64_t ch, int64_t n, int64_t N) {
  return n < N ? -expf(a_log[ch * N + n]) : 0.0f;
}

__device__ inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
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

// How a scan is spread over threads: `groups` ranges of `per_group` chunks each.
struct ChunkPlan {
  int64_t chunks = 1, groups = 1, per_group = 1;
  bool split = false;  // time-parallel (one chunk per thread)
};

ChunkPlan plan_chunks(const ScanShape& s) {
  ChunkPlan p;
  p.chunks = scan_chunks(s.seq);
  p.split = p.chunks > 1 && int64_t(s.batch) * s.channels < kFillThreads;
  p.groups = p.split ? p.chunks : 1;
  p.per_group = p.split ? 1 : p.chunks;
  return p;
}

dim3 chunk_grid(const ScanShape& s, int64_t groups) {
  return dim3(unsigned((s.channels + kThreads - 1) / kThreads), unsigned(groups), unsigned(s.batch));
}
unsigned blocks_for(int64_t threads) { return unsigned((threads + kThreads - 1) / kThreads); }

// ---------------------------------------------------------------- RG-LRU

constexpr int kStepsAhead = 8;

struct RglruInputs {
  float ga, gi, u;
};

// Forward over chunks [g * per_group, ...) of (b = blockIdx.z, ch): from
// carry_in [b, chunks, C] when given, else from `state` (first group) or zero.
__global__ void rglru_forward_kernel(float* h, const float* u, const float* gate_a, const float* gate_i,
                                     const float* lambda, float c, float* state, const float* carry_in,
                                     ScanShape s, int64_t chunks, int64_t per_group, bool write_state) {
  await_prior_grids();
  const int64_t C = s.channels, T = s.seq, ch = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (ch >= C) return;
  const int64_t b = blockIdx.z, g = blockIdx.y, c0 = g * per_group;
  const int64_t t_begin = c0 * kScanChunk, t_end = min64(T, (c0 + per_group) * kScanChunk);
  const float sp = softplus(lambda[ch]);
  float carry = carry_in ? carry_in[(b * chunks + c0) * C + ch] : (state ? state[b * C + ch] : 0.0f);
  auto at = [&](int64_t t) { return (b * T + t) * C + ch; };
  walk_steps<kStepsAhead>(
      t_begin, t_end - t_begin, 1,
      [&](int64_t t) {
        return RglruInputs{gate_a[at(t)], gate_i[at(t)], u[at(t)]};
      },
      [&](int64_t t, const RglruInputs& in) {
        const RglruStep st(in.ga, in.gi, sp, c);
        carry = fmaf(st.a, carry, st.m * (st.i * in.u));
        h[at(t)] = carry;
      });
  if (write_state && state) state[b * C + ch] = carry;
}

// Pass 1 of the time-parallel forward: chunk c = blockIdx.y from zero; end
// state to ends [b, chunks, C], the chunk's total log a to log_decay.
__global__ void rglru_chunk_end_kernel(float* ends, float* log_decay, const float* u, const float* gate_a,
                                       const float* gate_i, const float* lambda, float c, ScanShape s,
                                       int64_t chunks) {
  await_prior_grids();
  const int64_t C = s.channels, T = s.seq, ch = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (ch >= C) return;
  const int64_t b = blockIdx.z, k = blockIdx.y, t_end = min64(T, (k + 1) * kScanChunk);
  const float sp = softplus(lambda[ch]);
  float carry = 0.0f, sum_log = 0.0f;
  auto at = [&](int64_t t) { return (b * T + t) * C + ch; };
  walk_steps<kStepsAhead>(
      k * kScanChunk, t_end - k * kScanChunk, 1,
      [&](int64_t t) {
        return RglruInputs{gate_a[at(t)], gate_i[at(t)], u[at(t)]};
      },
      [&](int64_t, const RglruInputs& in) {
        const RglruStep st(in.ga, in.gi, sp, c);
        carry = fmaf(st.a, carry, st.m * (st.i * in.u));
        sum_log += st.log_a;
      });
  ends[(b * chunks + k) * C + ch] = carry;
  log_decay[(b * chunks + k) * C + ch] = sum_log;
}

// Pass 2 (forward and backward alike, `count` values per (b, chunk)): in
// place, `ends` becomes each chunk's carry-in, walking the chunks forward
// (reverse = false) or backward. `init` (may be null) starts the walk and
// receives its end when write_init.
__global__ void carry_across_chunks_kernel(float* ends, const float* log_decay, float* init, int batch,
                                           int64_t chunks, int64_t count, bool reverse, bool write_init) {
  await_prior_grids();
  const int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (idx >= int64_t(batch) * count) return;
  const int64_t b = idx / count, i = idx % count;
  float carry = init ? init[idx] : 0.0f;
  for (int64_t step = 0; step < chunks; ++step) {
    const int64_t k = reverse ? chunks - 1 - step : step;
    float* slot = ends + (b * chunks + k) * count + i;
    const float end = *slot;
    *slot = carry;
    carry = fmaf(expf(log_decay[(b * chunks + k) * count + i]), carry, end);
  }
  if (write_init && init) init[idx] = carry;
}

// Backward over chunks of (b, ch), time reversed; dsp_partials [b, groups, C].
__global__ void rglru_backward_kernel(float* du, float* dgate_a, float* dgate_i, float* dsp_partials,
                                      const float* dh, const float* h, const float* u, const float* gate_a,
                                      const float* gate_i, const float* lambda, float c,
                                      const float* carry_in, ScanShape s, int64_t chunks, int64_t per_group) {
  await_prior_grids();
  const int64_t C = s.channels, T = s.seq, ch = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (ch >= C) return;
  const int64_t b = blockIdx.z, g = blockIdx.y, c0 = g * per_group, c_last = c0 + per_group - 1;
  const int64_t t_begin = c0 * kScanChunk, t_end = min64(T, (c_last + 1) * kScanChunk);
  const float sp = softplus(lambda[ch]);
  float dsp = 0.0f, carry = carry_in ? carry_in[(b * chunks + c_last) * C + ch] : 0.0f;
  struct Inputs {  // and the gradients' current values, which the step adds to
    float ga, gi, u, dh, h_prev, du, dgi, dga;
  };
  auto at = [&](int64_t t) { return (b * T + t) * C + ch; };
  walk_steps<kStepsAhead>(
      t_end - 1, t_end - t_begin, -1,
      [&](int64_t t) {
        const int64_t e = at(t);
        return Inputs{gate_a[e], gate_i[e],  u[e],      dh[e], t > 0 ? h[e - C] : 0.0f,
                      du[e],     dgate_i[e], dgate_a[e]};
      },
      [&](int64_t t, const Inputs& in) {
        const int64_t e = at(t);
        const RglruStep st(in.ga, in.gi, sp, c);
        const float grad = in.dh + carry;
        const float x = st.i * in.u;
        const float dm_dlog_a = -(st.a * st.a) / sqrtf(fmaxf(st.v, kSqrtFloor));
        const float dlog_a = grad * (st.a * in.h_prev + x * dm_dlog_a);
        const float dx = grad * st.m;
        du[e] = in.du + dx * st.i;
        dgate_i[e] = in.dgi + dx * in.u * st.i * (1.0f - st.i);
        dgate_a[e] = in.dga + dlog_a * (-c * sp) * st.r * (1.0f - st.r);
        dsp += dlog_a * (-c * st.r);
        carry = grad * st.a;
      });
  dsp_partials[(b * gridDim.y + g) * C + ch] = dsp;
}

// Pass 1 of the time-parallel backward: chunk k from a zero carry; the carry
// it hands to chunk k - 1 and its total log a.
__global__ void rglru_chunk_carry_kernel(float* ends, float* log_decay, const float* dh, const float* gate_a,
                                         const float* lambda, float c, ScanShape s, int64_t chunks) {
  await_prior_grids();
  const int64_t C = s.channels, T = s.seq, ch = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (ch >= C) return;
  const int64_t b = blockIdx.z, k = blockIdx.y, t_end = min64(T, (k + 1) * kScanChunk);
  const float sp = softplus(lambda[ch]);
  float carry = 0.0f, sum_log = 0.0f;
  auto at = [&](int64_t t) { return (b * T + t) * C + ch; };
  walk_steps<kStepsAhead>(
      t_end - 1, t_end - k * kScanChunk, -1,
      [&](int64_t t) {
        return float2{gate_a[at(t)], dh[at(t)]};
      },
      [&](int64_t, float2 in) {
        const float log_a = -c * sigmoid(in.x) * sp;  // as RglruStep
        carry = (in.y + carry) * expf(log_a);
        sum_log += log_a;
      });
  ends[(b * chunks + k) * C + ch] = carry;
  log_decay[(b * chunks + k) * C + ch] = sum_log;
}

__global__ void rglru_lambda_kernel(float* dlambda, const float* dsp_partials, const float* lambda,
                                    int64_t partial_rows, int64_t C) {
  await_prior_grids();
  const int64_t ch = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (ch >= C) return;
  float dsp = 0.0f;
  for (int64_t r = 0; r < partial_rows; ++r) dsp += dsp_partials[r * C + ch];  // sequences, then chunks
  dlambda[ch] += dsp * sigmoid(lambda[ch]);
}

// ---------------------------------------------------------------- selective scan

// Forward over chunks of (b, ch), kForwardSlice states at a time. The state
// entering chunk k comes from checkpoints[b, k] (from_checkpoints) or from
// `state`/zero, and is written to checkpoints when store_checkpoints. y
// carries the partial sum over states between slices.
__global__ void selective_forward_kernel(float* y, float* checkpoints, const float* u, const float* delta,
                                         const float* a_log, const float* B, const float* C, const float* D,
                                         float* state, ScanShape s, int64_t chunks, int64_t per_group,
                                         bool from_checkpoints, bool store_checkpoints, bool write_state) {
  await_prior_grids();
  const int64_t Ch = s.channels, T = s.seq, N = s.state, ch = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (ch >= Ch) return;
  const int64_t b = blockIdx.z, c0 = blockIdx.y * per_group;
  const int64_t t_begin = c0 * kScanChunk, t_end = min64(T, (c0 + per_group) * kScanChunk);
  for (int64_t n0 = 0; n0 < N; n0 += kForwardSlice) {
    const bool first_slice = n0 == 0, last_slice = n0 + kForwardSlice >= N;
    float A[kForwardSlice], h[kForwardSlice];
#pragma unroll
    for (int k = 0; k < kForwardSlice; ++k) {
      const int64_t n = n0 + k;
      A[k] = decay_rate(a_log, ch, n, N);
      h[k] = 0.0f;
      if (n < N) {
        if (from_checkpoints)
          h[k] = checkpoints[((b * chunks + c0) * Ch + ch) * N + n];
        else if (state)
          h[k] = state[(b * Ch + ch) * N + n];
      }
    }
    for (int64_t t = t_begin; t < t_end; ++t) {
      if (store_checkpoints && t % kScanChunk == 0) {
        float* cp = checkpoints + ((b * chunks + t / kScanChunk) * Ch + ch) * N;
#pragma unroll
        for (int k = 0; k < kForwardSlice; ++k)
          if (n0 + k < N) cp[n0 + k] = h[k];
      }
      const int64_t row = b * T + t, e = row * Ch + ch;
      const float dl = delta[e], du = dl * u[e];
      float acc = first_slice ? 0.0f : y[e];
#pragma unroll
      for (int k = 0; k < kForwardSlice; ++k) {
        const int64_t n = n0 + k;
        if (n < N) {
          h[k] = fmaf(expf(dl * A[k]), h[k], du * B[row * N + n]);
          acc = fmaf(C[row * N + n], h[k], acc);
        }
      }
      y[e] = last_slice ? fmaf(D[ch], u[e], acc) : acc;
    }
    if (write_state && state) {
#pragma unroll
      for (int k = 0; k < kForwardSlice; ++k)
        if (n0 + k < N) state[(b * Ch + ch) * N + n0 + k] = h[k];
    }
  }
}

// Pass 1 of the time-parallel forward: chunk k from zero; end states to
// ends [b, chunks, Ch, N], the chunk's sum of delta to delta_sums [b, chunks, Ch].
__global__ void selective_chunk_end_kernel(float* ends, float* delta_sums, const float* u, const float* delta,
                                           const float* a_log, const float* B, ScanShape s, int64_t chunks) {
  await_prior_grids();
  const int64_t Ch = s.channels, T = s.seq, N = s.state, ch = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (ch >= Ch) return;
  const int64_t b = blockIdx.z, k_chunk = blockIdx.y, t_end = min64(T, (k_chunk + 1) * kScanChunk);
  float* end = ends + ((b * chunks + k_chunk) * Ch + ch) * N;
  for (int64_t n0 = 0; n0 < N; n0 += kForwardSlice) {
    float A[kForwardSlice], h[kForwardSlice];
#pragma unroll
    for (int k = 0; k < kForwardSlice; ++k) {
      A[k] = decay_rate(a_log, ch, n0 + k, N);
      h[k] = 0.0f;
    }
    float sum = 0.0f;
    for (int64_t t = k_chunk * kScanChunk; t < t_end; ++t) {
      const int64_t row = b * T + t, e = row * Ch + ch;
      const float dl = delta[e], du = dl * u[e];
      sum += dl;
#pragma unroll
      for (int k = 0; k < kForwardSlice; ++k)
        if (n0 + k < N) h[k] = fmaf(expf(dl * A[k]), h[k], du * B[row * N + n0 + k]);
    }
#pragma unroll
    for (int k = 0; k < kForwardSlice; ++k)
      if (n0 + k < N) end[n0 + k] = h[k];
    if (n0 == 0) delta_sums[(b * chunks + k_chunk) * Ch + ch] = sum;
  }
}

// The selective scan's pass 2 needs log decay = A * sum delta per state: the
// carry kernel above takes one log-decay per value, so this writes them.
__global__ void selective_log_decay_kernel(float* log_decay, const float* delta_sums, const float* a_log,
                                           int64_t rows, int64_t Ch, int64_t N) {
  await_prior_grids();
  const int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (idx >= rows * Ch * N) return;
  const int64_t n = idx % N, rc = idx / N, ch = rc % Ch;
  log_decay[idx] = decay_rate(a_log, ch, n, N) * delta_sums[rc];
}

// Pass 1 of the time-parallel backward: chunk k's adjoint carry from zero,
// g_t = dy_t C_t + carry, carry = g_t exp(delta_t A), into ends; sum of delta too.
__global__ void selective_chunk_carry_kernel(float* ends, float* delta_sums, const float* dy,
                                             const float* delta, const float* a_log, const float* C,
                                             ScanShape s, int64_t chunks) {
  await_prior_grids();
  const int64_t Ch = s.channels, T = s.seq, N = s.state, ch = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (ch >= Ch) return;
  const int64_t b = blockIdx.z, k_chunk = blockIdx.y, t_end = min64(T, (k_chunk + 1) * kScanChunk);
  float* end = ends + ((b * chunks + k_chunk) * Ch + ch) * N;
  for (int64_t n0 = 0; n0 < N; n0 += kForwardSlice) {
    float A[kForwardSlice], carry[kForwardSlice];
#pragma unroll
    for (int k = 0; k < kForwardSlice; ++k) {
      A[k] = decay_rate(a_log, ch, n0 + k, N);
      carry[k] = 0.0f;
    }
    float sum = 0.0f;
    for (int64_t t = t_end - 1; t >= k_chunk * kScanChunk; --t) {
      const int64_t row = b * T + t, e = row * Ch + ch;
      const float dl = delta[e], dyt = dy[e];
      sum += dl;
#pragma unroll
      for (int k = 0; k < kForwardSlice; ++k)
        if (n0 + k < N) carry[k] = fmaf(dyt, C[row * N + n0 + k], carry[k]) * expf(dl * A[k]);
    }
#pragma unroll
    for (int k = 0; k < kForwardSlice; ++k)
      if (n0 + k < N) end[n0 + k] = carry[k];
    if (n0 == 0) delta_sums[(b * chunks + k_chunk) * Ch + ch] = sum;
  }
}

// Sums 2 * kBackwardSlice values over the warp's 32 lanes in 9 shuffles (a
// transposing butterfly: each step halves the values a lane keeps); lane l
// with l % 4 == 0 ends with value index (l / 4) summed over all lanes.
__device__ inline float warp_sum_eight(float (&v)[2 * kBackwardSlice], int lane) {
  static_assert(2 * kBackwardSlice == 8, "the butterfly below reduces eight values");
  const bool b16 = lane & 16, b8 = lane & 8, b4 = lane & 4;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float keep = b16 ? v[i + 4] : v[i], send = b16 ? v[i] : v[i + 4];
    v[i] = keep + __shfl_xor_sync(kFullMask, send, 16);
  }
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const float keep = b8 ? v[i + 2] : v[i], send = b8 ? v[i] : v[i + 2];
    v[i] = keep + __shfl_xor_sync(kFullMask, send, 8);
  }
  float x = (b4 ? v[1] : v[0]) + __shfl_xor_sync(kFullMask, b4 ? v[0] : v[1], 4);
  x += __shfl_xor_sync(kFullMask, x, 2);
  x += __shfl_xor_sync(kFullMask, x, 1);
  return x;
}

// Backward over chunks of (b, ch), kBackwardSlice states at a time, time
// reversed. Each chunk's states are recomputed from its checkpoint: first the
// states entering its kSubBlocks sub-blocks, then each sub-block's kSubBlock
// states (kept in shared memory), walked in reverse with
//   g_t = dy_t C_t + carry, carry = g_t exp(delta_t A),
//   dC_t += dy_t h_t, dB_t += g delta_t u_t, ddelta_t += g (h_{t-1} exp(delta_t A) A + B_t u_t),
//   du_t += dy_t D + g delta_t B_t, dA += g h_{t-1} exp(delta_t A) delta_t.
// dB/dC per warp go to bc_partials [2, rows, warps, N]; dA * A and dD per
// (b, group) to param_partials [b, groups, Ch * (N + 1)]. Every lane runs
// (lanes past the channels with zeros) so that the shuffles see a full warp.
__global__ void selective_backward_kernel(float* du, float* ddelta, float* bc_partials, float* param_partials,
                                          const float* dy, const float* checkpoints, const float* carry_in,
                                          const float* u, const float* delta, const float* a_log,
                                          const float* B, const float* C, const float* D, ScanShape s,
                                          int64_t chunks, int64_t per_group) {
  await_prior_grids();
  const int64_t Ch = s.channels, T = s.seq, N = s.state,
                ch_raw = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const bool valid = ch_raw < Ch;
  const int64_t ch = valid ? ch_raw : Ch - 1;  // lanes past the end read a real channel and contribute zero
  const int lane = threadIdx.x % kWarpSize;
  const int64_t warps = (Ch + kWarpSize - 1) / kWarpSize, warp = ch_raw / kWarpSize;
  const int64_t b = blockIdx.z, g = blockIdx.y, c0 = g * per_group, c_last = c0 + per_group - 1;
  const int64_t rows = int64_t(s.batch) * T;
  float* db_part = bc_partials;
  float* dc_part = bc_partials + rows * warps * N;
  float* part = param_partials + (b * gridDim.y + g) * Ch * (N + 1);
  const float d_skip = D[ch];
  float dd_sum = 0.0f;
  // Each thread's recomputed states, indexed at run time (registers cannot
  // be): rows [0, kSubBlocks) the states entering the sub-blocks, row
  // kSubBlocks + i the state after step i of the current sub-block. Only the
  // owning thread reads its column, so no barrier is needed.
  __shared__ float saved[kSubBlocks + kSubBlock][kBackwardSlice][kThreads];
  const int tid = threadIdx.x;
  for (int64_t n0 = 0; n0 < N; n0 += kBackwardSlice) {
    const bool first_slice = n0 == 0;
    float A[kBackwardSlice], carry[kBackwardSlice], dA[kBackwardSlice];
#pragma unroll
    for (int k = 0; k < kBackwardSlice; ++k) {
      const int64_t n = n0 + k;
      A[k] = decay_rate(a_log, ch, n, N);
      carry[k] = (carry_in && valid && n < N) ? carry_in[((b * chunks + c_last) * Ch + ch) * N + n] : 0.0f;
      dA[k] = 0.0f;
    }
    // One forward step of this slice's states, as the forward computes it.
    const auto step = [&](float(&h)[kBackwardSlice], int64_t t) {
      const int64_t row = b * T + t, e = row * Ch + ch;
      const float dl = delta[e], dut = dl * u[e];
#pragma unroll
      for (int k = 0; k < kBackwardSlice; ++k)
        if (n0 + k < N) h[k] = fmaf(expf(dl * A[k]), h[k], dut * B[row * N + n0 + k]);
    };
    for (int64_t chunk = c_last; chunk >= c0; --chunk) {
      const int64_t t0 = chunk * kScanChunk, t_end = min64(T, t0 + kScanChunk);
      // The states entering each sub-block, recomputed from the checkpoint.
      float h[kBackwardSlice];
#pragma unroll
      for (int k = 0; k < kBackwardSlice; ++k)
        h[k] = n0 + k < N ? checkpoints[((b * chunks + chunk) * Ch + ch) * N + n0 + k] : 0.0f;
      for (int j = 0; j < kSubBlocks; ++j) {
#pragma unroll
        for (int k = 0; k < kBackwardSlice; ++k) saved[j][k][tid] = h[k];
        if (j + 1 == kSubBlocks) break;
        for (int64_t t = t0 + j * kSubBlock; t < min64(t_end, t0 + (j + 1) * kSubBlock); ++t) step(h, t);
      }
      for (int j = kSubBlocks - 1; j >= 0; --j) {
        const int64_t ts = t0 + j * kSubBlock;
        if (ts >= t_end) continue;
        const int len = int(min64(kSubBlock, t_end - ts));
#pragma unroll
        for (int k = 0; k < kBackwardSlice; ++k) h[k] = saved[j][k][tid];
        for (int i = 0; i < len; ++i) {  // row kSubBlocks + i: the state after step ts + i
          step(h, ts + i);
#pragma unroll
          for (int k = 0; k < kBackwardSlice; ++k) saved[kSubBlocks + i][k][tid] = h[k];
        }
        for (int i = len - 1; i >= 0; --i) {
          const int64_t t = ts + i, row = b * T + t, e = row * Ch + ch;
          const int prev_row = i == 0 ? j : kSubBlocks + i - 1;
          const float dyt = valid ? dy[e] : 0.0f, ut = u[e], dl = delta[e];
          float ddl = 0.0f, dut = first_slice ? dyt * d_skip : 0.0f;
          if (first_slice) dd_sum += dyt * ut;
          float sums[2 * kBackwardSlice];  // dB terms, then dC terms
#pragma unroll
          for (int k = 0; k < kBackwardSlice; ++k) {
            const int64_t n = n0 + k;
            const float Bn = n < N ? B[row * N + n] : 0.0f, Cn = n < N ? C[row * N + n] : 0.0f;
            const float hp = saved[prev_row][k][tid], ht = saved[kSubBlocks + i][k][tid];
            const float decay = expf(dl * A[k]);
            const float grad = fmaf(dyt, Cn, carry[k]);
            sums[k] = grad * dl * ut;
            sums[kBackwardSlice + k] = dyt * ht;
            ddl += grad * (hp * decay * A[k] + Bn * ut);
            dut += grad * dl * Bn;
            dA[k] += grad * hp * decay * dl;
            carry[k] = grad * decay;
          }
          const float total = warp_sum_eight(sums, lane);
          if (lane % 4 == 0 && warp < warps) {
            const int which = lane / 4, k = which % kBackwardSlice;
            if (n0 + k < N)
              (which < kBackwardSlice ? db_part : dc_part)[(row * warps + warp) * N + n0 + k] = total;
          }
          if (valid) {
            du[e] += dut;
            ddelta[e] += ddl;
          }
        }
      }
    }
    if (valid) {
#pragma unroll
      for (int k = 0; k < kBackwardSlice; ++k)
        if (n0 + k < N) part[ch * N + n0 + k] = dA[k] * A[k];
    }
  }
  if (valid) part[Ch * N + ch] = dd_sum;
}

// dB[row, n] += sum over warps of the dB partials, dC likewise (warps in order).
__global__ void selective_bc_kernel(float* dB, float* dC, const float* bc_partials, int64_t rows,
                                    int64_t warps, int64_t N) {
  await_prior_grids();
  const int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (idx >= rows * N) return;
  const int64_t row = idx / N, n = idx % N;
  const float* db_part = bc_partials + row * warps * N + n;
  const float* dc_part = db_part + rows * warps * N;
  float sb = 0.0f, sc = 0.0f;
  for (int64_t w = 0; w < warps; ++w) {
    sb += db_part[w * N];
    sc += dc_part[w * N];
  }
  dB[idx] += sb;
  dC[idx] += sc;
}

// da_log and dD from the partials [partial_rows, Ch * (N + 1)] (sequences, then chunk groups, in order).
__global__ void selective_params_kernel(float* da_log, float* dD, const float* partials, int64_t partial_rows,
                                        int64_t Ch, int64_t N) {
  await_prior_grids();
  const int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t P = Ch * (N + 1);
  if (idx >= P) return;
  float sum = 0.0f;
  for (int64_t r = 0; r < partial_rows; ++r) sum += partials[r * P + idx];
  if (idx < Ch * N)
    da_log[idx] += sum;
  else
    dD[idx - Ch * N] += sum;
}

}  // namespace

bool scan_splits_time(const ScanShape& s) { return plan_chunks(s).split; }

int64_t rglru_scratch(const ScanShape& s) { return 3 * int64_t(s.batch) * scan_chunks(s.seq) * s.channels; }

void rglru_forward(cudaStream_t stream, float* h, const float* u, const float* gate_a, const float* gate_i,
                   const float* lambda, float c, float* state, const ScanShape& s, float* scratch) {
  if (int64_t(s.batch) * s.channels * s.seq <= 0) return;
  const ChunkPlan p = plan_chunks(s);
  float* carry_in = nullptr;
  if (p.split) {
    float* ends = scratch;
    float* log_decay = scratch + int64_t(s.batch) * p.chunks * s.channels;
    rglru_chunk_end_kernel<<<chunk_grid(s, p.chunks), kThreads, 0, stream>>>(ends, log_decay, u, gate_a,
                                                                             gate_i, lambda, c, s, p.chunks);
    LIVS_CUDA_CHECK_LAUNCH();
    carry_across_chunks_kernel<<<blocks_for(int64_t(s.batch) * s.channels), kThreads, 0, stream>>>(
        ends, log_decay, state, s.batch, p.chunks, s.channels, false, true);
    LIVS_CUDA_CHECK_LAUNCH();
    carry_in = ends;
  }
  rglru_forward_kernel<<<chunk_grid(s, p.groups), kThreads, 0, stream>>>(
      h, u, gate_a, gate_i, lambda, c, state, carry_in, s, p.chunks, p.per_group, !p.split);
  LIVS_CUDA_CHECK_LAUNCH();
}

void rglru_backward(cudaStream_t stream, float* du, float* dgate_a, float* dgate_i, float* dlambda,
                    const float* dh, const float* h, const float* u, const float* gate_a, const float* gate_i,
                    const float* lambda, float c, const ScanShape& s, float* scratch) {
  if (int64_t(s.batch) * s.channels * s.seq <= 0) return;
  const ChunkPlan p = plan_chunks(s);
  const int64_t per_chunk = int64_t(s.batch) * p.chunks * s.channels;
  float* dsp_partials = scratch;  // [b, groups, C]
  float* carry_in = nullptr;
  if (p.split) {
    float* ends = scratch + per_chunk;
    float* log_decay = ends + per_chunk;
    rglru_chunk_carry_kernel<<<chunk_grid(s, p.chunks), kThreads, 0, stream>>>(ends, log_decay, dh, gate_a,
                                                                               lambda, c, s, p.chunks);
    LIVS_CUDA_CHECK_LAUNCH();
    carry_across_chunks_kernel<<<blocks_for(int64_t(s.batch) * s.channels), kThreads, 0, stream>>>(
        ends, log_decay, nullptr, s.batch, p.chunks, s.channels, true, false);
    LIVS_CUDA_CHECK_LAUNCH();
    carry_in = ends;
  }
  rglru_backward_kernel<<<chunk_grid(s, p.groups), kThreads, 0, stream>>>(du, dgate_a, dgate_i, dsp_partials,
                                                                          dh, h, u, gate_a, gate_i, lambda, c,
                                                                          carry_in, s, p.chunks, p.per_group);
  LIVS_CUDA_CHECK_LAUNCH();
  rglru_lambda_kernel<<<blocks_for(s.channels), kThreads, 0, stream>>>(
      dlambda, dsp_partials, lambda, int64_t(s.batch) * p.groups, s.channels);
  LIVS_CUDA_CHECK_LAUNCH();
}

int64_t selective_scan_forward_scratch(const ScanShape& s) {
  const int64_t per_chunk = int64_t(s.batch) * scan_chunks(s.seq) * s.channels;
  return 2 * per_chunk * s.state + per_chunk;  // ends, log decays, delta sums
}

void selective_scan_forward(cudaStream_t stream, float* y, float* checkpoints, const float* u,
                            const float* delta, const float* a_log, const float* B, const float* C,
                            const float* D, float* state, const ScanShape& s, float* scratch) {
  if (!checkpoints && !state)
    throw std::invalid_argument("selective_scan_forward: needs checkpoints or a state");
  if (int64_t(s.batch) * s.channels * s.seq <= 0) return;
  ChunkPlan p = plan_chunks(s);
  if (!checkpoints && p.split) p = {p.chunks, 1, p.chunks, false};  // the carries need somewhere to live
  if (!p.split) {
    selective_forward_kernel<<<chunk_grid(s, 1), kThreads, 0, stream>>>(y, checkpoints, u, delta, a_log, B, C,
                                                                        D, state, s, p.chunks, p.chunks,
                                                                        false, checkpoints != nullptr, true);
    LIVS_CUDA_CHECK_LAUNCH();
    return;
  }
  const int64_t per_chunk = int64_t(s.batch) * p.chunks * s.channels, values = per_chunk * s.state;
  float* log_decay = scratch;
  float* delta_sums = scratch + values;
  selective_chunk_end_kernel<<<chunk_grid(s, p.chunks), kThreads, 0, stream>>>(checkpoints, delta_sums, u,
                                                                               delta, a_log, B, s, p.chunks);
  LIVS_CUDA_CHECK_LAUNCH();
  selective_log_decay_kernel<<<blocks_for(values), kThreads, 0, stream>>>(
      log_decay, delta_sums, a_log, int64_t(s.batch) * p.chunks, s.channels, s.state);
  LIVS_CUDA_CHECK_LAUNCH();
  // The end states sit in the checkpoint slots; pass 2 turns them into each chunk's entering state.
  const int64_t count = int64_t(s.channels) * s.state;
  carry_across_chunks_kernel<<<blocks_for(int64_t(s.batch) * count), kThreads, 0, stream>>>(
      checkpoints, log_decay, state, s.batch, p.chunks, count, false, true);
  LIVS_CUDA_CHECK_LAUNCH();
  selective_forward_kernel<<<chunk_grid(s, p.chunks), kThreads, 0, stream>>>(
      y, checkpoints, u, delta, a_log, B, C, D, nullptr, s, p.chunks, 1, true, false, false);
  LIVS_CUDA_CHECK_LAUNCH();
}

int64_t selective_scan_backward_scratch(const ScanShape& s) {
  const int64_t chunks = scan_chunks(s.seq), rows = int64_t(s.batch) * s.seq, N = s.state;
  const int64_t warps = (s.channels + kWarpSize - 1) / kWarpSize;
  const int64_t per_chunk = int64_t(s.batch) * chunks * s.channels;
  return 2 * rows * warps * N                                // dB, dC per warp
         + int64_t(s.batch) * chunks * s.channels * (N + 1)  // dA, dD per (sequence, chunk group)
         + 2 * per_chunk * N + per_chunk;                    // carries, their log decays, delta sums
}

void selective_scan_backward(cudaStream_t stream, float* du, float* ddelta, float* da_log, float* dB,
                             float* dC, float* dD, const float* dy, const float* checkpoints, const float* u,
                             const float* delta, const float* a_log, const float* B, const float* C,
                             const float* D, const ScanShape& s, float* scratch) {
  if (int64_t(s.batch) * s.channels * s.seq <= 0) return;
  const ChunkPlan p = plan_chunks(s);
  const int64_t rows = int64_t(s.batch) * s.seq, N = s.state,
                warps = (s.channels + kWarpSize - 1) / kWarpSize;
  const int64_t per_chunk = int64_t(s.batch) * p.chunks * s.channels, values = per_chunk * N;
  float* bc_partials = scratch;
  float* param_partials = bc_partials + 2 * rows * warps * N;
  float* carries = param_partials + int64_t(s.batch) * p.chunks * s.channels * (N + 1);
  float* log_decay = carries + values;
  float* delta_sums = log_decay + values;
  const float* carry_in = nullptr;
  if (p.split) {
    selective_chunk_carry_kernel<<<chunk_grid(s, p.chunks), kThreads, 0, stream>>>(
        carries, delta_sums, dy, delta, a_log, C, s, p.chunks);
    LIVS_CUDA_CHECK_LAUNCH();
    selective_log_decay_kernel<<<blocks_for(values), kThreads, 0, stream>>>(
        log_decay, delta_sums, a_log, int64_t(s.batch) * p.chunks, s.channels, N);
    LIVS_CUDA_CHECK_LAUNCH();
    const int64_t count = int64_t(s.channels) * N;
    carry_across_chunks_kernel<<<blocks_for(int64_t(s.batch) * count), kThreads, 0, stream>>>(
        carries, log_decay, nullptr, s.batch, p.chunks, count, true, false);
    LIVS_CUDA_CHECK_LAUNCH();
    carry_in = carries;
  }
  selective_backward_kernel<<<chunk_grid(s, p.groups), kThreads, 0, stream>>>(
      du, ddelta, bc_partials, param_partials, dy, checkpoints, carry_in, u, delta, a_log, B, C, D, s,
      p.chunks, p.per_group);
  LIVS_CUDA_CHECK_LAUNCH();
  selective_bc_kernel<<<blocks_for(rows * N), kThreads, 0, stream>>>(dB, dC, bc_partials, rows, warps, N);
  LIVS_CUDA_CHECK_LAUNCH();
  selective_params_kernel<<<blocks_for(int64_t(s.channels) * (N + 1)), kThreads, 0, stream>>>(
      da_log, dD, param_partials, int64_t(s.batch) * p.groups, s.channels, N);
  LIVS_CUDA_CHECK_LAUNCH();
}

}  // namespace livs::evaluator::cuda
