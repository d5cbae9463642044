#pragma once
// Every CUDA and cuBLAS call is checked: a failure throws with file:line, the
// call and the library's error string. Out of memory throws std::bad_alloc, so
// a candidate that does not fit fails cleanly instead of ending the search.
#include <cublas_v2.h>
#include <cuda_runtime.h>

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
