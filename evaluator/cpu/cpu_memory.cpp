// Memory and elementwise kernels of the CPU backend.
#include <tbb/parallel_for.h>

#include <cstdlib>
#include <cstring>
#include <new>

#include "evaluator/cpu/cpu_backend.hpp"

namespace livs::evaluator {

namespace {
constexpr std::size_t kAlignment = 64;  // a cache line, and the widest vector
constexpr int64_t kGrain = 1 << 14;
}  // namespace

void* CpuBackend::allocate(std::size_t bytes) {
  const std::size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  void* p = std::aligned_alloc(kAlignment, rounded == 0 ? kAlignment : rounded);
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, rounded);
  return p;
}

void CpuBackend::free(void* pointer) { std::free(pointer); }

void CpuBackend::copy_to_device(void* device_dst, const void* host_src, std::size_t bytes) {
  std::memcpy(device_dst, host_src, bytes);
}

void CpuBackend::copy_to_host(void* host_dst, const void* device_src, std::size_t bytes) {
  std::memcpy(host_dst, device_src, bytes);
}

void CpuBackend::copy(float* dst, const float* src, int64_t count) {
  std::memcpy(dst, src, static_cast<std::size_t>(count) * sizeof(float));
}

void CpuBackend::fill(float* dst, int64_t count, float value) {
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, count, kGrain), [&](const auto& r) {
    for (int64_t i = r.begin(); i != r.end(); ++i) dst[i] = value;
  });
}

void CpuBackend::add(float* out, const float* a, const float* b, int64_t count) {
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, count, kGrain), [&](const auto& r) {
    for (int64_t i = r.begin(); i != r.end(); ++i) out[i] = a[i] + b[i];
  });
}

}  // namespace livs::evaluator
