#pragma once
// The interface every LIV operator implements, once, against the Backend.
// An operator file (op_<class>.cpp) holds: the weights (bound by name and
// shape from its genome::OpSpec), the buffers it plans in the model's arena,
// forward, backward, a one-token decode step with its own state, and the
// analytic size of that state. See docs/architecture.md, "Evaluator".
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "evaluator/arena.hpp"
#include "evaluator/backend.hpp"
#include "evaluator/parameters.hpp"
#include "genome/model_spec.hpp"

namespace livs::evaluator {

// The shapes a model is planned for; a zero batch means "not planned".
struct PlanShape {
  int batch = 0;  // training / evaluation: sequences per step
  int seq = 0;    // tokens per sequence
  int decode_batch = 0;
  int64_t decode_context = 0;  // the most tokens a decoded sequence may reach
  int64_t tokens() const { return int64_t(batch) * seq; }
  int64_t max_position() const { return std::max<int64_t>(seq, decode_context); }
};

// What building one operator needs.
class OpContext {
 public:
  OpContext(const genome::OpSpec& spec, int slot, int op_index, int d_model, int slots, double norm_eps,
            ParameterStore& params);

  const genome::OpSpec& spec;
  const int slot, op_index, d_model, slots;
  const double norm_eps;

  // Binds weight `name` (a name of docs/architecture.md's weight table) with
  // the shape the operator computes. The ModelSpec must list it with that
  // shape, as its own weight or as a shared one (featurizer sharing, read from
  // the source operator); anything else throws std::invalid_argument.
  void bind_weight(const std::string& name, std::vector<int64_t> shape, Init init, bool decay, Param* param);
  // Throws unless every weight the ModelSpec lists for this operator was bound.
  void check_all_bound() const;
  std::string describe() const;  // "slot 3 op 0 (sa)" for messages

 private:
  ParameterStore& params_;
  std::vector<std::string> bound_;
};

// What an operator reads in training: fp32 values and, when the backend wants
// GEMM shadows, their bf16 shadow (the model's RMSNorm writes it for x, its
// RMSNorm backward for dy), else nullptr. Converts to the fp32 pointer, so an
// operator that has no use for the shadow reads it as before.
struct OpInput {
  OpInput(const float* values, const void* shadow = nullptr) : data(values), bf16(shadow) {}
  operator const float*() const { return data; }
  const float* data;
  const void* bf16;
};

class Operator {
 public:
  virtual ~Operator() = default;

  // Requests activations, gradient buffers, scratch, decode state and
  // constants for the planned shapes.
  virtual void plan(Arena& arena, const PlanShape& shape) = 0;

  // x: the normed input [tokens, d_model]; it stays untouched until backward.
  // y: the output [tokens, d_model], overwritten.
  virtual void forward(Backend& backend, OpInput x, float* y) = 0;
  // dy: gradient of y. Accumulates into the weights' gradients, and into dx
  // (accumulate_dx) or writes dx (!accumulate_dx: its old contents are never
  // read, so the caller need not zero it first).
  virtual void backward(Backend& backend, OpInput x, OpInput dy, float* dx, bool accumulate_dx) = 0;
  void backward(Backend& backend, OpInput x, OpInput dy, float* dx) { backward(backend, x, dy, dx, true); }

  // Elements of decode state per sequence, analytic (must equal what plan()
  // reserves per sequence at the planned context).
  virtual genome::DecodeState decode_state() const = 0;
  // One token for each of decode_batch sequences: x, y are [decode_batch,
  // d_model]; `position` counts from 0 after Arena::reset_state().
  virtual void decode_step(Backend& backend, const float* x, float* y, int64_t position) = 0;

  // Whether forward or backward reads x.data, its fp32 values, rather than
  // only handing x to GEMMs as an operand with its shadow. Where no operator
  // of a slot does and the backend plans shadows, the model's norm writes
  // only the bf16 shadow and x.data is nullptr.
  virtual bool reads_input_values() const { return true; }

  // An auxiliary training loss of the last forward (MoE load balancing);
  // backward already includes its gradient. It may live in device memory and
  // be read back here, so it is asked for outside a step only.
  virtual double auxiliary_loss() const { return 0.0; }
  // Feature sharing (sa: K and V; linattn: K, V, decay and state): this
  // operator reads `source`'s features instead of its own and sends their
  // gradients back to it. The model calls it once, before plan(). The source
  // is an earlier slot, so its forward/decode runs first and its backward
  // after ours; having sharers, it zeroes its feature gradients in forward
  // (and its backward adds into them).
  virtual void share_features_from(Operator& source);
};

// The input gradient of a backward, taken by its contributions in the order
// they are made: the first one writes dx where the caller asked for that
// (accumulate = false), every later one adds into it.
class InputGradient {
 public:
  InputGradient(float* dx, bool accumulate) : data_(dx), accumulate_(accumulate) {}
  float* data() const { return data_; }
  // The accumulate flag of the next contribution (which the caller then makes).
  bool next() {
    const bool accumulate = accumulate_;
    accumulate_ = true;
    return accumulate;
  }

 private:
  float* data_;
  bool accumulate_;
};

// Rounds src into its bf16 shadow dst (planned with Arena::reserve_gemm_shadow)
// and returns dst for a GemmOperand; nullptr (no shadow) when none was planned.
inline const void* round_shadow(Backend& backend, void* dst, const float* src, int64_t count) {
  if (!dst) return nullptr;
  backend.round_to_bf16(dst, src, count);
  return dst;
}

// The shadow of an input: the caller's, else the input rounded into own16
// (planned by the operator as a fallback), else nullptr.
inline const void* shadow_of(Backend& backend, OpInput x, void* own16, int64_t count) {
  return x.bf16 ? x.bf16 : round_shadow(backend, own16, x.data, count);
}

// The operator for spec.cls; throws std::invalid_argument for a class or form
// the evaluator does not implement yet.
std::unique_ptr<Operator> make_operator(OpContext& context);

// One factory per operator file.
std::unique_ptr<Operator> make_attention(OpContext& context);
std::unique_ptr<Operator> make_swiglu(OpContext& context);
// Convolutions and scans (op_rec.cpp, op_ssm.cpp, op_gconv.cpp).
std::unique_ptr<Operator> make_rec(OpContext& context);
std::unique_ptr<Operator> make_ssm(OpContext& context);
std::unique_ptr<Operator> make_ssd(OpContext& context);  // ssm in Mamba-2's form (op_ssd.cpp)
std::unique_ptr<Operator> make_gconv(OpContext& context);
std::unique_ptr<Operator> make_linear_attention(OpContext& context);
std::unique_ptr<Operator> make_moe(OpContext& context);
std::unique_ptr<Operator> make_deltanet(OpContext& context);  // op_deltanet.cpp

}  // namespace livs::evaluator
