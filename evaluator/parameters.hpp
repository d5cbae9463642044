#pragma once
// The model's parameters: declared by the operators (by name and shape,
// checked against the ModelSpec), then laid out in one contiguous block with
// their gradients and AdamW moments in three more blocks of the same layout.
// Weights that decay come first, so AdamW runs on two contiguous groups.
#include <cstdint>
#include <string>
#include <vector>

#include "evaluator/backend.hpp"

namespace livs::evaluator {

// What an operator holds for one weight: where its values and gradient live,
// and its bf16 shadow when the backend wants GEMM shadows (Model refreshes the
// shadows of every weight at the start of each training or evaluation
// forward; decode reads the fp32 values).
struct Param {
  float* value = nullptr;
  float* grad = nullptr;
  const void* value16 = nullptr;
  // Rows x cols of this weight from element `offset`, with its shadow.
  GemmOperand operand(int64_t rows, int64_t cols, int64_t offset = 0) const {
    return {value + offset, rows, cols, value16 ? static_cast<const uint16_t*>(value16) + offset : nullptr};
  }
};

enum class Init {
  normal,          // N(0, 0.02): projections and the embedding
  out_projection,  // N(0, 0.02 / sqrt(2 * slots)): projections back into the residual stream
  ones,            // norm gains
  zeros,
  // Convolutions and scans (rec, ssm, gconv):
  fan_in_uniform,  // U(-1/sqrt(f), 1/sqrt(f)), f the last dimension: conv taps (PyTorch Conv1d), Mamba
                   // dt_proj
  rglru_lambda,    // RG-LRU: exp(-8 softplus(lambda)), the decay at r = 1, uniform in [0.9, 0.999] (Griffin)
  ssm_a_log,       // S4D-real: a_log[c, n] = log(n + 1), so A_n = -(n + 1) (Mamba)
  ssm_dt_bias,     // softplus(dt_bias) log-uniform in [1e-3, 1e-1] (Mamba)
  ssd_a_log,       // Mamba-2: a_log[h] = log(A_h), A_h uniform in [1, 16]
};

struct ParamGroup {
  int64_t offset = 0;  // elements from the start of the block
  int64_t count = 0;
};

class ParameterStore {
 public:
  // A new weight with a unique full name ("slot3.op0.wq"); `bind` receives its pointers.
  void declare(const std::string& full_name, std::vector<int64_t> shape, Init init, bool decay, Param* bind);
  // Another user of an existing weight (featurizer sharing): gradients of every user accumulate.
  void share(const std::string& full_name, const std::vector<int64_t>& shape, Param* bind);
  bool contains(const std::string& full_name) const;

  int64_t count() const { return count_; }
  const ParamGroup& decayed() const { return decayed_; }
  const ParamGroup& not_decayed() const { return not_decayed_; }

  // Lays the weights out (decayed first, each in declaration order) and binds
  // every user's pointers into `values` and `grads` (each count() elements)
  // and `values16` (count() bf16 shadows, or nullptr: none).
  void bind(float* values, float* grads, const void* values16 = nullptr);
  // Draws every weight from its own stream derive_seed(seed, full_name), so a
  // weight's initial values do not depend on what else the model holds.
  void initialize(Backend& backend, uint64_t seed, int slots) const;

  struct Entry {
    std::string name;
    std::vector<int64_t> shape;
    int64_t numel = 0;
    Init init = Init::normal;
    bool decay = true;
    int64_t offset = 0;
    std::vector<Param*> users;
  };
  const std::vector<Entry>& entries() const { return entries_; }
  const Entry* entry(const std::string& full_name) const;  // nullptr when there is none

 private:
  Entry* find(const std::string& full_name);
  std::vector<Entry> entries_;
  int64_t count_ = 0;
  ParamGroup decayed_, not_decayed_;
  float* values_ = nullptr;
};

std::string shape_to_string(const std::vector<int64_t>& shape);

// The store's full names: "slot3.op0.wq" (a weight of op 0 of slot 3),
// "slot3.norm" (a slot's own). Each names its weight's initialisation stream
// (derive_seed(seed, name)), so changing them would change every run.
std::string parameter_name(int slot, int op, const std::string& local);
std::string parameter_name(int slot, const std::string& local);

}  // namespace livs::evaluator
