// A kernel of the test suite's own, with dynamic shared memory, for the test
// of raise_dynamic_shared_limit (test_gpu_shared_limit.cpp): the library's
// kernels are private to their files, and the test must launch one without
// going through the helper.
#include <cuda_runtime.h>

#include <cstddef>

namespace {
__global__ void probe_kernel(float* out) {
  extern __shared__ float staged[];
  staged[threadIdx.x] = float(threadIdx.x);
  __syncthreads();
  out[threadIdx.x] = staged[31 - threadIdx.x];
}
}  // namespace

const void* shared_limit_probe_kernel() { return reinterpret_cast<const void*>(probe_kernel); }

cudaError_t launch_shared_limit_probe(float* out, std::size_t shared_bytes) {
  probe_kernel<<<1, 32, shared_bytes>>>(out);
  return cudaGetLastError();
}
