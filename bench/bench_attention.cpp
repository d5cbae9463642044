// bench/bench_attention: the causal attention kernels alone, forward and
// backward, on the exact fp32 SIMT kernels (a CudaBackend in fp32 mode) and
// on the bf16 tensor-core kernels (a CudaBackend in bf16 mode), at the MFU
// shape of docs/benchmarks.md (batch 16, T 1024, d 512 split as 16 heads of
// 32) and the same width as 8 x 64 and 4 x 128.
//
// FLOPs count the useful work of causal attention, 4 B H hd T(T+1)/2 for
// the forward (Q K^T and P V) and 2.5 times that for the backward (the
// convention of the FlashAttention papers: S recomputed, dP, dV, dK, dQ);
// the kernels' extra recomputation is not counted.
//
//   bench_attention [--repeats 20] [--seq 1024] [--batch 16] [--window 0]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cxxopts.hpp>
#include <vector>

#include "common/rng.hpp"
#include "evaluator/cuda/cuda_backend.hpp"

using namespace livs;
using namespace livs::evaluator;

namespace {

struct Buffers {
  Backend& be;
  std::vector<float*> owned;
  float* make(int64_t count, uint64_t seed) {
    Rng rng(seed);
    std::vector<float> host(static_cast<std::size_t>(count));
    for (auto& x : host) x = float(rng.normal(0.0, 1.0));
    auto* p = static_cast<float*>(be.allocate(host.size() * sizeof(float)));
    be.copy_to_device(p, host.data(), host.size() * sizeof(float));
    owned.push_back(p);
    return p;
  }
  ~Buffers() {
    for (float* p : owned) be.free(p);
  }
};

// Median milliseconds of `repeats` timed runs after 3 untimed ones.
template <class F>
double median_ms(Backend& be, int repeats, F&& run) {
  for (int i = 0; i < 3; ++i) run();
  be.synchronize();
  std::vector<double> ms;
  for (int i = 0; i < repeats; ++i) {
    const auto start = std::chrono::steady_clock::now();
    run();
    be.synchronize();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

void bench(CudaBackend& be, const char* path, const AttentionShape& s, int repeats) {
  const int64_t q_count = int64_t(s.batch) * s.seq * s.heads * s.head_dim;
  const int64_t kv_count = int64_t(s.batch) * s.seq * s.kv_heads * s.head_dim;
  Buffers buffers{be, {}};
  float *q = buffers.make(q_count, 1), *k = buffers.make(kv_count, 2), *v = buffers.make(kv_count, 3),
        *dout = buffers.make(q_count, 4), *out = buffers.make(q_count, 5),
        *lse = buffers.make(int64_t(s.batch) * s.heads * s.seq, 6), *dq = buffers.make(q_count, 7),
        *dk = buffers.make(kv_count, 8), *dv = buffers.make(kv_count, 9);
  const double forward_ms = median_ms(be, repeats, [&] { be.attention_forward(out, lse, q, k, v, s); });
  const double backward_ms =
      median_ms(be, repeats, [&] { be.attention_backward(dq, dk, dv, dout, q, k, v, out, lse, s, false); });
  // Keys each query sees, summed over the sequence.
  double pairs = 0;
  for (int i = 0; i < s.seq; ++i) pairs += s.window > 0 ? std::min(i + 1, s.window) : i + 1;
  const double forward_flops = 4.0 * s.batch * s.heads * s.head_dim * pairs;
  std::printf(
      "%-13s B%-3d T%-5d H%-3d KV%-3d hd%-4d w%-5d  fwd %8.3f ms %7.1f TFLOP/s   bwd %8.3f ms %7.1f "
      "TFLOP/s\n",
      path, s.batch, s.seq, s.heads, s.kv_heads, s.head_dim, s.window, forward_ms,
      forward_flops / forward_ms * 1e-9, backward_ms, 2.5 * forward_flops / backward_ms * 1e-9);
}

}  // namespace

int main(int argc, char** argv) {
  cxxopts::Options options("bench_attention",
                           "causal attention forward/backward: fp32 SIMT vs bf16 tensor cores");
  options.add_options()("repeats", "timed runs (median)", cxxopts::value<int>()->default_value("20"))(
      "seq", "sequence length", cxxopts::value<int>()->default_value("1024"))(
      "batch", "sequences", cxxopts::value<int>()->default_value("16"))(
      "window", "sliding window (0: global)", cxxopts::value<int>()->default_value("0"))(
      "device", "CUDA device", cxxopts::value<int>()->default_value("0"))("h,help", "show this help");
  const auto args = options.parse(argc, argv);
  if (args.count("help")) {
    std::printf("%s", options.help().c_str());
    return 0;
  }
  const int repeats = std::max(1, args["repeats"].as<int>()), device = args["device"].as<int>();
  CudaBackend simt(device, GemmPrecision::fp32), tensor_cores(device, GemmPrecision::bf16);
  for (const auto& [heads, head_dim] : {std::pair{16, 32}, std::pair{8, 64}, std::pair{4, 128}}) {
    AttentionShape s;
    s.batch = args["batch"].as<int>();
    s.seq = args["seq"].as<int>();
    s.heads = s.kv_heads = heads;
    s.head_dim = head_dim;
    s.window = args["window"].as<int>();
    s.scale = float(1.0 / std::sqrt(double(head_dim)));
    bench(simt, "simt fp32", s, repeats);
    bench(tensor_cores, "tensor-core", s, repeats);
  }
  return 0;
}
