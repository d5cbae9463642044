#pragma once
// Backends kept between evaluations. Building a CUDA backend creates a
// stream, a cuBLAS handle and its workspace; a search builds one per
// candidate, and with several candidates training at once on one GPU those
// driver calls contend with the other workers' work. An evaluation leases a
// backend for its device, and a lease that ends well (keep()) puts it back
// for the next evaluation; one that ends in an error destroys it, since a
// failed candidate may have left it in a bad state. A backend's scratch
// buffers keep their size from one lease to the next (they only grow), which
// changes no result: kernels never read scratch they did not write.
// LIVSEARCH_REUSE_BACKENDS=0 builds a new backend for every lease (for
// comparison).
//
// A lease that ends in an error on a device whose context is lost (a sticky
// CUDA error) rebuilds the context before the next lease on that device can
// start, so one candidate's device fault does not fail every candidate after
// it (BackendLease::rebuild_context).
#include <memory>
#include <shared_mutex>
#include <string>

#include "evaluator/backend.hpp"

namespace livs::evaluator {

// Leases of one device: each holds `mutex` shared while it is out; a rebuild
// of the device's context holds it exclusively. `epoch` counts rebuilds.
struct DeviceUse {
  std::shared_mutex mutex;
  int epoch = 0;
  int rebuilds = 0;
};

class BackendLease {
 public:
  // A lease outside the pool's bookkeeping (no context rebuild).
  BackendLease(std::string device, std::unique_ptr<Backend> backend);
  BackendLease(std::string device, std::unique_ptr<Backend> backend, DeviceUse& use,
               std::shared_lock<std::shared_mutex> in_use);
  BackendLease(BackendLease&&) = default;
  BackendLease(const BackendLease&) = delete;
  BackendLease& operator=(const BackendLease&) = delete;
  BackendLease& operator=(BackendLease&&) = delete;
  ~BackendLease();

  Backend& operator*() const { return *backend_; }
  Backend* operator->() const { return backend_.get(); }
  // The evaluation ended well: the backend goes back to the pool.
  void keep() { keep_ = true; }

 private:
  void rebuild_context();

  std::string device_;
  std::unique_ptr<Backend> backend_;
  DeviceUse* use_ = nullptr;
  std::shared_lock<std::shared_mutex> in_use_;
  int epoch_ = 0;
  bool keep_ = false;
};

// An idle backend for `device` from the pool, or a new one (make_backend's
// errors for a bad device string).
BackendLease lease_backend(const std::string& device);

// How often the context of `device` was rebuilt after a sticky error.
int device_context_rebuilds(const std::string& device);

}  // namespace livs::evaluator
