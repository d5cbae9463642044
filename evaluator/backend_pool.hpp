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
// A sticky CUDA error (an illegal address, a trapped kernel) breaks the
// device's context for the whole process, and nothing inside the process
// brings it back: on the H200 we run on, cudaDeviceReset returns success and
// every later call, on any thread, fails with cudaErrorDevicesUnavailable,
// while a fresh process (even the same one after exec) works at once
// (measured; docs/architecture.md, "Faults"). So a lease that ends in an
// error on a device whose context is lost marks the device lost for this
// process; later leases on it throw DeviceContextLost, and the search, which
// watches any_device_context_lost(), stops starting candidates and restarts
// its process with --resume (cli/restart_on_lost_device.*).
#include <memory>
#include <stdexcept>
#include <string>

#include "evaluator/backend.hpp"

namespace livs::evaluator {

// Thrown by lease_backend for a device whose context this process lost.
struct DeviceContextLost : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class BackendLease {
 public:
  BackendLease(std::string device, std::unique_ptr<Backend> backend);
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
  std::string device_;
  std::unique_ptr<Backend> backend_;
  bool keep_ = false;
};

// An idle backend for `device` from the pool, or a new one (make_backend's
// errors for a bad device string); DeviceContextLost when this process lost
// the device's context.
BackendLease lease_backend(const std::string& device);

// Whether this process lost the context of `device` / of any device (cheap:
// the search polls it between evaluations).
bool device_context_lost(const std::string& device);
bool any_device_context_lost();
// "cuda:0" (or a list) for the devices whose context was lost; empty if none.
std::string lost_devices();

}  // namespace livs::evaluator
