// CudaBackend's HostStaging: page-locked host memory (so a copy queued on
// the stream returns at once and runs while the host goes on), the copies on
// the backend's stream and an event that says when they are done. The
// training loop (evaluator/trainer.cpp) keeps two, one for the step in
// flight and one for the step it is preparing.
#include <cuda_runtime.h>

#include <algorithm>
#include <new>

#include "evaluator/cuda/cuda_backend.hpp"
#include "evaluator/cuda/cuda_check.hpp"

namespace livs::evaluator {

class PinnedStaging final : public HostStaging {
 public:
  PinnedStaging(CudaBackend& owner, cudaStream_t stream, std::size_t bytes)
      : owner_(owner), stream_(stream), block_(owner.take_pinned(bytes)) {
    cudaEvent_t event = nullptr;
    const cudaError_t error = cudaEventCreateWithFlags(&event, cudaEventDisableTiming);
    if (error != cudaSuccess) {
      owner_.keep_pinned(block_);
      LIVS_CUDA_CHECK(error);
    }
    event_ = event;
  }
  ~PinnedStaging() override {
    // The copies it queued must land before the block can serve another
    // staging (errors ignored: this may run while a failure unwinds).
    (void)cudaStreamSynchronize(stream_);
    (void)cudaEventDestroy(event_);
    owner_.keep_pinned(block_);
  }
  PinnedStaging(const PinnedStaging&) = delete;
  PinnedStaging& operator=(const PinnedStaging&) = delete;

  std::byte* data() override { return block_.data; }
  void to_device(void* device_dst, std::size_t offset, std::size_t bytes) override {
    if (bytes == 0) return;
    LIVS_CUDA_CHECK(
        cudaMemcpyAsync(device_dst, block_.data + offset, bytes, cudaMemcpyHostToDevice, stream_));
  }
  void from_device(std::size_t offset, const void* device_src, std::size_t bytes) override {
    if (bytes == 0) return;
    LIVS_CUDA_CHECK(
        cudaMemcpyAsync(block_.data + offset, device_src, bytes, cudaMemcpyDeviceToHost, stream_));
  }
  void mark() override { LIVS_CUDA_CHECK(cudaEventRecord(event_, stream_)); }
  void wait() override { LIVS_CUDA_CHECK(cudaEventSynchronize(event_)); }

 private:
  CudaBackend& owner_;
  cudaStream_t stream_;
  CudaBackend::PinnedBlock block_;
  cudaEvent_t event_ = nullptr;
};

std::unique_ptr<HostStaging> CudaBackend::make_host_staging(std::size_t bytes) {
  return std::make_unique<PinnedStaging>(*this, static_cast<cudaStream_t>(stream_), bytes);
}

// The smallest idle block that holds `bytes`, else a new one (a whole number
// of 4 KiB pages). At most kIdleBlocks stay idle: past that the smallest is
// freed, which only happens while candidates keep growing.
CudaBackend::PinnedBlock CudaBackend::take_pinned(std::size_t bytes) {
  auto fits = std::find_if(idle_pinned_.begin(), idle_pinned_.end(),
                           [&](const PinnedBlock& b) { return b.bytes >= bytes; });
  if (fits != idle_pinned_.end()) {
    const PinnedBlock block = *fits;
    idle_pinned_.erase(fits);
    return block;
  }
  constexpr std::size_t kPage = 4096;
  PinnedBlock block;
  block.bytes = std::max<std::size_t>(kPage, (bytes + kPage - 1) / kPage * kPage);
  void* p = nullptr;
  LIVS_CUDA_CHECK(cudaSetDevice(device_));
  if (cudaHostAlloc(&p, block.bytes, cudaHostAllocDefault) != cudaSuccess) {
    (void)cudaGetLastError();
    throw std::bad_alloc();
  }
  block.data = static_cast<std::byte*>(p);
  return block;
}

void CudaBackend::keep_pinned(PinnedBlock block) noexcept {
  constexpr std::size_t kIdleBlocks = 4;
  if (!block.data) return;
  try {
    idle_pinned_.push_back(block);
  } catch (...) {
    (void)cudaFreeHost(block.data);
    return;
  }
  // Smallest first, so take_pinned's first fit is the best fit.
  std::sort(idle_pinned_.begin(), idle_pinned_.end(),
            [](const PinnedBlock& a, const PinnedBlock& b) { return a.bytes < b.bytes; });
  if (idle_pinned_.size() > kIdleBlocks) {
    (void)cudaFreeHost(idle_pinned_.front().data);
    idle_pinned_.erase(idle_pinned_.begin());
  }
}

}  // namespace livs::evaluator
