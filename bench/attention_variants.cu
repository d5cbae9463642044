// bench/attention_variants: the tuning harness of the tensor-core attention
// (evaluator/cuda/attention_tc_*.cu). It times template configurations of
// each kernel (warps per block, m-tiles per warp, blocks per multiprocessor,
// staging, rows of the other side's tiles) at the MFU shape of
// docs/benchmarks.md (B 16, T 1024, d 512 as 16 x 32 and 8 x 64; --shape
// B,T,d for another, e.g. 32,512,256 for the d 256 training rows) with CUDA
// events (median of --repeats), and compares every variant's outputs with the
// production launch on that shape and on four edge shapes (GQA, sliding
// windows, lengths off every tile size). The kernels promise the same
// operations in the same order for every configuration, so a correct variant
// prints "same" (equal bits); anything else prints its largest relative
// difference. The first line of each list is the production configuration;
// to try another, add a line to the lists in run<>().
//
//   attention_variants [--repeats 20] [--shape 16,1024,512]
//
// The kernels' sources are included (their templates live in anonymous
// namespaces), so this program links the CUDA runtime only.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common/rng.hpp"
#include "evaluator/cuda/attention_tc_backward.cu"
#include "evaluator/cuda/attention_tc_forward.cu"

using namespace livs::evaluator;
using namespace livs::evaluator::cuda;

namespace {

// A device array of random normal values (or zeros), freed on destruction.
struct DeviceBuffer {
  float* data = nullptr;
  std::size_t count = 0;
  DeviceBuffer(std::size_t n, uint64_t seed) : count(n) {
    livs::Rng rng(seed);
    std::vector<float> host(n);
    for (float& x : host) x = float(rng.normal());
    LIVS_CUDA_CHECK(cudaMalloc(&data, std::max<std::size_t>(n, 1) * sizeof(float)));
    LIVS_CUDA_CHECK(cudaMemcpy(data, host.data(), n * sizeof(float), cudaMemcpyHostToDevice));
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { (void)cudaFree(data); }
  std::vector<float> download() const {
    std::vector<float> host(count);
    LIVS_CUDA_CHECK(cudaMemcpy(host.data(), data, count * sizeof(float), cudaMemcpyDeviceToHost));
    return host;
  }
  void zero() { LIVS_CUDA_CHECK(cudaMemset(data, 0, count * sizeof(float))); }
};

// Median milliseconds of `repeats` runs after 3 untimed ones, by CUDA events.
template <class F>
double median_ms(int repeats, F&& run) {
  cudaEvent_t start, stop;
  LIVS_CUDA_CHECK(cudaEventCreate(&start));
  LIVS_CUDA_CHECK(cudaEventCreate(&stop));
  for (int i = 0; i < 3; ++i) run();
  std::vector<double> ms;
  for (int i = 0; i < repeats; ++i) {
    LIVS_CUDA_CHECK(cudaEventRecord(start));
    run();
    LIVS_CUDA_CHECK(cudaEventRecord(stop));
    LIVS_CUDA_CHECK(cudaEventSynchronize(stop));
    float t = 0.0f;
    LIVS_CUDA_CHECK(cudaEventElapsedTime(&t, start, stop));
    ms.push_back(t);
  }
  LIVS_CUDA_CHECK(cudaGetLastError());
  (void)cudaEventDestroy(start);
  (void)cudaEventDestroy(stop);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// Largest |a - b| over the largest |b|; infinite where one is NaN and the other not.
double max_relative_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double worst = 0.0, scale = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) != std::isnan(b[i])) return INFINITY;
    worst = std::max(worst, double(std::fabs(a[i] - b[i])));
    scale = std::max(scale, double(std::fabs(b[i])));
  }
  return worst / (scale > 0.0 ? scale : 1.0);
}

AttentionShape make_shape(int batch, int seq, int heads, int kv_heads, int head_dim, int window) {
  AttentionShape s{};
  s.batch = batch;
  s.seq = seq;
  s.heads = heads;
  s.kv_heads = kv_heads;
  s.head_dim = head_dim;
  s.window = window;
  s.scale = float(1.0 / std::sqrt(double(head_dim)));
  return s;
}

// One shape's inputs, the production launch's outputs (the reference every
// variant is compared with) and the backward's scratch, which after the
// production backward holds the bf16 copies and delta the dk/dv and dq
// variants read.
struct Problem {
  AttentionShape s;
  DeviceBuffer q, k, v, dout, out, lse, dq, dk, dv;
  void* scratch = nullptr;
  std::vector<float> want_out, want_lse, want_dq, want_dk, want_dv;

  Problem(const AttentionShape& shape, uint64_t seed)
      : s(shape),
        q(q_count(), livs::derive_seed(seed, "q")),
        k(kv_count(), livs::derive_seed(seed, "k")),
        v(kv_count(), livs::derive_seed(seed, "v")),
        dout(q_count(), livs::derive_seed(seed, "dout")),
        out(q_count(), 0),
        lse(std::size_t(s.batch) * s.heads * s.seq, 0),
        dq(q_count(), 0),
        dk(kv_count(), 0),
        dv(kv_count(), 0) {
    LIVS_CUDA_CHECK(cudaMalloc(&scratch, attention_tc_backward_scratch_bytes(s)));
    forward();
    want_out = out.download();
    want_lse = lse.download();
    backward();
    want_dq = dq.download();
    want_dk = dk.download();
    want_dv = dv.download();
  }
  Problem(const Problem&) = delete;
  Problem& operator=(const Problem&) = delete;
  ~Problem() { (void)cudaFree(scratch); }

  // The production forward: out and lse as the reference and the backward
  // variants want them (a forward variant may leave other bits behind).
  void forward() { attention_tc_forward(nullptr, out.data, nullptr, lse.data, q.data, k.data, v.data, s); }
  std::size_t q_count() const { return std::size_t(s.batch) * s.seq * s.heads * s.head_dim; }
  std::size_t kv_count() const { return std::size_t(s.batch) * s.seq * s.kv_heads * s.head_dim; }
  void backward() {  // written, as the model calls it (no zeroing)
    attention_tc_backward(nullptr, dq.data, dk.data, dv.data, dout.data, q.data, k.data, v.data, out.data,
                          lse.data, scratch, s, /*accumulate=*/false, nullptr);
  }
  BackwardScratch inputs16() const { return carve(scratch, s); }
};

// The dk/dv and dq kernels alone, as launch_backward launches them.
template <int kHd, int kWarps, int kM, int kMinBlocks, int kOther>
void launch_dkdv(Problem& p) {
  constexpr int kKeys = kWarps * kM * kMmaRows;
  auto kernel = attention_tc_dkdv_kernel<kHd, kWarps, kM, kMinBlocks, kOther>;
  const std::size_t bytes =
      sizeof(__nv_bfloat16) * stride<kHd>() * (2 * kKeys + 4 * kOther) + sizeof(float) * 4 * kOther;
  allow_shared_memory(kernel, bytes);
  const BackwardScratch in = p.inputs16();
  const dim3 grid(unsigned((p.s.seq + kKeys - 1) / kKeys), unsigned(p.s.kv_heads), unsigned(p.s.batch));
  kernel<<<grid, kWarps * 32, bytes>>>(p.dk.data, p.dv.data, nullptr, in.k, in.v, in.dout, in.q, p.k.data,
                                       p.v.data, p.lse.data, in.delta, p.s, /*accumulate=*/false);
  LIVS_CUDA_CHECK_LAUNCH();
}
template <int kHd, int kWarps, int kM, int kMinBlocks, int kOther>
void launch_dq(Problem& p) {
  constexpr int kRows = kWarps * kM * kMmaRows;
  auto kernel = attention_tc_dq_kernel<kHd, kWarps, kM, kMinBlocks, kOther>;
  const std::size_t bytes = sizeof(__nv_bfloat16) * stride<kHd>() * (2 * kRows + 4 * kOther);
  allow_shared_memory(kernel, bytes);
  const BackwardScratch in = p.inputs16();
  const dim3 grid(unsigned((p.s.seq + kRows - 1) / kRows), unsigned(p.s.heads), unsigned(p.s.batch));
  kernel<<<grid, kWarps * 32, bytes>>>(p.dq.data, in.dout, in.q, in.k, in.v, p.lse.data, in.delta, p.s,
                                       /*accumulate=*/false);
  LIVS_CUDA_CHECK_LAUNCH();
}

std::string verdict(double difference) {
  if (difference == 0.0) return "same";
  char text[32];
  std::snprintf(text, sizeof text, "DIFFERS %.1e", difference);
  return text;
}

// Every variant of one head_dim: timed on the MFU shape, compared everywhere.
template <int kHd>
void run(int batch, int seq, int heads, int repeats) {
  Problem mfu(make_shape(batch, seq, heads, heads, kHd, 0), 1);
  std::vector<std::unique_ptr<Problem>> problems;
  for (const AttentionShape& s : {make_shape(2, 200, 8, 2, kHd, 100), make_shape(1, 37, 4, 1, kHd, 0),
                                  make_shape(3, 129, 4, 4, kHd, 16), make_shape(1, 256, 2, 2, kHd, 64)})
    problems.push_back(std::make_unique<Problem>(s, problems.size() + 11));
  std::vector<Problem*> all{&mfu};
  for (auto& p : problems) all.push_back(p.get());

  double pairs = 0.0;  // (query, key) pairs the MFU shape computes
  for (int i = 0; i < mfu.s.seq; ++i) pairs += i + 1;
  const double forward_flops = 4.0 * mfu.s.batch * heads * kHd * pairs;
  std::printf("--- B%d T%d H%d hd%d (variant: warps, m-tiles, blocks/SM[, staging], other rows)\n", batch,
              seq, heads, kHd);

  auto forward = [&](const char* name, auto launch) {
    const double ms = median_ms(repeats, [&] { launch(mfu); });
    double difference = 0.0;
    for (Problem* p : all) {
      LIVS_CUDA_CHECK(cudaMemset(p->out.data, 0xff, p->out.count * sizeof(float)));  // NaN
      launch(*p);
      difference = std::max({difference, max_relative_difference(p->out.download(), p->want_out),
                             max_relative_difference(p->lse.download(), p->want_lse)});
    }
    std::printf("fwd  %-22s %8.4f ms %6.1f TFLOP/s  %s\n", name, ms, forward_flops / ms * 1e-9,
                verdict(difference).c_str());
  };
  auto backward_part = [&](const char* kind, const char* name, auto launch, auto compare) {
    const double ms = median_ms(repeats, [&] { launch(mfu); });
    double difference = 0.0;
    for (Problem* p : all) {
      p->dq.zero();
      p->dk.zero();
      p->dv.zero();
      launch(*p);
      difference = std::max(difference, compare(*p));
    }
    std::printf("%-4s %-22s %8.4f ms  %s\n", kind, name, ms, verdict(difference).c_str());
  };
  auto dkdv_difference = [](Problem& p) {
    return std::max(max_relative_difference(p.dk.download(), p.want_dk),
                    max_relative_difference(p.dv.download(), p.want_dv));
  };
  auto dq_difference = [](Problem& p) { return max_relative_difference(p.dq.download(), p.want_dq); };

  constexpr Staging kAsync = Staging::async_copy, kRegisters = Staging::registers;
#define FORWARD(W, M, B, S, K)                                                                       \
  forward(#W "," #M "," #B "," #S "," #K, [](Problem& p) {                                           \
    launch_forward<kHd, W, M, B, S, K>(nullptr, p.out.data, nullptr, p.lse.data, p.q.data, p.k.data, \
                                       p.v.data, p.s);                                               \
  })
#define DKDV(W, M, B, O) \
  backward_part("dkdv", #W "," #M "," #B "," #O, launch_dkdv<kHd, W, M, B, O>, dkdv_difference)
#define DQ(W, M, B, O) backward_part("dq", #W "," #M "," #B "," #O, launch_dq<kHd, W, M, B, O>, dq_difference)
  if constexpr (kHd == 32) {
    FORWARD(8, 1, 2, kAsync, 64);
    FORWARD(8, 1, 2, kRegisters, 64);
    FORWARD(4, 2, 2, kAsync, 64);
    for (Problem* p : all) p->forward();
    DKDV(4, 1, 4, 64);
    DKDV(4, 1, 3, 64);
    DKDV(4, 2, 3, 32);
    DKDV(4, 1, 4, 32);
    DKDV(8, 1, 2, 32);
    DKDV(2, 2, 6, 32);
    DKDV(8, 1, 2, 64);
    DQ(4, 2, 3, 32);
    DQ(4, 2, 2, 64);
    DQ(4, 1, 4, 32);
    DQ(4, 1, 3, 64);
    DQ(8, 1, 2, 32);
    DQ(8, 1, 2, 64);
    DQ(8, 2, 1, 32);
    DQ(4, 1, 4, 64);
  } else {
    FORWARD(8, 1, 1, kRegisters, 64);
    FORWARD(8, 1, 1, kAsync, 64);
    FORWARD(4, 2, 1, kAsync, 64);
    for (Problem* p : all) p->forward();
    DKDV(4, 1, 4, 32);
    DKDV(4, 1, 3, 32);
    DKDV(4, 1, 2, 64);
    DKDV(4, 2, 2, 32);
    DKDV(8, 1, 2, 32);
    DQ(4, 1, 3, 32);
    DQ(4, 2, 2, 32);
    DQ(8, 1, 2, 32);
    DQ(4, 1, 2, 64);
    DQ(4, 1, 4, 32);
  }
#undef FORWARD
#undef DKDV
#undef DQ
  const double prepare_ms = median_ms(repeats, [&] {
    const int64_t vectors = int64_t(mfu.s.batch) * mfu.s.seq * heads * kHd / 4;
    attention_tc_prepare_kernel<kHd>
        <<<unsigned((vectors + kPrepareThreads - 1) / kPrepareThreads), kPrepareThreads>>>(
            mfu.inputs16(), mfu.q.data, mfu.dout.data, mfu.out.data, mfu.s);
  });
  const double backward_ms = median_ms(repeats, [&] { mfu.backward(); });
  std::printf("prep (bf16 copies, delta)   %8.4f ms\n", prepare_ms);
  std::printf("bwd  production             %8.4f ms %6.1f TFLOP/s (dq, dk, dv written)\n", backward_ms,
              2.5 * forward_flops / backward_ms * 1e-9);
}

}  // namespace

int main(int argc, char** argv) {
  int repeats = 20, batch = 16, seq = 1024, d_model = 512;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--repeats") == 0 && i + 1 < argc) {
      repeats = std::max(1, std::atoi(argv[++i]));
    } else if (std::strcmp(argv[i], "--shape") == 0 && i + 1 < argc &&
               std::sscanf(argv[i + 1], "%d,%d,%d", &batch, &seq, &d_model) == 3 && batch > 0 && seq > 0 &&
               d_model > 0 && d_model % 64 == 0) {
      ++i;
    } else {
      std::fprintf(stderr,
                   "usage: attention_variants [--repeats N] [--shape B,T,d_model (d a multiple of 64)]\n");
      return 2;
    }
  }
  try {
    run<32>(batch, seq, d_model / 32, repeats);
    run<64>(batch, seq, d_model / 64, repeats);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
