#pragma once
// Every kernel, copy and fill the device runs, with its start and end, and
// every CUDA runtime call of the host, from
// NVIDIA's CUPTI activity interface (what Nsight Systems reads; the GPU box
// has no nsys). libcupti is opened at run time, never linked: a binary that
// needed it would not start on a machine without it, and on the GPU box the
// staged copy in .gpu/ (scripts/gpu-check.sh build) is found through
// LD_LIBRARY_PATH. One tracer at a time in a process (CUPTI's buffer
// callbacks carry no user pointer).
//
// Tracing costs each launch a little time: rates measured while tracing are
// for the diagnosis, not for the tables that compare against PyTorch.
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "bench/kernel_timeline/timeline.hpp"

namespace livs::bench {

class KernelTracer {
 public:
  // Starts tracing; nullptr with `why_not` set where it cannot (built
  // without CUDA, no libcupti, CUPTI refused, a tracer already running).
  // Start it before the CUDA context, streams and step graphs exist, so that
  // nothing the program runs was set up outside CUPTI's view.
  static std::unique_ptr<KernelTracer> start(std::string& why_not);
  ~KernelTracer();  // stops tracing
  KernelTracer(const KernelTracer&) = delete;
  KernelTracer& operator=(const KernelTracer&) = delete;

  // What was recorded since the last take() (or the start): what the device
  // ran (by stream) and the CUDA runtime calls the host made (by thread;
  // their time includes any wait for the device), once every launch queued
  // before the call has finished (the caller waits for the device first).
  struct Trace {
    Timeline device;
    Timeline host_calls;
    std::size_t dropped = 0;  // records CUPTI lost for want of buffer space
  };
  Trace take();

  // Now, on the clock of the spans (to mark a window of them).
  uint64_t now_ns() const;

  // Called from CUPTI's buffer callback.
  void add_records(unsigned char* buffer, std::size_t valid_bytes);

 private:
  KernelTracer() = default;
  std::mutex mutex_;
  Trace collected_;
  std::unordered_map<const char*, std::string> kernel_names_;  // CUPTI's name -> short_kernel_name
};

}  // namespace livs::bench
