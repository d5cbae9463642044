#include "evaluator/backend_pool.hpp"

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <vector>

#include "common/environment_switch.hpp"
#include "evaluator/backend_factory.hpp"

namespace livs::evaluator {

namespace {

// At most this many idle backends per device: more than any --workers on
// one GPU needs, and a bound on what idle scratch can hold.
constexpr std::size_t kMaxIdlePerDevice = 64;

bool reuse_enabled() {
  static const bool enabled = enabled_unless_zero("LIVSEARCH_REUSE_BACKENDS");
  return enabled;
}

struct Pool {
  std::mutex mutex;
  std::map<std::string, std::vector<std::unique_ptr<Backend>>> idle;
  std::set<std::string> lost;  // devices whose context this process lost
  std::atomic<bool> any_lost{false};
};

// Never destroyed: CUDA objects must not be released by static destructors,
// after the runtime may have shut down at exit; the process's end frees them.
Pool& pool() {
  static Pool* instance = new Pool;
  return *instance;
}

// Backends of a lost context hold handles that are never touched again, not
// even by their destructors (whose calls on dead handles are not defined):
// their host objects are left allocated until the process restarts.
void mark_lost(const std::string& device, std::unique_ptr<Backend> broken) {
  (void)broken.release();
  Pool& p = pool();
  std::lock_guard lock(p.mutex);
  for (auto& idle : p.idle[device]) (void)idle.release();
  p.idle[device].clear();
  p.lost.insert(device);
  p.any_lost = true;
}

}  // namespace

BackendLease::BackendLease(std::string device, std::unique_ptr<Backend> backend)
    : device_(std::move(device)), backend_(std::move(backend)) {}

BackendLease::~BackendLease() {
  if (!backend_) return;
  if (!keep_) {
    // A failed candidate may have left the backend in a bad state: it is
    // destroyed, or, when the device's context is gone, abandoned.
    if (backend_->device_context_lost()) mark_lost(device_, std::move(backend_));
    return;
  }
  if (!reuse_enabled()) return;
  Pool& p = pool();
  std::lock_guard lock(p.mutex);
  if (p.lost.count(device_)) {
    (void)backend_.release();  // made before the loss: its handles are dead
    return;
  }
  auto& idle = p.idle[device_];
  if (idle.size() < kMaxIdlePerDevice) idle.push_back(std::move(backend_));
}

BackendLease lease_backend(const std::string& device) {
  if (device_context_lost(device))
    throw DeviceContextLost(
        "the context of " + device +
        " was lost to a sticky device error in an earlier candidate; no candidate can run "
        "there until the process restarts (livsearch search restarts itself with --resume)");
  make_device_current(device);  // a pooled backend may have been built on another thread
  if (reuse_enabled()) {
    Pool& p = pool();
    std::unique_lock lock(p.mutex);
    auto& idle = p.idle[device];
    if (!idle.empty()) {
      auto backend = std::move(idle.back());
      idle.pop_back();
      return BackendLease(device, std::move(backend));
    }
  }
  return BackendLease(device, make_backend(device));
}

bool device_context_lost(const std::string& device) {
  Pool& p = pool();
  if (!p.any_lost) return false;
  std::lock_guard lock(p.mutex);
  return p.lost.count(device) > 0;
}

bool any_device_context_lost() { return pool().any_lost; }

std::string lost_devices() {
  Pool& p = pool();
  std::lock_guard lock(p.mutex);
  std::string list;
  for (const auto& d : p.lost) list += (list.empty() ? "" : ",") + d;
  return list;
}

}  // namespace livs::evaluator
