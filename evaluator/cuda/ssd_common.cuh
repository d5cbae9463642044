#pragma once
// What the SSD kernels share (ssd.cu: fp32 on the CUDA cores; ssd_tc.cu:
// bf16 tensor cores): the shape in 64-bit sizes, and each block's chunk with
// its dt and running log-decay cum in shared memory.
#include <cuda_runtime.h>

#include <cstdint>

#include "evaluator/cuda/kernels.hpp"  // backend.hpp, with nvcc's #554 silenced

namespace livs::evaluator::cuda::ssd {

constexpr int kQ = kScanChunk;  // steps per chunk

struct Dims {
  int64_t batch, T, H, P, N, I, W, chunks;
  explicit Dims(const SsdShape& s)
      : batch(s.batch),
        T(s.seq),
        H(s.heads),
        P(s.head_dim),
        N(s.state),
        I(s.inner()),
        W(s.xbc_width()),
        chunks(scan_chunks(s.seq)) {}
  __host__ __device__ int64_t PN() const { return P * N; }
};

// The block's chunk: b, c, h from the grid (x: sequence and chunk, y: head);
// t0, len; A = -e^(a_log).
struct Chunk {
  int64_t b, c, h, t0;
  int len;
  float A;
};

// Loads the block's chunk and fills dtv (dt of its steps, 0 past len) and
// cum (running sum of dt A; past len it stays at cum_last). Needs at least
// a warp; ends with a barrier.
__device__ inline Chunk load_chunk(float* cum, float* dtv, const float* dt, const float* a_log,
                                   const Dims& d) {
  Chunk k;
  k.b = blockIdx.x / d.chunks;
  k.c = blockIdx.x % d.chunks;
  k.h = blockIdx.y;
  k.t0 = k.c * kQ;
  k.len = int(d.T - k.t0 < kQ ? d.T - k.t0 : kQ);
  k.A = -expf(a_log[k.h]);
  // The first warp: each lane loads kPerLane consecutive steps, sums them in
  // order, and a shuffle scan over the lanes gives each its prefix (one
  // thread walking all kQ steps left the block idle for that long).
  constexpr int kPerLane = kQ / 32;
  static_assert(kQ % 32 == 0, "whole steps per lane");
  if (threadIdx.x < 32) {
    const int lane = int(threadIdx.x);
    float v[kPerLane], total = 0.0f;
#pragma unroll
    for (int u = 0; u < kPerLane; ++u) {
      const int i = lane * kPerLane + u;
      v[u] = i < k.len ? dt[(k.b * d.T + k.t0 + i) * d.H + k.h] : 0.0f;
      dtv[i] = v[u];
      total += v[u] * k.A;
    }
    float through = total;  // inclusive scan of the lanes' totals
#pragma unroll
    for (int offset = 1; offset < 32; offset *= 2) {
      const float other = __shfl_up_sync(0xffffffffu, through, offset);
      if (lane >= offset) through += other;
    }
    float before = __shfl_up_sync(0xffffffffu, through, 1);
    if (lane == 0) before = 0.0f;
#pragma unroll
    for (int u = 0; u < kPerLane; ++u) {
      before += v[u] * k.A;  // past len dt is 0: cum stays at cum_last
      cum[lane * kPerLane + u] = before;
    }
  }
  __syncthreads();
  return k;
}

// The chunk's decay gradient in the closed form of ssd.cu's backward, by the
// block's first warp (lane l holds steps kPerLane l ..): on entry dcum[t]
// holds sum_{i >= t, j < t} T1(i, j), t2[t] and t4[t] the per-step terms T2
// and T4, d_sum[t] = dy_t . x_t; t3 = T3 (the same in every lane). On exit
// dcum[t] = dl_t and partials[0], partials[1] hold the block's dA and dD. The
// prefix and suffix sums are shuffle scans in double (one thread walking the
// steps three times left the block idle a sixth of its time).
__device__ inline void chunk_decay_gradient(float* dcum, const float* t2, const float* t4, const float* d_sum,
                                            const float* dtv, double t3, int len, float* partials) {
  constexpr int kPerLane = kQ / 32;
  const int lane = int(threadIdx.x) % 32, first = lane * kPerLane;
  double before[kPerLane], after[kPerLane], t4_total = 0.0, t2_total = 0.0;
#pragma unroll
  for (int u = 0; u < kPerLane;
       ++u) {  // within the lane: before = sum_{j < t} T4(j), after = sum_{i >= t} T2(i)
    before[u] = t4_total;
    t4_total += first + u < len ? t4[first + u] : 0.0;
  }
#pragma unroll
  for (int u = kPerLane - 1; u >= 0; --u) {
    t2_total += first + u < len ? t2[first + u] : 0.0;
    after[u] = t2_total;
  }
  double t4_through = t4_total, t2_from = t2_total;  // inclusive scans over the lanes, forward and back
#pragma unroll
  for (int offset = 1; offset < 32; offset *= 2) {
    const double up = __shfl_up_sync(0xffffffffu, t4_through, offset),
                 down = __shfl_down_sync(0xffffffffu, t2_from, offset);
    if (lane >= offset) t4_through += up;
    if (lane + offset < 32) t2_from += down;
  }
  double t4_before = __shfl_up_sync(0xffffffffu, t4_through, 1),
         t2_after = __shfl_down_sync(0xffffffffu, t2_from, 1);
  if (lane == 0) t4_before = 0.0;
  if (lane == 31) t2_after = 0.0;
  double da = 0.0, dd = 0.0;
#pragma unroll
  for (int u = 0; u < kPerLane; ++u) {
    const int t = first + u;
    if (t >= len) continue;
    const double dl = dcum[t] + (t2_after + after[u]) + t3 + (t4_before + before[u]);
    dcum[t] = float(dl);
    da += dtv[t] * dl;
    dd += d_sum[t];
  }
  for (int offset = 16; offset > 0; offset /= 2) {
    da += __shfl_xor_sync(0xffffffffu, da, offset);
    dd += __shfl_xor_sync(0xffffffffu, dd, offset);
  }
  if (lane == 0) {
    partials[0] = float(da);
    partials[1] = float(dd);
  }
}

}  // namespace livs::evaluator::cuda::ssd
