// Embedding lookup and its deterministic scatter-add backward.
//
// Backward: a stable radix sort of (token, position) pairs (cub, into the
// caller's scratch) puts the positions of each token next to each other in
// position order; then one block per run of equal tokens adds the run's dout
// rows into the token's dtable row, one column per thread, in position
// order. That is the CPU backend's order, so the sums have its bits, on
// every run, and no atomics are needed. Cost: one pass over dout plus the
// sort of `rows` 32-bit keys, instead of a scan of all tokens per table row.
#include <bit>
#include <cub/device/device_radix_sort.cuh>

#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/device_math.cuh"
#include "evaluator/cuda/grid_dependency.cuh"
#include "evaluator/cuda/kernels.hpp"

namespace livs::evaluator::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kRunThreads = 128;  // threads of a run's block: d 512 is one float4 column each
constexpr int kRowsInFlight = 8;  // dout rows loaded before they are added (memory-level parallelism)
constexpr int kMaxRunBlocks = 4096;

// kQuad: four columns per thread with 16-byte accesses.
template <bool kQuad>
__global__ void __launch_bounds__(kThreads)
    embedding_forward_kernel(float* out, const float* table, const int32_t* tokens, int64_t rows, int64_t d) {
  await_prior_grids();
  const int64_t units = kQuad ? d / 4 : d;
  for (int64_t n = blockIdx.x * int64_t(blockDim.y) + threadIdx.y; n < rows;
       n += int64_t(gridDim.x) * blockDim.y) {
    const float* src = table + int64_t(tokens[n]) * d;
    float* dst = out + n * d;
    for (int64_t c = threadIdx.x; c < units; c += blockDim.x) {
      if constexpr (kQuad)
        store4(dst, c, load4(src, c));
      else
        dst[c] = src[c];
    }
  }
}

// Sort keys: the token, or `vocab` (sorted last, never added) for a token
// outside the table, which the old per-row scan ignored as well.
__global__ void embedding_sort_keys_kernel(uint32_t* keys, int32_t* positions, const int32_t* tokens,
                                           int32_t rows, int32_t vocab) {
  await_prior_grids();
  for (int32_t n = blockIdx.x * blockDim.x + threadIdx.x; n < rows; n += gridDim.x * blockDim.x) {
    const int32_t t = tokens[n];
    keys[n] = t >= 0 && t < vocab ? uint32_t(t) : uint32_t(vocab);
    positions[n] = n;
  }
}

// dst[c] += rows[0][c]; dst[c] += rows[1][c]; ... over the run's positions in
// order, for the columns of this thread (units of four columns when kQuad).
template <bool kQuad>
__device__ inline void add_run(float* dst, const float* dout, const int32_t* positions, int32_t begin,
                               int32_t end, int64_t d) {
  using Value = std::conditional_t<kQuad, float4, float>;
  const int64_t units = kQuad ? d / 4 : d;
  auto load = [&](const float* p, int64_t i) {
    if constexpr (kQuad)
      return load4(p, i);
    else
      return p[i];
  };
  for (int64_t c = threadIdx.x; c < units; c += blockDim.x) {
    Value acc = load(dst, c);
    int32_t j = begin;
    for (; j + kRowsInFlight <= end; j += kRowsInFlight) {
      Value v[kRowsInFlight];
#pragma unroll
      for (int u = 0; u < kRowsInFlight; ++u) v[u] = load(dout + int64_t(positions[j + u]) * d, c);
#pragma unroll
      for (int u = 0; u < kRowsInFlight; ++u) acc += v[u];
    }
    for (; j < end; ++j) acc += load(dout + int64_t(positions[j]) * d, c);
    if constexpr (kQuad)
      store4(dst, c, acc);
    else
      dst[c] = acc;
  }
}

// Blocks stride over the sorted entries; the block whose entry starts a run
// (a token unlike the one before) finds where the run ends and adds it.
template <bool kQuad>
__global__ void __launch_bounds__(kRunThreads)
    embedding_backward_runs_kernel(float* dtable, const float* dout, const uint32_t* keys,
                                   const int32_t* positions, int32_t rows, int64_t d, uint32_t vocab) {
  await_prior_grids();
  __shared__ int32_t run_end;
  for (int32_t i = blockIdx.x; i < rows; i += gridDim.x) {
    const uint32_t key = keys[i];
    if (key >= vocab || (i > 0 && keys[i - 1] == key)) continue;  // the same for the whole block
    if (threadIdx.x == 0) run_end = rows;
    __syncthreads();
    for (int32_t j0 = i + 1; j0 < rows; j0 += blockDim.x) {
      const int32_t j = j0 + int32_t(threadIdx.x);
      const bool other = j < rows && keys[j] != key;
      if (other) atomicMin(&run_end, j);  // the first other key: the same result in any order
      if (__syncthreads_or(other)) break;
    }
    add_run<kQuad>(dtable + int64_t(key) * d, dout, positions, i, run_end, d);
    __syncthreads();  // run_end is reset for the next run
  }
}

int sort_end_bit(int64_t vocab) { return std::bit_width(uint64_t(vocab)); }  // keys go up to vocab

// Scratch layout: keys in, keys out, positions in, positions out (rows each,
// 256-byte aligned), then cub's temporary storage.
std::size_t aligned_bytes(int64_t rows) { return (std::size_t(rows) * 4 + 255) / 256 * 256; }

std::size_t cub_temp_bytes(int64_t rows, int64_t vocab) {
  std::size_t bytes = 0;
  LIVS_CUDA_CHECK(
      cub::DeviceRadixSort::SortPairs(nullptr, bytes, static_cast<const uint32_t*>(nullptr),
                                      static_cast<uint32_t*>(nullptr), static_cast<const int32_t*>(nullptr),
                                      static_cast<int32_t*>(nullptr), int(rows), 0, sort_end_bit(vocab)));
  return bytes;
}

}  // namespace

void embedding_forward(cudaStream_t stream, Matrix out, ConstMatrix table, const int32_t* tokens) {
  if (out.rows <= 0 || out.cols <= 0) return;
  const int64_t d = out.cols;
  const bool quad = d % 4 == 0 && aligned16(out.data, table.data);
  const int64_t units = quad ? d / 4 : d;
  const int tx = int(std::min<int64_t>(kThreads, (units + kWarpSize - 1) / kWarpSize * kWarpSize));
  const dim3 block(unsigned(tx), unsigned(kThreads / tx));
  const unsigned blocks =
      unsigned(std::clamp<int64_t>((out.rows + block.y - 1) / block.y, 1, int64_t(1) << 20));
  if (quad)
    embedding_forward_kernel<true><<<blocks, block, 0, stream>>>(out.data, table.data, tokens, out.rows, d);
  else
    embedding_forward_kernel<false><<<blocks, block, 0, stream>>>(out.data, table.data, tokens, out.rows, d);
  LIVS_CUDA_CHECK_LAUNCH();
}

std::size_t embedding_backward_scratch_bytes(int64_t rows, int64_t vocab) {
  if (rows <= 0) return 0;
  if (rows > INT32_MAX || vocab >= INT32_MAX)
    throw std::invalid_argument("embedding backward: too many tokens");
  return 4 * aligned_bytes(rows) + cub_temp_bytes(rows, vocab);
}

void embedding_backward(cudaStream_t stream, Matrix dtable, ConstMatrix dout, const int32_t* tokens,
                        void* scratch, std::size_t scratch_bytes) {
  if (dout.rows <= 0 || dtable.rows <= 0 || dout.cols <= 0) return;
  const int64_t rows = dout.rows, d = dout.cols, vocab = dtable.rows;
  if (scratch_bytes < embedding_backward_scratch_bytes(rows, vocab))
    throw std::invalid_argument("embedding backward: scratch too small");
  auto* bytes = static_cast<char*>(scratch);
  const std::size_t array = aligned_bytes(rows);
  auto* keys_in = reinterpret_cast<uint32_t*>(bytes);
  auto* keys_out = reinterpret_cast<uint32_t*>(bytes + array);
  auto* positions_in = reinterpret_cast<int32_t*>(bytes + 2 * array);
  auto* positions_out = reinterpret_cast<int32_t*>(bytes + 3 * array);
  std::size_t temp_bytes = scratch_bytes - 4 * array;

  embedding_sort_keys_kernel<<<grid_for(rows), kThreads, 0, stream>>>(keys_in, positions_in, tokens,
                                                                      int32_t(rows), int32_t(vocab));
  LIVS_CUDA_CHECK_LAUNCH();
  LIVS_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(bytes + 4 * array, temp_bytes, keys_in, keys_out,
                                                  positions_in, positions_out, int(rows), 0,
                                                  sort_end_bit(vocab), stream));
  const bool quad = d % 4 == 0 && aligned16(dtable.data, dout.data);
  const unsigned blocks = unsigned(std::min<int64_t>(rows, kMaxRunBlocks));
  if (quad)
    embedding_backward_runs_kernel<true><<<blocks, kRunThreads, 0, stream>>>(
        dtable.data, dout.data, keys_out, positions_out, int32_t(rows), d, uint32_t(vocab));
  else
    embedding_backward_runs_kernel<false><<<blocks, kRunThreads, 0, stream>>>(
        dtable.data, dout.data, keys_out, positions_out, int32_t(rows), d, uint32_t(vocab));
  LIVS_CUDA_CHECK_LAUNCH();
}

}  // namespace livs::evaluator::cuda
