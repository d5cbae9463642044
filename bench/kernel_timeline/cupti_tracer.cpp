#include "bench/kernel_timeline/cupti_tracer.hpp"

#if defined(LIVSEARCH_BENCH_CUPTI)
#include <cupti_activity.h>
#include <cupti_callbacks.h>
#include <cupti_result.h>
#include <cupti_version.h>
#include <dlfcn.h>

#include <atomic>
#include <cstdlib>
#endif

#include <utility>

namespace livs::bench {

#if defined(LIVSEARCH_BENCH_CUPTI)
namespace {

// The CUPTI functions used, looked up in the library opened at run time.
struct Cupti {
  decltype(&cuptiGetVersion) get_version = nullptr;
  decltype(&cuptiGetResultString) result_string = nullptr;
  decltype(&cuptiActivityRegisterCallbacks) register_callbacks = nullptr;
  decltype(&cuptiActivityEnable) enable = nullptr;
  decltype(&cuptiActivityDisable) disable = nullptr;
  decltype(&cuptiActivityFlushAll) flush_all = nullptr;
  decltype(&cuptiActivityGetNextRecord) next_record = nullptr;
  decltype(&cuptiActivityGetNumDroppedRecords) dropped_records = nullptr;
  decltype(&cuptiGetTimestamp) timestamp = nullptr;
  decltype(&cuptiGetCallbackName) callback_name = nullptr;
  std::string error;  // empty: loaded
};

template <class F>
bool look_up(void* library, const char* symbol, F& out) {
  out = reinterpret_cast<F>(dlsym(library, symbol));
  return out != nullptr;
}

const Cupti& cupti() {
  static const Cupti loaded = [] {
    Cupti c;
    void* library = nullptr;
    // The staged copy (same release as the header this was compiled
    // against) first; then the toolkit's usual places.
    for (const char* name : {"libcupti.so.13", "/usr/local/cuda/extras/CUPTI/lib64/libcupti.so.13",
                             "/usr/local/cuda/lib64/libcupti.so.13"})
      if ((library = dlopen(name, RTLD_NOW | RTLD_LOCAL))) break;
    if (!library) {
      c.error = "libcupti.so.13 not found (stage it beside the binary: scripts/gpu-check.sh build)";
      return c;
    }
    const bool all = look_up(library, "cuptiGetVersion", c.get_version) &&
                     look_up(library, "cuptiGetResultString", c.result_string) &&
                     look_up(library, "cuptiActivityRegisterCallbacks", c.register_callbacks) &&
                     look_up(library, "cuptiActivityEnable", c.enable) &&
                     look_up(library, "cuptiActivityDisable", c.disable) &&
                     look_up(library, "cuptiActivityFlushAll", c.flush_all) &&
                     look_up(library, "cuptiActivityGetNextRecord", c.next_record) &&
                     look_up(library, "cuptiActivityGetNumDroppedRecords", c.dropped_records) &&
                     look_up(library, "cuptiGetTimestamp", c.timestamp) &&
                     look_up(library, "cuptiGetCallbackName", c.callback_name);
    if (!all) {
      c.error = "libcupti lacks a function this tracer calls";
      return c;
    }
    // The records are read with this header's structures: only the library
    // of the same release is sure to write those (the staged copy is).
    uint32_t version = 0;
    if (c.get_version(&version) != CUPTI_SUCCESS || version != CUPTI_API_VERSION)
      c.error = "libcupti's API version " + std::to_string(version) + " is not this build's (" +
                std::to_string(CUPTI_API_VERSION) +
                "): stage the toolkit's own copy (scripts/gpu-check.sh build)";
    return c;
  }();
  return loaded;
}

std::string describe(CUptiResult result) {
  const char* text = nullptr;
  if (cupti().result_string && cupti().result_string(result, &text) == CUPTI_SUCCESS && text) return text;
  return "CUPTI error " + std::to_string(int(result));
}

std::atomic<KernelTracer*> active{nullptr};

constexpr std::size_t kBufferBytes = std::size_t(8) << 20;
constexpr CUpti_ActivityKind kKinds[] = {CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL, CUPTI_ACTIVITY_KIND_MEMCPY,
                                         CUPTI_ACTIVITY_KIND_MEMSET, CUPTI_ACTIVITY_KIND_RUNTIME};

void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, kBufferBytes));
  *size = *buffer ? kBufferBytes : 0;
  *max_records = 0;  // as many as fit
}

void CUPTIAPI buffer_completed(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t valid_bytes) {
  if (KernelTracer* tracer = active.load()) tracer->add_records(buffer, valid_bytes);
  std::free(buffer);
}

std::string runtime_call_name(uint32_t cbid) {
  const char* name = nullptr;
  if (cupti().callback_name(CUPTI_CB_DOMAIN_RUNTIME_API, cbid, &name) == CUPTI_SUCCESS && name) {
    std::string text = name;  // "cudaStreamSynchronize_v3020": the version suffix says nothing here
    if (const auto at = text.find("_v"); at != std::string::npos) text.erase(at);
    return text;
  }
  return "runtime call " + std::to_string(cbid);
}

const char* copy_name(uint8_t kind) {
  switch (kind) {
    case CUPTI_ACTIVITY_MEMCPY_KIND_HTOD:
      return "copy host to device";
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOH:
      return "copy device to host";
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOD:
      return "copy device to device";
    default:
      return "copy (other)";
  }
}

}  // namespace

std::unique_ptr<KernelTracer> KernelTracer::start(std::string& why_not) {
  if (!cupti().error.empty()) {
    why_not = cupti().error;
    return nullptr;
  }
  std::unique_ptr<KernelTracer> tracer(new KernelTracer());
  KernelTracer* expected = nullptr;
  if (!active.compare_exchange_strong(expected, tracer.get())) {
    why_not = "a kernel tracer is already running in this process";
    return nullptr;
  }
  CUptiResult result = cupti().register_callbacks(buffer_requested, buffer_completed);
  for (const CUpti_ActivityKind kind : kKinds)
    if (result == CUPTI_SUCCESS) result = cupti().enable(kind);
  if (result != CUPTI_SUCCESS) {
    why_not = "CUPTI refused to trace: " + describe(result);
    for (const CUpti_ActivityKind kind : kKinds) (void)cupti().disable(kind);
    active.store(nullptr);
    return nullptr;
  }
  return tracer;
}

KernelTracer::~KernelTracer() {
  for (const CUpti_ActivityKind kind : kKinds) (void)cupti().disable(kind);
  (void)cupti().flush_all(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
  active.store(nullptr);
}

KernelTracer::Trace KernelTracer::take() {
  // The flush hands every buffer to buffer_completed, on this thread or
  // CUPTI's; the lock is taken only after it.
  (void)cupti().flush_all(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
  size_t lost = 0;
  const std::size_t dropped = cupti().dropped_records(nullptr, 0, &lost) == CUPTI_SUCCESS ? lost : 0;
  std::lock_guard lock(mutex_);
  Trace out = std::exchange(collected_, Trace{});
  out.dropped = dropped;
  return out;
}

uint64_t KernelTracer::now_ns() const {
  uint64_t t = 0;
  (void)cupti().timestamp(&t);
  return t;
}

void KernelTracer::add_records(unsigned char* buffer, std::size_t valid_bytes) {
  std::lock_guard lock(mutex_);
  CUpti_Activity* record = nullptr;
  while (cupti().next_record(buffer, valid_bytes, &record) == CUPTI_SUCCESS) {
    switch (record->kind) {
      case CUPTI_ACTIVITY_KIND_KERNEL:
      case CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL: {
        const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(record);
        // CUPTI keeps one name pointer per function: demangle each once.
        auto [shown, fresh] = kernel_names_.try_emplace(k->name);
        if (fresh) shown->second = short_kernel_name(k->name ? k->name : "?");
        collected_.device.add(k->start, k->end, k->streamId, shown->second);
        break;
      }
      case CUPTI_ACTIVITY_KIND_MEMCPY: {
        const auto* m = reinterpret_cast<const CUpti_ActivityMemcpy6*>(record);
        collected_.device.add(m->start, m->end, m->streamId, copy_name(m->copyKind));
        break;
      }
      case CUPTI_ACTIVITY_KIND_MEMSET: {
        const auto* m = reinterpret_cast<const CUpti_ActivityMemset4*>(record);
        collected_.device.add(m->start, m->end, m->streamId, "fill (memset)");
        break;
      }
      case CUPTI_ACTIVITY_KIND_RUNTIME: {
        const auto* a = reinterpret_cast<const CUpti_ActivityAPI*>(record);
        collected_.host_calls.add(a->start, a->end, a->threadId, runtime_call_name(a->cbid));
        break;
      }
      default:
        break;
    }
  }
}

#else  // built without CUDA: there is no device to trace

std::unique_ptr<KernelTracer> KernelTracer::start(std::string& why_not) {
  why_not = "this build has no CUDA backend";
  return nullptr;
}
KernelTracer::~KernelTracer() = default;
KernelTracer::Trace KernelTracer::take() {
  std::lock_guard lock(mutex_);
  return std::exchange(collected_, Trace{});
}
uint64_t KernelTracer::now_ns() const { return 0; }
void KernelTracer::add_records(unsigned char*, std::size_t) {}

#endif

}  // namespace livs::bench
