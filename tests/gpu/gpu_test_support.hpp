#pragma once
// Helpers of the GPU suite: every CUDA kernel is run on the same inputs as
// its CPU twin (the reference) and compared by relative norm,
//   ||gpu - cpu|| / ||cpu|| <= tolerance,
// which is NaN (and fails) when any element is not finite. Outputs are
// poisoned with NaN before each run, so an element a kernel forgets to write
// fails the comparison; gradients that kernels accumulate into start from the
// same random values on both backends.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "common/rng.hpp"
#include "evaluator/backend.hpp"
#include "evaluator/cpu/cpu_backend.hpp"
#include "evaluator/cuda/cuda_backend.hpp"

namespace livs::evaluator::gpu_testing {

// Stated tolerances (relative norm).
constexpr double kFp32Tolerance = 1e-5;       // our fp32 kernels: only the summation order differs
constexpr double kAttentionTolerance = 2e-5;  // fp32, but exp and long dot products in another order
constexpr double kBf16GemmTolerance = 1e-2;   // bf16 inputs (8-bit mantissa), fp32 accumulation

inline CpuBackend& cpu() {
  static CpuBackend backend;
  return backend;
}
// Exact fp32 GEMMs: the kernel comparisons isolate our kernels from bf16 rounding.
inline CudaBackend& gpu() {
  static CudaBackend backend(0, GemmPrecision::fp32);
  return backend;
}
inline CudaBackend& gpu_bf16() {
  static CudaBackend backend(0, GemmPrecision::bf16);
  return backend;
}

inline std::vector<float> random_floats(std::size_t n, uint64_t seed, double stddev = 1.0,
                                        double mean = 0.0) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = float(rng.normal(mean, stddev));
  return v;
}

inline std::vector<int32_t> random_tokens(std::size_t n, int vocab, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> v(n);
  for (auto& x : v) x = int32_t(rng.integer(0, vocab - 1));
  return v;
}

// A buffer in one backend's memory, freed with it.
template <class T>
class DeviceArray {
 public:
  DeviceArray(Backend& backend, int64_t count) : backend_(backend), count_(count) {
    data_ = static_cast<T*>(backend_.allocate(std::size_t(count_) * sizeof(T)));
  }
  DeviceArray(Backend& backend, const std::vector<T>& host) : DeviceArray(backend, int64_t(host.size())) {
    backend_.copy_to_device(data_, host.data(), host.size() * sizeof(T));
  }
  ~DeviceArray() { backend_.free(data_); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;

  T* data() { return data_; }
  int64_t size() const { return count_; }
  std::vector<T> download() const {
    std::vector<T> host(static_cast<std::size_t>(count_));
    backend_.copy_to_host(host.data(), data_, host.size() * sizeof(T));
    return host;
  }

 private:
  Backend& backend_;
  T* data_ = nullptr;
  int64_t count_ = 0;
};

// A float output: allocated and filled with NaN.
inline std::unique_ptr<DeviceArray<float>> poisoned(Backend& backend, int64_t count) {
  auto array = std::make_unique<DeviceArray<float>>(backend, count);
  backend.fill(array->data(), count, std::numeric_limits<float>::quiet_NaN());
  return array;
}

inline double relative_error(const std::vector<float>& got, const std::vector<float>& want) {
  if (got.size() != want.size()) return std::numeric_limits<double>::infinity();
  double diff = 0.0, norm = 0.0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double d = double(got[i]) - double(want[i]);
    diff += d * d;
    norm += double(want[i]) * double(want[i]);
  }
  return std::sqrt(diff) / std::max(std::sqrt(norm), 1e-30);
}

// The check every kernel test makes.
inline void check_close(const std::string& what, const std::vector<float>& got,
                        const std::vector<float>& want, double tolerance) {
  const double error = relative_error(got, want);
  INFO(what << ": relative error " << error << ", tolerance " << tolerance << ", " << want.size()
            << " elements");
  CHECK(std::isfinite(error));
  CHECK(error <= tolerance);
}

// Runs `run(backend)` (which returns the named outputs) on the CPU and on the
// GPU and compares each output.
template <class Run>
void compare_backends(const std::string& what, Run run, double tolerance, Backend& device = gpu()) {
  const auto want = run(static_cast<Backend&>(cpu()));
  const auto got = run(device);
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < want.size(); ++i)
    check_close(what + " " + want[i].first, got[i].second, want[i].second, tolerance);
}

using Outputs = std::vector<std::pair<std::string, std::vector<float>>>;

// The sample corpus as byte tokens: run from the repository root (gpu-check.sh)
// or from the source tree this binary was built from. Empty when not found.
inline std::vector<uint16_t> corpus_bytes(std::size_t count) {
  for (const std::string& path :
       {std::string("data/kjv.txt"), std::string(LIVSEARCH_SOURCE_DIR) + "/data/kjv.txt"}) {
    std::ifstream in(path, std::ios::binary);
    if (!in) continue;
    std::vector<char> bytes(count);
    in.read(bytes.data(), std::streamsize(count));
    bytes.resize(std::size_t(in.gcount()));
    return std::vector<uint16_t>(bytes.begin(), bytes.end());
  }
  return {};
}

}  // namespace livs::evaluator::gpu_testing
