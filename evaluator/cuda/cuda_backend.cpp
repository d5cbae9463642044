// CudaBackend: device, stream, cuBLAS handle and workspaces, memory.
#include "evaluator/cuda/cuda_backend.hpp"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>

#include "common/environment_switch.hpp"
#include "evaluator/cuda/cuda_check.hpp"
#include "evaluator/cuda/kernels.hpp"

namespace livs::evaluator {

namespace {
// cuBLAS would otherwise allocate its own workspace on first use; giving it
// one up front keeps every step allocation-free (and graph-capturable).
constexpr std::size_t kCublasWorkspaceBytes = 32u << 20;
}  // namespace

namespace cuda {
int visible_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();  // no driver or no device: not an error here
    return 0;
  }
  return count;
}

void set_current_device(int device) { LIVS_CUDA_CHECK(cudaSetDevice(device)); }
}  // namespace cuda

GemmPrecision gemm_precision_from_environment() {
  const char* value = std::getenv("LIVSEARCH_CUDA_FP32");
  return value && std::strcmp(value, "1") == 0 ? GemmPrecision::fp32 : GemmPrecision::bf16;
}

bool cuda_graphs_from_environment() { return enabled_unless_zero("LIVSEARCH_CUDA_GRAPHS"); }

// Allocation is stream-ordered (cudaMallocAsync / cudaFreeAsync from the
// device's memory pool) unless LIVSEARCH_CUDA_ASYNC_ALLOC=0. cudaFree waits
// for the whole device, so with several candidates training at once on one
// GPU (search --workers N) every model built or freed by one worker stalled
// until the others' queued work drained; the stream-ordered calls order the
// free after this backend's own stream only. The pool keeps what is freed
// (its release threshold raised from 0, unless LIVSEARCH_CUDA_KEEP_POOL=0):
// at 0 it hands freed memory back to the driver at the next synchronisation,
// so every candidate unmapped its predecessor's memory and mapped its own
// anew. memory_info() counts what the pool holds idle as free.
namespace {
void keep_pool_memory(int device) {
  if (!enabled_unless_zero("LIVSEARCH_CUDA_KEEP_POOL")) return;
  cudaMemPool_t pool = nullptr;
  LIVS_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device));
  std::uint64_t threshold = std::numeric_limits<std::uint64_t>::max();
  LIVS_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));
}
}  // namespace

CudaBackend::CudaBackend(int device, GemmPrecision precision)
    : device_(device),
      precision_(precision),
      graphs_enabled_(cuda_graphs_from_environment()),
      async_alloc_(enabled_unless_zero("LIVSEARCH_CUDA_ASYNC_ALLOC")) {
  LIVS_CUDA_CHECK(cudaSetDevice(device_));
  if (async_alloc_) keep_pool_memory(device_);
  try {
    cudaStream_t stream = nullptr;
    LIVS_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    stream_ = stream;
    cublasHandle_t handle = nullptr;
    LIVS_CUBLAS_CHECK(cublasCreate(&handle));
    cublas_ = handle;
    LIVS_CUBLAS_CHECK(cublasSetStream(handle, stream));
    cublas_workspace_ = device_malloc(kCublasWorkspaceBytes);
    LIVS_CUBLAS_CHECK(cublasSetWorkspace(handle, cublas_workspace_, kCublasWorkspaceBytes));
    reduce_partials_ = static_cast<double*>(device_malloc(sizeof(double) * (cuda::kSumOfSquaresBlocks + 1)));
    synchronize();  // the allocations are ready before any other stream could use them
    cudaEvent_t start = nullptr, stop = nullptr;
    LIVS_CUDA_CHECK(cudaEventCreate(&start));
    timer_start_ = start;
    LIVS_CUDA_CHECK(cudaEventCreate(&stop));
    timer_stop_ = stop;
  } catch (...) {
    release();  // a throwing constructor runs no destructor
    throw;
  }
}

CudaBackend::~CudaBackend() { release(); }

void CudaBackend::inject_device_fault() {
  cuda::launch_illegal_address_kernel(static_cast<cudaStream_t>(stream_));
  synchronize();  // throws with the sticky error's name
}

// A non-sticky error is cleared by reading it; a sticky one is returned by
// every later call, so a device-wide synchronize after clearing still fails.
bool CudaBackend::device_context_lost() {
  if (cudaSetDevice(device_) != cudaSuccess) return true;
  (void)cudaGetLastError();
  const cudaError_t error = cudaDeviceSynchronize();
  (void)cudaGetLastError();
  return error != cudaSuccess;
}

void CudaBackend::release() noexcept {
  // Errors are ignored here: a destructor must not throw, and the context may
  // already be broken by the failure that is unwinding.
  if (stream_) (void)cudaStreamSynchronize(stream_);
  for (Scratch* s :
       {&attention_delta_, &column_partials_, &embedding_sort_, &column_sums_, &scan_scratch_,
        &linear_attention_scratch_, &gemm_a_bf16_, &gemm_b_bf16_, &lm_head_x_bf16_, &lm_head_table_bf16_,
        &attention_decode_partials_, &moe_dispatch_places_, &grouped_partials_}) {
    release_memory(s->data);
    *s = {};
  }
  release_memory(reduce_partials_);
  for (const PinnedBlock& block : idle_pinned_) (void)cudaFreeHost(block.data);
  idle_pinned_.clear();
  if (cublas_) (void)cublasDestroy(cublas_);
  release_memory(cublas_workspace_);
  if (stream_) (void)cudaStreamSynchronize(stream_);  // the stream-ordered frees are done
  if (timer_start_) (void)cudaEventDestroy(timer_start_);
  if (timer_stop_) (void)cudaEventDestroy(timer_stop_);
  timer_start_ = timer_stop_ = nullptr;
  if (stream_) (void)cudaStreamDestroy(stream_);
  reduce_partials_ = nullptr;
  cublas_ = nullptr;
  cublas_workspace_ = nullptr;
  stream_ = nullptr;
}

void* CudaBackend::device_malloc(std::size_t bytes) {
  void* p = nullptr;
  if (async_alloc_)
    LIVS_CUDA_CHECK(cudaMallocAsync(&p, bytes == 0 ? 256 : bytes, stream_));
  else
    LIVS_CUDA_CHECK(cudaMalloc(&p, bytes == 0 ? 256 : bytes));
  return p;
}

// Errors ignored: for unwinding paths (the destructor, a failed allocate).
void CudaBackend::release_memory(void* pointer) noexcept {
  if (!pointer) return;
  if (async_alloc_ && stream_)
    (void)cudaFreeAsync(pointer, stream_);
  else
    (void)cudaFree(pointer);
}

// Kernels still queued on this stream may read the buffer: the stream-ordered
// free runs after them; cudaFree needs the stream drained first.
void CudaBackend::device_free(void* pointer) {
  if (!pointer) return;
  if (async_alloc_) {
    LIVS_CUDA_CHECK(cudaFreeAsync(pointer, stream_));
  } else {
    synchronize();
    LIVS_CUDA_CHECK(cudaFree(pointer));
  }
}

void* CudaBackend::scratch(Scratch& s, std::size_t bytes) {
  if (bytes <= s.bytes) return s.data;
  // Scratch grows in a step's first, eager run. Growing during a capture
  // would put the allocation into the graph: the runner falls back to eager.
  cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  LIVS_CUDA_CHECK(cudaStreamIsCapturing(stream_, &capturing));
  if (capturing != cudaStreamCaptureStatusNone)
    throw std::runtime_error("CUDA scratch grew from " + std::to_string(s.bytes) + " to " +
                             std::to_string(bytes) + " bytes while a step was being captured");
  device_free(s.data);
  s = {};
  s.data = device_malloc(bytes);
  s.bytes = bytes;
  return s.data;
}

void* CudaBackend::allocate(std::size_t bytes) {
  void* p = device_malloc(bytes);
  try {
    LIVS_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, stream_));
    synchronize();  // callers may hand the buffer to the host or another stream
  } catch (...) {
    release_memory(p);
    throw;
  }
  return p;
}

void CudaBackend::free(void* pointer) { device_free(pointer); }

// Synchronous: the host buffer may be reused as soon as this returns.
void CudaBackend::copy_to_device(void* device_dst, const void* host_src, std::size_t bytes) {
  if (bytes == 0) return;
  LIVS_CUDA_CHECK(cudaMemcpyAsync(device_dst, host_src, bytes, cudaMemcpyHostToDevice, stream_));
  synchronize();
}

void CudaBackend::copy_to_host(void* host_dst, const void* device_src, std::size_t bytes) {
  if (bytes == 0) return;
  LIVS_CUDA_CHECK(cudaMemcpyAsync(host_dst, device_src, bytes, cudaMemcpyDeviceToHost, stream_));
  synchronize();
}

void CudaBackend::copy(float* dst, const float* src, int64_t count) {
  if (count <= 0) return;
  LIVS_CUDA_CHECK(
      cudaMemcpyAsync(dst, src, std::size_t(count) * sizeof(float), cudaMemcpyDeviceToDevice, stream_));
}

void CudaBackend::fill(float* dst, int64_t count, float value) { cuda::fill(stream_, dst, count, value); }

void CudaBackend::synchronize() { LIVS_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

}  // namespace livs::evaluator
