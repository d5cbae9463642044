#pragma once
// Every CUDA and cuBLAS call is checked: a failure throws with file:line, the
// call and the library's error string. Out of memory throws std::bad_alloc, so
// a candidate that does not fit fails cleanly instead of ending the search.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <new>
#include <stdexcept>
#include <string>

namespace livs::evaluator::cuda {

inline void check_cuda(cudaError_t error, const char* call, const char* file, int line) {
  if (error == cudaSuccess) return;
  if (error == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();  // clear the sticky-free error so the context stays usable
    throw std::bad_alloc();
  }
  throw std::runtime_error(std::string(file) + ":" + std::to_string(line) + ": " + call + ": " +
                           cudaGetErrorName(error) + ": " + cudaGetErrorString(error));
}

inline void check_cublas(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  if (status == CUBLAS_STATUS_ALLOC_FAILED) throw std::bad_alloc();
  throw std::runtime_error(std::string(file) + ":" + std::to_string(line) + ": " + call + ": " +
                           cublasGetStatusName(status) + ": " + cublasGetStatusString(status));
}

}  // namespace livs::evaluator::cuda

#define LIVS_CUDA_CHECK(call) ::livs::evaluator::cuda::check_cuda((call), #call, __FILE__, __LINE__)
#define LIVS_CUBLAS_CHECK(call) ::livs::evaluator::cuda::check_cublas((call), #call, __FILE__, __LINE__)
// After a kernel launch: reports a bad launch configuration at its call site.
#define LIVS_CUDA_CHECK_LAUNCH() LIVS_CUDA_CHECK(cudaGetLastError())

namespace livs::evaluator::cuda {

// Raises a kernel's dynamic shared memory limit on the current device to at
// least `bytes` (never lowers it; shared_memory_limit.cpp). The limit is a
// property of the kernel, shared by every thread: setting it to each launch's
// own size let a worker lower it between another worker's call and that
// worker's larger launch, which then failed with an invalid argument.
void raise_dynamic_shared_limit(const void* kernel, std::size_t bytes);

// Opts a kernel in to `bytes` of dynamic shared memory; call it before every
// launch that takes dynamic shared memory: with a kernel's static arrays even
// a few KiB can pass the default 48 KiB, and such a launch fails with an
// invalid argument unless an earlier one happened to raise the limit.
// Returns bytes.
template <class Kernel>
std::size_t opt_in_dynamic_shared(Kernel kernel, std::size_t bytes) {
  raise_dynamic_shared_limit(reinterpret_cast<const void*>(kernel), bytes);
  return bytes;
}

}  // namespace livs::evaluator::cuda
