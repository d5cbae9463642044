#include "evaluator/backend_pool.hpp"

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
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
  std::map<std::string, DeviceUse> devices;  // map nodes never move: leases point at them
};

// Never destroyed: CUDA objects must not be released by static destructors,
// after the runtime may have shut down at exit; the process's end frees them.
Pool& pool() {
  static Pool* instance = new Pool;
  return *instance;
}

DeviceUse& device_use(const std::string& device) {
  Pool& p = pool();
  std::lock_guard lock(p.mutex);
  return p.devices[device];
}

}  // namespace

BackendLease::BackendLease(std::string device, std::unique_ptr<Backend> backend)
    : device_(std::move(device)), backend_(std::move(backend)) {}

BackendLease::BackendLease(std::string device, std::unique_ptr<Backend> backend, DeviceUse& use,
                           std::shared_lock<std::shared_mutex> in_use)
    : device_(std::move(device)),
      backend_(std::move(backend)),
      use_(&use),
      in_use_(std::move(in_use)),
      epoch_(use.epoch) {}

BackendLease::~BackendLease() {
  if (!backend_) return;
  if (!keep_) {
    if (use_ && backend_->device_context_lost()) rebuild_context();
    return;  // the backend is destroyed: a failed candidate may have left it in a bad state
  }
  if (!reuse_enabled()) return;
  Pool& p = pool();
  std::lock_guard lock(p.mutex);
  auto& idle = p.idle[device_];
  if (idle.size() < kMaxIdlePerDevice) idle.push_back(std::move(backend_));
}

// A sticky error (CUDA: an illegal address, a trapped kernel) breaks the
// device's context for every backend of the process, so every later
// candidate on the device would fail with it. The context is rebuilt once no
// other lease on the device is in flight (the exclusive lock waits for them:
// their work fails on the broken context anyway). Backends made before the
// rebuild hold handles of the dead context: they are never touched again,
// not even by their destructors (whose calls on dead handles are not
// defined), and their host objects are left allocated. A second lease that
// failed on the same broken context finds the epoch moved and does nothing.
void BackendLease::rebuild_context() {
  Backend* broken = backend_.release();
  in_use_.unlock();
  std::unique_lock exclusive(use_->mutex);
  if (use_->epoch != epoch_) return;
  {
    Pool& p = pool();
    std::lock_guard lock(p.mutex);
    for (auto& idle : p.idle[device_]) (void)idle.release();
    p.idle[device_].clear();
  }
  broken->reset_device_context();
  ++use_->epoch;
  ++use_->rebuilds;
}

BackendLease lease_backend(const std::string& device) {
  make_device_current(device);  // a pooled backend may have been built on another thread
  DeviceUse& use = device_use(device);
  std::shared_lock in_use(use.mutex);  // held while the backend is in use (see rebuild_context)
  if (reuse_enabled()) {
    Pool& p = pool();
    std::unique_lock lock(p.mutex);
    auto& idle = p.idle[device];
    if (!idle.empty()) {
      auto backend = std::move(idle.back());
      idle.pop_back();
      lock.unlock();
      return BackendLease(device, std::move(backend), use, std::move(in_use));
    }
  }
  return BackendLease(device, make_backend(device), use, std::move(in_use));
}

int device_context_rebuilds(const std::string& device) {
  DeviceUse& use = device_use(device);
  std::shared_lock in_use(use.mutex);
  return use.rebuilds;
}

}  // namespace livs::evaluator
