// Depthwise causal convolution over [batch, seq, channels]:
//   y[b,t,c] = bias[c] + sum_j w[c,j] x[b, t-(k-1)+j, c],
// history before t = 0 from the decode state (or zero). Each output sums the
// bias first, then j = 0..k-1 with fmaf, as the CPU backend does.
#include <type_traits>

#include "evaluator/cuda/column_sums.cuh"
#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/device_math.cuh"
#include "evaluator/cuda/grid_dependency.cuh"
#include "evaluator/cuda/kernels.hpp"

namespace livs::evaluator::cuda {

namespace {

// The short kernels run a block per row (b, t), threads across channels:
// a thread per element with 64-bit divisions for its (b, t, c) spent more
// time on index arithmetic than on its k loads.
__global__ void causal_conv_forward_kernel(float* y, const float* x, const float* w, const float* bias,
                                           const float* state, ConvShape s) {
  await_prior_grids();
  const int64_t C = s.channels, row = blockIdx.x;
  const int k = s.kernel, hist = k - 1, t = int(row % s.seq);
  const int64_t b = row / s.seq;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    float acc = bias ? bias[c] : 0.0f;
    for (int j = 0; j < k; ++j) {
      const int src = t - hist + j;
      if (src >= 0)
        acc = fmaf(w[c * k + j], x[(row - hist + j) * C + c], acc);
      else if (state)
        acc = fmaf(w[c * k + j], state[(b * hist + hist + src) * C + c], acc);
    }
    y[row * C + c] = acc;
  }
}

// Long kernels (hyena's k = 64) without a decode state: a block owns 32
// channels x kConvTile steps of one sequence and stages the weights
// (transposed, [k][32]) and the inputs it needs ([kConvTile + k - 1][32]) in
// shared memory, so each input is read from global memory once per block
// instead of k times, and a warp reads the weights of 32 channels without a
// stride. Each output keeps the order of the kernels above (bias, then
// j = 0..k-1 with fmaf; taps outside the sequence add w * 0), so the results
// are those kernels' bits. Backward input: the same over dy, read forward in
// time (dx[t] += sum_j w[j] dy[t + k - 1 - j]).
constexpr int kConvTile = 64, kConvChannels = 32, kConvRows = 8, kConvTiledMaxKernel = 128;

template <bool kBackwardInput>
__global__ void __launch_bounds__(kConvChannels* kConvRows)
    causal_conv_tiled_kernel(float* out, const float* in, const float* w, const float* bias, ConvShape s) {
  await_prior_grids();
  extern __shared__ float shared[];
  const int64_t C = s.channels, T = s.seq, k = s.kernel;
  float* w_s = shared;                       // [k][kConvChannels]
  float* in_s = shared + k * kConvChannels;  // [kConvTile + k - 1][kConvChannels]
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t c = int64_t(blockIdx.x) * kConvChannels + tx, t0 = int64_t(blockIdx.y) * kConvTile,
                b = blockIdx.z;
  for (int64_t j = ty; j < k; j += kConvRows) w_s[j * kConvChannels + tx] = c < C ? w[c * k + j] : 0.0f;
  // Forward reads inputs t0-(k-1) .. t0+kConvTile-1; backward dy t0 .. t0+kConvTile+k-2.
  const int64_t first = kBackwardInput ? t0 : t0 - (k - 1);
  for (int64_t r = ty; r < kConvTile + k - 1; r += kConvRows) {
    const int64_t t = first + r;
    in_s[r * kConvChannels + tx] = (c < C && t >= 0 && t < T) ? in[(b * T + t) * C + c] : 0.0f;
  }
  __syncthreads();
  if (c >= C) return;
  for (int64_t i = ty; i < kConvTile; i += kConvRows) {
    const int64_t t = t0 + i;
    if (t >= T) break;
    float* o = out + (b * T + t) * C + c;
    if (kBackwardInput) {
      float acc = *o;
      for (int64_t j = 0; j < k; ++j)
        acc = fmaf(w_s[j * kConvChannels + tx], in_s[(i + k - 1 - j) * kConvChannels + tx], acc);
      *o = acc;
    } else {
      float acc = bias ? bias[c] : 0.0f;
      for (int64_t j = 0; j < k; ++j)
        acc = fmaf(w_s[j * kConvChannels + tx], in_s[(i + j) * kConvChannels + tx], acc);
      *o = acc;
    }
  }
}

template <bool kBackwardInput>
void launch_conv_tiled(cudaStream_t stream, float* out, const float* in, const float* w, const float* bias,
                       const ConvShape& s) {
  const std::size_t bytes = sizeof(float) * kConvChannels * (2 * s.kernel + kConvTile - 1);
  const dim3 grid(unsigned((s.channels + kConvChannels - 1) / kConvChannels),
                  unsigned((s.seq + kConvTile - 1) / kConvTile), unsigned(s.batch));
  causal_conv_tiled_kernel<kBackwardInput>
      <<<grid, dim3(kConvChannels, kConvRows), bytes, stream>>>(out, in, w, bias, s);
  LIVS_CUDA_CHECK_LAUNCH();
}

bool conv_tiled(const ConvShape& s) { return s.kernel >= 8 && s.kernel <= kConvTiledMaxKernel; }

// Kernels of at most kShortMax taps: a thread per (channel, kShortRows
// steps of one sequence) keeps a window of kK inputs (forward: x[t-k+1..t];
// backward: dy[t..t+k-1]) in registers and its channel's weights too, so each
// input is read once, not k times, and the weights once per thread (a block
// per row read them for every row). The sums keep the row kernels' order and
// skips (bias first, then j = 0..k-1 with fmaf), so the bits are theirs.
constexpr int kShortMax = 4, kShortRows = 16, kShortThreads = 128;

// A short kernel's thread: its channel c, the rows [t0, t1) of sequence b
// it walks (from blockIdx.y) and the channel's kK weights in registers.
template <int kK>
struct ShortConvTile {
  int64_t C, T, c, b, t0, t1, origin;  // origin: element (b, 0, c)
  float wc[kK];
  __device__ ShortConvTile(const float* w, const ConvShape& s)
      : C(s.channels), T(s.seq), c(blockIdx.x * int64_t(kShortThreads) + threadIdx.x) {
    const int64_t tiles = (T + kShortRows - 1) / kShortRows;
    b = blockIdx.y / tiles;
    t0 = blockIdx.y % tiles * kShortRows;
    t1 = t0 + kShortRows < T ? t0 + kShortRows : T;
    origin = b * T * C + c;
    if (c >= C) return;
#pragma unroll
    for (int j = 0; j < kK; ++j) wc[j] = w[c * kK + j];
  }
  __device__ int64_t at(int64_t t) const { return origin + t * C; }
  // Every row's loads before any row's store (a store may alias the loads for the compiler).
  template <class Load, class Step>
  __device__ void walk(Load load, Step step) const {
    walk_batch<kShortRows>(t0, int(t1 - t0), 1, load, step);
  }
};

// Shifts the window one step: the oldest value out, `newest` in at the end.
template <int kK>
__device__ __forceinline__ void shift_in(float (&window)[kK], float newest) {
#pragma unroll
  for (int j = 0; j < kK - 1; ++j) window[j] = window[j + 1];
  window[kK - 1] = newest;
}

template <int kK>
__global__ void __launch_bounds__(kShortThreads)
    causal_conv_short_forward_kernel(float* y, const float* x, const float* w, const float* bias,
                                     const float* state, ConvShape s) {
  await_prior_grids();
  const ShortConvTile<kK> tile(w, s);
  if (tile.c >= tile.C) return;
  constexpr int hist = kK - 1;
  float window[kK];  // x[t - kK + 1 .. t] while row t is summed
#pragma unroll
  for (int i = 1; i < kK; ++i) {  // window[i] = x[t0 - kK + i] before the first shift
    const int64_t src = tile.t0 - kK + i;
    window[i] = src >= 0 ? x[tile.at(src)]
                : state  ? state[(tile.b * hist + hist + src) * tile.C + tile.c]
                         : 0.0f;
  }
  const float start = bias ? bias[tile.c] : 0.0f;
  tile.walk([&](int64_t t) { return x[tile.at(t)]; },
            [&](int64_t t, float in) {
              shift_in(window, in);
              float acc = start;
#pragma unroll
              for (int j = 0; j < kK; ++j)
                if (t - hist + j >= 0 || state) acc = fmaf(tile.wc[j], window[j], acc);
              y[tile.at(t)] = acc;
            });
}

// dx[b,t,c] (+)= sum_j w[c,j] dy[b, t+(k-1)-j, c], j = 0..k-1 in order (taps
// past the end skipped); kAccumulate: added to dx, else written.
template <int kK, bool kAccumulate>
__global__ void __launch_bounds__(kShortThreads)
    causal_conv_short_backward_input_kernel(float* dx, const float* dy, const float* w, ConvShape s) {
  await_prior_grids();
  const ShortConvTile<kK> tile(w, s);
  if (tile.c >= tile.C) return;
  constexpr int hist = kK - 1;
  const int64_t T = tile.T;
  float window[kK];  // window[i] = dy[t + i] while row t is summed
#pragma unroll
  for (int i = 1; i < kK; ++i) {
    const int64_t src = tile.t0 + i - 1;
    window[i] = src < T ? dy[tile.at(src)] : 0.0f;
  }
  tile.walk(  // (dy[t + k - 1], dx[t]) of each row
      [&](int64_t t) {
        return make_float2(t + hist < T ? dy[tile.at(t + hist)] : 0.0f, kAccumulate ? dx[tile.at(t)] : 0.0f);
      },
      [&](int64_t t, float2 in) {
        shift_in(window, in.x);
        float acc = in.y;
#pragma unroll
        for (int j = 0; j < kK; ++j)
          if (t + hist - j < T) acc = fmaf(tile.wc[j], window[hist - j], acc);
        dx[tile.at(t)] = acc;
      });
}

dim3 short_conv_grid(const ConvShape& s) {
  return dim3(unsigned((s.channels + kShortThreads - 1) / kShortThreads),
              unsigned(int64_t(s.batch) * ((s.seq + kShortRows - 1) / kShortRows)));
}

// f(std::integral_constant<int, k>) for a short kernel (k = 1..kShortMax),
// so each gets its own unrolled instance; false for longer ones.
template <class F>
bool with_short_taps(int k, F f) {
  static_assert(kShortMax == 4, "the cases cover 1..kShortMax");
  switch (k) {
    case 1:
      f(std::integral_constant<int, 1>{});
      return true;
    case 2:
      f(std::integral_constant<int, 2>{});
      return true;
    case 3:
      f(std::integral_constant<int, 3>{});
      return true;
    case 4:
      f(std::integral_constant<int, 4>{});
      return true;
    default:
      return false;
  }
}

// The new history is the last k-1 inputs of [state, x]; one thread per
// (sequence, channel) walks its slots in order, since slot i reads slot i + T.
__global__ void causal_conv_state_kernel(float* state, const float* x, ConvShape s) {
  await_prior_grids();
  const int64_t C = s.channels, T = s.seq, hist = s.kernel - 1;
  const int64_t bc = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (bc >= int64_t(s.batch) * C) return;
  const int64_t b = bc / C, c = bc % C;
  float* st = state + b * hist * C;
  for (int64_t i = 0; i < hist; ++i) {
    const int64_t src = T + i - hist;
    st[i * C + c] = src >= 0 ? x[(b * T + src) * C + c] : st[(i + T) * C + c];
  }
}

// dx[b,s,c] += sum_j w[c,j] dy[b, s+(k-1)-j, c].
// A block per row, as the forward.
__global__ void causal_conv_backward_input_kernel(float* dx, const float* dy, const float* w, ConvShape s) {
  await_prior_grids();
  const int64_t C = s.channels, row = blockIdx.x;
  const int k = s.kernel, hist = k - 1, T = s.seq, t = int(row % T);
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    float acc = dx[row * C + c];
    for (int j = 0; j < k; ++j)
      if (t + hist - j < T) acc = fmaf(w[c * k + j], dy[(row + hist - j) * C + c], acc);
    dx[row * C + c] = acc;
  }
}
unsigned row_threads(int64_t channels) { return unsigned(channels >= 256 ? 256 : (channels + 31) / 32 * 32); }

// dw[c, j] as a column sum over rows (b, t) of dy[b,t,c] x[b, t-(k-1)+j, c].
// Columns are numbered j * C + c, so neighbouring threads read neighbouring
// channels of one row (coalesced); numbered c * k + j, a warp read 32 rows
// of one channel and the weight gradient of a k = 64 convolution took a
// quarter of hyena-like's step. Each column's sum keeps its order either way.
struct ConvWeightTerm {
  const float *dy, *x;
  int64_t C, k, T;
  __device__ float operator()(int64_t row, int64_t col) const {
    const int64_t c = col % C, j = col / C, t = row % T, src = t - (k - 1) + j;
    return src >= 0 ? dy[row * C + c] * x[(row - t + src) * C + c] : 0.0f;
  }
};
// ConvWeightTerm's partials for a short kernel (kK taps) in one pass: a
// thread per channel and row chunk keeps the last kK inputs of its channel in
// registers, so each row's dy and x are read once instead of kK times each
// (the short convolutions' weight gradients were a fifth of the
// linear-transformer's step). Each column still sums its rows in order.
template <int kK>
__global__ void conv_weight_partials_kernel(float* partials, const float* dy, const float* x, int64_t C,
                                            int64_t T, int64_t rows, int64_t chunk_rows) {
  await_prior_grids();
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x, chunk = blockIdx.y;
  if (c >= C) return;
  const int64_t n0 = chunk * chunk_rows, n1 = n0 + chunk_rows < rows ? n0 + chunk_rows : rows;
  // window[j] = x at t - (kK - 1) + j once row t has shifted it in; before
  // row n0, window[1..kK-1] hold the kK - 1 inputs before it in its sequence.
  float window[kK], sum[kK];
  const int64_t t0 = n0 % T;
#pragma unroll
  for (int j = 0; j < kK; ++j) {
    const int64_t src = t0 - kK + j;
    window[j] = j >= 1 && src >= 0 ? x[(n0 - t0 + src) * C + c] : 0.0f;
    sum[j] = 0.0f;
  }
  for (int64_t n = n0, t = t0; n < n1; ++n, t = t + 1 == T ? 0 : t + 1) {
#pragma unroll
    for (int j = 0; j < kK - 1; ++j) window[j] = t == 0 ? 0.0f : window[j + 1];
    window[kK - 1] = x[n * C + c];
    const float g = dy[n * C + c];
#pragma unroll
    for (int j = 0; j < kK; ++j) sum[j] += g * window[j];
  }
#pragma unroll
  for (int j = 0; j < kK; ++j) partials[chunk * C * kK + j * C + c] = sum[j];
}

// dw += the weight gradient of a kK-tap convolution: the one-pass partials,
// then ConvWeightTerm's column-sum finish.
template <int kK>
void short_conv_weight_gradient(cudaStream_t stream, float* dw, float* partials, const float* dy,
                                const float* x, int64_t C, int64_t T, int64_t rows) {
  const int64_t chunks = column_sum_chunks(rows), chunk_rows = (rows + chunks - 1) / chunks;
  conv_weight_partials_kernel<kK><<<dim3(unsigned((C + 127) / 128), unsigned(chunks)), 128, 0, stream>>>(
      partials, dy, x, C, T, rows, chunk_rows);
  LIVS_CUDA_CHECK_LAUNCH();
  column_sums_finish(stream, partials, rows, C * kK, AddToTapWeight{dw, C, kK});
}
struct ConvBiasTerm {
  const float* dy;
  int64_t C;
  __device__ float operator()(int64_t row, int64_t c) const { return dy[row * C + c]; }
};

}  // namespace

void causal_conv_forward(cudaStream_t stream, float* y, const float* x, const float* w, const float* bias,
                         float* state, const ConvShape& s) {
  const int64_t count = int64_t(s.batch) * s.seq * s.channels;
  if (count <= 0) return;
  if (!state && conv_tiled(s)) {
    launch_conv_tiled<false>(stream, y, x, w, bias, s);
    return;
  }
  const bool short_taps = with_short_taps(s.kernel, [&](auto taps) {
    causal_conv_short_forward_kernel<taps.value>
        <<<short_conv_grid(s), kShortThreads, 0, stream>>>(y, x, w, bias, state, s);
    LIVS_CUDA_CHECK_LAUNCH();
  });
  if (!short_taps) {
    causal_conv_forward_kernel<<<unsigned(int64_t(s.batch) * s.seq), row_threads(s.channels), 0, stream>>>(
        y, x, w, bias, state, s);
    LIVS_CUDA_CHECK_LAUNCH();
  }
  if (!state || s.kernel <= 1) return;
  const int64_t sequences = int64_t(s.batch) * s.channels;
  causal_conv_state_kernel<<<unsigned((sequences + 255) / 256), 256, 0, stream>>>(state, x, s);
  LIVS_CUDA_CHECK_LAUNCH();
}

void causal_conv_backward(cudaStream_t stream, float* dx, float* dw, float* dbias, const float* dy,
                          const float* x, const float* w, const ConvShape& s, float* partials,
                          bool accumulate_dx) {
  const int64_t C = s.channels, rows = int64_t(s.batch) * s.seq, count = rows * C;
  if (count <= 0) return;
  const bool short_taps_input = !conv_tiled(s) && with_short_taps(s.kernel, [&](auto taps) {
    if (accumulate_dx)
      causal_conv_short_backward_input_kernel<taps.value, true>
          <<<short_conv_grid(s), kShortThreads, 0, stream>>>(dx, dy, w, s);
    else
      causal_conv_short_backward_input_kernel<taps.value, false>
          <<<short_conv_grid(s), kShortThreads, 0, stream>>>(dx, dy, w, s);
    LIVS_CUDA_CHECK_LAUNCH();
  });
  if (!short_taps_input) {  // the long kernels add: zeroed first when dx is to be written
    if (!accumulate_dx) LIVS_CUDA_CHECK(cudaMemsetAsync(dx, 0, std::size_t(count) * sizeof(float), stream));
    if (conv_tiled(s)) {
      launch_conv_tiled<true>(stream, dx, dy, w, nullptr, s);
    } else {
      causal_conv_backward_input_kernel<<<unsigned(rows), row_threads(C), 0, stream>>>(dx, dy, w, s);
      LIVS_CUDA_CHECK_LAUNCH();
    }
  }
  // The short convolutions' weight gradients in one pass; longer kernels through the general column sum.
  const bool short_taps = with_short_taps(s.kernel, [&](auto taps) {
    short_conv_weight_gradient<taps.value>(stream, dw, partials, dy, x, C, s.seq, rows);
  });
  if (!short_taps)
    column_sums(stream, partials, rows, C * s.kernel, ConvWeightTerm{dy, x, C, s.kernel, s.seq},
                AddToTapWeight{dw, C, s.kernel});
  if (dbias) column_sums(stream, partials, rows, C, ConvBiasTerm{dy, C}, AddScaled{dbias, 1.0f});
}

}  // namespace livs::evaluator::cuda
