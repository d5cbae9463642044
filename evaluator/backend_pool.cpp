#include "evaluator/backend_pool.hpp"

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

#include "evaluator/backend_factory.hpp"

namespace livs::evaluator {

namespace {

// At most this many idle backends per device: more than any --workers on
// one GPU needs, and a bound on what idle scratch can hold.
constexpr std::size_t kMaxIdlePerDevice = 64;

bool reuse_enabled() {
  static const bool enabled = [] {
    const char* value = std::getenv("LIVSEARCH_REUSE_BACKENDS");
    return !(value && std::strcmp(value, "0") == 0);
  }();
  return enabled;
}

struct Pool {
  std::mutex mutex;
  std::map<std::string, std::vector<std::unique_ptr<Backend>>> idle;
};

// Never destroyed: CUDA objects must not be released by static destructors,
// after the runtime may have shut down at exit; the process's end frees them.
Pool& pool() {
  static Pool* instance = new Pool;
  return *instance;
}

}  // namespace

BackendLease::BackendLease(std::string device, std::unique_ptr<Backend> backend)
    : device_(std::move(device)), backend_(std::move(backend)) {}

BackendLease::~BackendLease() {
  if (!backend_ || !keep_ || !reuse_enabled()) return;
  Pool& p = pool();
  std::lock_guard lock(p.mutex);
  auto& idle = p.idle[device_];
  if (idle.size() < kMaxIdlePerDevice) idle.push_back(std::move(backend_));
}

BackendLease lease_backend(const std::string& device) {
  if (reuse_enabled()) {
    Pool& p = pool();
    std::lock_guard lock(p.mutex);
    auto& idle = p.idle[device];
    if (!idle.empty()) {
      auto backend = std::move(idle.back());
      idle.pop_back();
      return BackendLease(device, std::move(backend));
    }
  }
  return BackendLease(device, make_backend(device));
}

}  // namespace livs::evaluator
