// The default HostStaging: plain host memory, each copy the backend's own
// synchronous copy_to_device / copy_to_host, so mark() and wait() have
// nothing to wait for (the CPU backend, and any backend without a queue).
#include <vector>

#include "evaluator/backend.hpp"

namespace livs::evaluator {

namespace {

class SynchronousStaging final : public HostStaging {
 public:
  SynchronousStaging(Backend& backend, std::size_t bytes) : backend_(backend), memory_(bytes) {}
  std::byte* data() override { return memory_.data(); }
  void to_device(void* device_dst, std::size_t offset, std::size_t bytes) override {
    backend_.copy_to_device(device_dst, memory_.data() + offset, bytes);
  }
  void from_device(std::size_t offset, const void* device_src, std::size_t bytes) override {
    backend_.copy_to_host(memory_.data() + offset, device_src, bytes);
  }

 private:
  Backend& backend_;
  std::vector<std::byte> memory_;
};

}  // namespace

std::unique_ptr<HostStaging> Backend::make_host_staging(std::size_t bytes) {
  return std::make_unique<SynchronousStaging>(*this, bytes);
}

}  // namespace livs::evaluator
