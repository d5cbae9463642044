#pragma once
// The memory plan of a model: everything a model needs (parameters, their
// gradients, AdamW's two moments, activations, scratch, decode state and
// constant tables) is requested while the model is built and then allocated
// in ONE backend allocation. Nothing is allocated afterwards, so the training
// step allocates nothing (and is capturable as a CUDA graph later).
//
// Requests hand over the address of a pointer; allocate() writes the final
// pointer there. Owners must therefore not move (operators live behind
// unique_ptr).
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "evaluator/backend.hpp"

namespace livs::evaluator {

// The plan does not fit the device's free memory: thrown by Arena::allocate
// before anything is allocated, so the trainer reports it as the
// candidate's failure instead of crashing in the middle of a step.
class OutOfMemory : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What allocate() asks to be free beyond the plan: the backend's scratch
// buffers (attention, column sums, scan carries) grow at the first step and
// CUDA graphs need a little memory of their own. 64 MiB plus an eighth of the
// plan covers every preset measured (docs/architecture.md).
int64_t workspace_margin_bytes(int64_t plan_bytes);

class Arena {
 public:
  explicit Arena(Backend& backend) : backend_(backend) {}
  ~Arena();
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  // Scratch and activations, fp32 elements.
  void reserve(float** where, int64_t count);
  // Token ids.
  void reserve_tokens(int32_t** where, int64_t count);
  // Raw bytes (the step scalars).
  void reserve_bytes(void** where, int64_t bytes);
  // A bf16 shadow of `count` GEMM operand values (GemmOperand), planned only
  // when the backend wants shadows; else *where stays nullptr.
  void reserve_gemm_shadow(void** where, int64_t count);
  bool gemm_shadows() const { return backend_.wants_gemm_shadows(); }
  // Decode state: zeroed by reset_state().
  void reserve_state(float** where, int64_t count);
  // A constant table, copied from the host at allocation (RoPE's cos/sin, ...).
  void reserve_constant(float** where, std::vector<float> values);

  // Lays out every request, checks that the plan plus the workspace margin
  // fits the backend's free memory (else throws OutOfMemory, "out of memory:
  // the plan needs X MiB, ..."), allocates once, fills in the pointers and
  // copies the constants. Returns the bytes allocated.
  int64_t allocate();
  bool allocated() const { return base_ != nullptr; }
  void reset_state();
  // Decode-state elements requested (without the alignment padding between buffers).
  int64_t state_elements() const { return state_requested_; }
  int64_t bytes() const { return bytes_; }

 private:
  struct Request {
    void** where;
    int64_t bytes;
  };
  struct Constant {
    float** where;
    std::vector<float> values;
  };
  Backend& backend_;
  std::vector<Request> scratch_, state_;
  std::vector<Constant> constants_;
  void* base_ = nullptr;
  float* state_base_ = nullptr;
  int64_t state_count_ = 0;      // elements in the state range, padding included (what reset_state zeroes)
  int64_t state_requested_ = 0;  // elements requested
  int64_t bytes_ = 0;
};

}  // namespace livs::evaluator
