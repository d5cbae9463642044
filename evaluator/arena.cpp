#include "evaluator/arena.hpp"

#include <new>
#include <stdexcept>
#include <string>

#include "common/candidate_control.hpp"

namespace livs::evaluator {

namespace {
constexpr int64_t kAlign = 64;  // bytes: every buffer starts on a cache line
int64_t round_up(int64_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }
std::string mebibytes(int64_t bytes) { return std::to_string((bytes + (1 << 20) - 1) >> 20); }
}  // namespace

int64_t workspace_margin_bytes(int64_t plan_bytes) { return (int64_t(64) << 20) + plan_bytes / 8; }

Arena::~Arena() {
  if (!base_) return;
  // A destructor must not throw: after a sticky CUDA error every call fails,
  // and this runs while that error unwinds (which would end the process).
  // The memory then goes with the broken context when the pool rebuilds it
  // (evaluator/backend_pool.hpp).
  try {
    backend_.free(base_);
  } catch (...) {
  }
}

void Arena::reserve(float** where, int64_t count) {
  if (base_) throw std::logic_error("Arena: reserve after allocate");
  scratch_.push_back({reinterpret_cast<void**>(where), round_up(count * int64_t(sizeof(float)))});
}

void Arena::reserve_tokens(int32_t** where, int64_t count) {
  if (base_) throw std::logic_error("Arena: reserve after allocate");
  scratch_.push_back({reinterpret_cast<void**>(where), round_up(count * int64_t(sizeof(int32_t)))});
}

void Arena::reserve_bytes(void** where, int64_t bytes) {
  if (base_) throw std::logic_error("Arena: reserve after allocate");
  scratch_.push_back({where, round_up(bytes)});
}

void Arena::reserve_gemm_shadow(void** where, int64_t count) {
  *where = nullptr;
  if (backend_.wants_gemm_shadows()) reserve_bytes(where, count * 2);
}

void Arena::reserve_state(float** where, int64_t count) {
  if (base_) throw std::logic_error("Arena: reserve after allocate");
  state_.push_back({reinterpret_cast<void**>(where), round_up(count * int64_t(sizeof(float)))});
  state_requested_ += count;
}

void Arena::reserve_constant(float** where, std::vector<float> values) {
  if (base_) throw std::logic_error("Arena: reserve after allocate");
  constants_.push_back({where, std::move(values)});
}

int64_t Arena::allocate() {
  if (base_) throw std::logic_error("Arena: allocated twice");
  int64_t total = 0;
  for (const auto& r : state_) total += r.bytes;  // state first: one contiguous range to reset
  const int64_t state_bytes = total;
  for (const auto& r : scratch_) total += r.bytes;
  for (const auto& c : constants_) total += round_up(int64_t(c.values.size() * sizeof(float)));
  const int64_t margin = workspace_margin_bytes(total);
  const MemoryInfo memory = backend_.memory_info();
  if (total + margin > memory.free_bytes)
    throw OutOfMemory("out of memory: the plan needs " + mebibytes(total + margin) + " MiB (" +
                      mebibytes(total) + " MiB planned + " + mebibytes(margin) +
                      " MiB workspace margin), the device has " + std::to_string(memory.free_bytes >> 20) +
                      " MiB free");
  // An injected out-of-memory fault (tests) takes the path of a backend
  // whose allocation fails: CPU malloc and cudaMalloc both throw bad_alloc.
  if (injected_fault() == InjectedFault::oom) throw std::bad_alloc();
  base_ = backend_.allocate(static_cast<std::size_t>(total == 0 ? kAlign : total));
  bytes_ = total;
  char* cursor = static_cast<char*>(base_);
  state_base_ = reinterpret_cast<float*>(cursor);
  state_count_ = state_bytes / int64_t(sizeof(float));
  for (const auto& r : state_) {
    *r.where = cursor;
    cursor += r.bytes;
  }
  for (const auto& r : scratch_) {
    *r.where = cursor;
    cursor += r.bytes;
  }
  for (auto& c : constants_) {
    *c.where = reinterpret_cast<float*>(cursor);
    backend_.copy_to_device(cursor, c.values.data(), c.values.size() * sizeof(float));
    cursor += round_up(int64_t(c.values.size() * sizeof(float)));
    c.values = {};
  }
  return bytes_;
}

void Arena::reset_state() {
  if (state_count_ > 0) backend_.fill(state_base_, state_count_, 0.0f);
}

}  // namespace livs::evaluator
