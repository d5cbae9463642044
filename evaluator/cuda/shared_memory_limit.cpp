// raise_dynamic_shared_limit (cuda_check.hpp): one table of the limits set so
// far, per kernel and device, under one lock, so that concurrent workers only
// ever raise a kernel's limit.
#include <cuda_runtime.h>

#include <cstddef>
#include <map>
#include <mutex>
#include <utility>

#include "evaluator/cuda/cuda_check.hpp"

namespace livs::evaluator::cuda {

void raise_dynamic_shared_limit(const void* kernel, std::size_t bytes) {
  static std::mutex mutex;
  static std::map<std::pair<const void*, int>, std::size_t> limits;
  int device = 0;
  LIVS_CUDA_CHECK(cudaGetDevice(&device));
  std::lock_guard<std::mutex> lock(mutex);
  // A kernel not in the table has the default limit, which a launch past 48
  // KiB (dynamic plus static) needs raised; setting it once costs nothing.
  auto [entry, added] = limits.try_emplace({kernel, device}, 0);
  if (!added && entry->second >= bytes) return;
  LIVS_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
  entry->second = bytes;
}

}  // namespace livs::evaluator::cuda
