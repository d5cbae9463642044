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
#include <memory>
#include <string>

#include "evaluator/backend.hpp"

namespace livs::evaluator {

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
// errors for a bad device string).
BackendLease lease_backend(const std::string& device);

}  // namespace livs::evaluator
