// raise_dynamic_shared_limit: a kernel's dynamic shared memory limit only
// ever goes up, so a worker asking for less cannot break another worker's
// larger launch (seen as cudaErrorInvalidValue in linear attention with
// eight workers of different head sizes).
#include <cuda_runtime.h>
#include <doctest/doctest.h>

#include <cstddef>
#include <thread>
#include <vector>

#include "evaluator/cuda/cuda_check.hpp"

const void* shared_limit_probe_kernel();
cudaError_t launch_shared_limit_probe(float* out, std::size_t shared_bytes);

using livs::evaluator::cuda::raise_dynamic_shared_limit;

TEST_CASE("dynamic shared memory limit: a smaller request never lowers it") {
  const void* kernel = shared_limit_probe_kernel();
  float* out = nullptr;
  REQUIRE(cudaMalloc(&out, 32 * sizeof(float)) == cudaSuccess);
  const std::size_t large = 96 * 1024, small = 16 * 1024;
  raise_dynamic_shared_limit(kernel, large);
  raise_dynamic_shared_limit(kernel, small);  // another worker, smaller head
  cudaFuncAttributes attributes{};
  REQUIRE(cudaFuncGetAttributes(&attributes, kernel) == cudaSuccess);
  CHECK(attributes.maxDynamicSharedSizeBytes >= int(large));
  CHECK(launch_shared_limit_probe(out, large) == cudaSuccess);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);

  // Threads raising it at once end at the largest request.
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w)
    workers.emplace_back([&, w] {
      for (int i = 0; i < 100; ++i)
        raise_dynamic_shared_limit(kernel, std::size_t(8 + 8 * ((i + w) % 14)) * 1024);
    });
  for (auto& worker : workers) worker.join();
  REQUIRE(cudaFuncGetAttributes(&attributes, kernel) == cudaSuccess);
  CHECK(attributes.maxDynamicSharedSizeBytes >= int(large));
  CHECK(launch_shared_limit_probe(out, 112 * 1024) == cudaSuccess);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
  cudaFree(out);
}
