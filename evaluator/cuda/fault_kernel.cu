// A deliberate device fault for the fault-injection tests
// (common/fault_injection.hpp): one thread writes through a null pointer,
// which the device reports as cudaErrorIllegalAddress, a sticky error.
#include <cuda_runtime.h>

#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/grid_dependency.cuh"
#include "evaluator/cuda/kernels.hpp"

namespace livs::evaluator::cuda {

namespace {
__global__ void write_through_null_kernel(volatile int* target) {
  await_prior_grids();
  *target = 1;
}
}  // namespace

void launch_illegal_address_kernel(cudaStream_t stream) {
  write_through_null_kernel<<<1, 1, 0, stream>>>(nullptr);
  LIVS_CUDA_CHECK_LAUNCH();
}

}  // namespace livs::evaluator::cuda
