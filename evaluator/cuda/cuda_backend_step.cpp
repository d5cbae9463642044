// CudaBackend's device-side training step: the step scalars' kernels, the
// step runner that captures a step as a CUDA graph and replays it, CUDA-event
// timing and the device's memory figures.
#include <cstdint>
#include <iostream>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "evaluator/cuda/cuda_backend.hpp"
#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/graph_edges.hpp"
#include "evaluator/cuda/kernels.hpp"
#include "evaluator/cuda/step_kernels.hpp"

namespace livs::evaluator {

void CudaBackend::mean_to_device(double* out, const float* x, int64_t count) {
  cuda::mean_to_device(stream_, reduce_partials_, out, x, count);
}

void CudaBackend::grad_clip_scale(float* scale_out, double* norm_out, const float* grads, int64_t count,
                                  double max_norm) {
  cuda::grad_clip_scale(stream_, reduce_partials_, scale_out, norm_out, grads, count, max_norm);
}

void CudaBackend::adamw_update_device(float* params, const float* grads, float* m, float* v, int64_t count,
                                      const AdamWStep& constants, const DeviceStepScalars* scalars) {
  cuda::adamw_update_device(stream_, params, grads, m, v, count, constants, scalars);
}

namespace {

// Each distinct message is written once per process: a search would meet the
// same uncapturable operator in many candidates.
void note_once(const std::string& message) {
  static std::mutex mutex;
  static std::set<std::string> reported;
  std::lock_guard lock(mutex);
  if (reported.insert(message).second) std::cerr << message << "\n";
}
void warn_once(const std::string& reason) {
  note_once("warning: a step could not be captured as a CUDA graph (" + reason +
            "); it runs eagerly (reported once per process)");
}

// Run 1: eager, so every scratch buffer reaches its size (growing one
// synchronises and allocates, which a capture cannot hold). Run 2: captured
// on the backend's stream (thread-local mode: other threads' CUDA calls are
// not disturbed), instantiated and launched. Later runs: one graph launch.
// The graph holds the kernels' arguments as they were at capture, which is
// why every per-step value lives in device memory, and why sizes that only
// the device knows (MoE's expert boundaries) are read by the kernels
// themselves. A capture that fails ends the capture and that run is eager;
// the next runs try again, up to kCaptureAttempts captures, and only then
// does the step stay eager (with a warning once per process). Retrying is
// for failures caused by other threads: with several candidates training at
// once (search --workers N), cuBLAS was seen to fail a capture now and then
// (CUBLAS_STATUS_INTERNAL_ERROR in about one of 24 candidates at 8 workers)
// while a later capture of the same step succeeds. A step that cannot be
// captured at all (an operator that reads the device from the host) pays
// for two more failed captures, once.
class GraphStepRunner final : public StepRunner {
 public:
  GraphStepRunner(cudaStream_t stream, std::function<void()> step, bool use_graph)
      : stream_(stream), step_(std::move(step)), use_graph_(use_graph) {}
  ~GraphStepRunner() override {
    if (exec_) (void)cudaGraphExecDestroy(exec_);
  }

  void run() override {
    if (exec_) {
      LIVS_CUDA_CHECK(cudaGraphLaunch(exec_, stream_));
      return;
    }
    if (runs_++ == 0 || !use_graph_) {
      step_();
      return;
    }
    if (const auto failure = capture()) {
      if (++failed_captures_ >= kCaptureAttempts) {
        use_graph_ = false;
        warn_once(*failure);
      }
      step_();
      return;
    }
    LIVS_CUDA_CHECK(cudaGraphLaunch(exec_, stream_));
  }
  bool replays_graph() const override { return exec_ != nullptr; }

 private:
  static constexpr int kCaptureAttempts = 3;

  // Captures and instantiates the step; nullopt when it worked, else why not.
  std::optional<std::string> capture() {
    cudaGraph_t graph = nullptr;
    try {
      LIVS_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
      try {
        step_();
      } catch (...) {
        abandon_capture();
        throw;
      }
      LIVS_CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
      instantiate(graph);
      (void)cudaGraphDestroy(graph);
      return std::nullopt;
    } catch (const std::exception& e) {
      if (graph) (void)cudaGraphDestroy(graph);
      exec_ = nullptr;
      (void)cudaGetLastError();  // capture errors are not sticky; clear the last one
      return std::string(e.what());
    }
  }
  // Instantiates the captured graph, its edges into this backend's kernels
  // made programmatic where LIVSEARCH_CUDA_PDL asks for it (graph_edges.hpp);
  // if the driver refuses that graph, the graph as captured (said once).
  void instantiate(cudaGraph_t graph) {
    const cuda::DependentLaunch mode = cuda::dependent_launch_from_environment();
    if (mode != cuda::DependentLaunch::off) {
      cudaGraph_t edited = nullptr;
      LIVS_CUDA_CHECK(cudaGraphClone(&edited, graph));
      std::optional<std::string> refused;
      try {
        cuda::make_edges_programmatic(edited, mode);
        LIVS_CUDA_CHECK(cudaGraphInstantiate(&exec_, edited, 0));
      } catch (const std::exception& e) {
        refused = e.what();
        exec_ = nullptr;
        (void)cudaGetLastError();
      }
      (void)cudaGraphDestroy(edited);
      if (!refused) return;
      note_once("warning: a step graph with programmatic edges was refused (" + *refused +
                "); its graph runs with ordinary edges (reported once per process)");
    }
    LIVS_CUDA_CHECK(cudaGraphInstantiate(&exec_, graph, 0));
  }

  void abandon_capture() noexcept {
    cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(stream_, &status) == cudaSuccess && status != cudaStreamCaptureStatusNone) {
      cudaGraph_t partial = nullptr;
      (void)cudaStreamEndCapture(stream_, &partial);
      if (partial) (void)cudaGraphDestroy(partial);
    }
    (void)cudaGetLastError();
  }

  cudaStream_t stream_;
  std::function<void()> step_;
  bool use_graph_;
  int runs_ = 0;
  int failed_captures_ = 0;
  cudaGraphExec_t exec_ = nullptr;
};

}  // namespace

std::unique_ptr<StepRunner> CudaBackend::make_step_runner(std::function<void()> step, bool allow_graph) {
  return std::make_unique<GraphStepRunner>(stream_, std::move(step), allow_graph && graphs_enabled_);
}

double CudaBackend::elapsed_ms(const std::function<void()>& run) {
  LIVS_CUDA_CHECK(cudaEventRecord(timer_start_, stream_));
  run();
  LIVS_CUDA_CHECK(cudaEventRecord(timer_stop_, stream_));
  LIVS_CUDA_CHECK(cudaEventSynchronize(timer_stop_));
  float ms = 0.0f;
  LIVS_CUDA_CHECK(cudaEventElapsedTime(&ms, timer_start_, timer_stop_));
  return double(ms);
}

namespace {
// Bytes the device's stream-ordered pool holds without handing them out: it
// keeps freed blocks (cuda_backend.cpp) and grows in large chunks, and
// cudaMemGetInfo counts them as used although the next allocation from the
// pool takes them first.
int64_t idle_pool_bytes(int device) {
  cudaMemPool_t pool = nullptr;
  LIVS_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device));
  std::uint64_t reserved = 0, used = 0;  // the attributes are 64-bit unsigned
  LIVS_CUDA_CHECK(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemCurrent, &reserved));
  LIVS_CUDA_CHECK(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemCurrent, &used));
  return int64_t(reserved) - int64_t(used);
}
}  // namespace

// Free: what cudaMemGetInfo reports plus what the pool holds idle.
MemoryInfo CudaBackend::query_memory_info() {
  std::size_t free_bytes = 0, total_bytes = 0;
  LIVS_CUDA_CHECK(cudaSetDevice(device_));
  LIVS_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  const int64_t idle = async_alloc_ ? idle_pool_bytes(device_) : 0;
  return {int64_t(free_bytes) + idle, int64_t(total_bytes)};
}

// The device's used memory, less what the pool holds idle (as with
// cudaMalloc, cuBLAS's and the graphs' own memory stay counted).
std::optional<int64_t> CudaBackend::device_bytes_in_use() {
  const MemoryInfo info = query_memory_info();
  return info.total_bytes - info.free_bytes;
}

}  // namespace livs::evaluator
