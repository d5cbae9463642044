// The CPU backend's played sticky error (evaluator/backend.hpp): a real one
// breaks a GPU's context for every backend of the process, so the flag is
// process-wide.
#include <atomic>
#include <stdexcept>

#include "evaluator/cpu/cpu_backend.hpp"

namespace livs::evaluator {

namespace {
std::atomic<bool> device_lost{false};
}  // namespace

void CpuBackend::inject_device_fault() {
  device_lost = true;
  throw std::runtime_error("injected device fault (played sticky error: the cpu device counts as lost)");
}

bool CpuBackend::device_context_lost() { return device_lost; }

}  // namespace livs::evaluator
