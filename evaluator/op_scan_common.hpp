#pragma once
// Small pieces shared by the convolution and scan operators (op_rec.cpp,
// op_ssm.cpp, op_gconv.cpp): a linear map through a block of rows of a weight
// (several projections live in one weight, e.g. Mamba's in_proj = [x; z]),
// the short convolution and the differential combination that rec and ssm
// both put around their scan, and the buffer bookkeeping of a training pass
// and a decode pass.
#include <cstdint>
#include <initializer_list>

#include "evaluator/arena.hpp"
#include "evaluator/backend.hpp"
#include "evaluator/operator.hpp"
#include "evaluator/parameters.hpp"

namespace livs::evaluator {

// The differential form: the inner channels come in two halves and
// y = y_1 - (kDiffLambdaInit + diff_lambda) * y_2 per channel, diff_lambda
// starting at zero (the Differential Transformer's lambda_init, as sa and linattn use).
constexpr float kDiffLambdaInit = 0.8f;

// Rows [first_row, first_row + rows) of a weight [*, cols]: y = x W_block^T.
struct WeightRows {
  const Param* param = nullptr;
  int64_t first_row = 0, rows = 0, cols = 0;

  const float* value() const { return param->value + first_row * cols; }
  float* grad() const { return param->grad + first_row * cols; }
  // The block with its bf16 shadow, so bf16 products round nothing.
  GemmOperand operand() const { return param->operand(rows, cols, first_row * cols); }

  // x and dy carry the model's bf16 shadows when they are the operator's own
  // input or output gradient (OpInput), so those GEMMs round nothing.
  void forward(Backend& be, float* y, OpInput x, int64_t n) const {
    be.matmul({y, n, rows}, {x.data, n, cols, x.bf16}, operand());
  }
  // dW_block += dy^T x; dx += dy W_block (dx = dy W_block when !accumulate_dx:
  // the first writer of a gradient buffer needs no zeroing before it).
  void backward(Backend& be, OpInput dy, OpInput x, float* dx, int64_t n, bool accumulate_dx = true) const {
    be.linear_backward({grad(), rows, cols}, {dx, n, cols}, {dy.data, n, rows, dy.bf16},
                       {x.data, n, cols, x.bf16}, operand(), accumulate_dx);
  }
  // The same into an operator's input gradient, as its next contribution.
  void backward(Backend& be, OpInput dy, OpInput x, InputGradient& dx, int64_t n) const {
    backward(be, dy, x, dx.data(), n, dx.next());
  }
};

// The short depthwise causal convolution in front of rec's and ssm's scans:
// weight [channels, kernel] and bias [channels], with its decode state (the
// last kernel-1 inputs of each sequence, [decode_batch, kernel-1, channels]).
struct ConvBranch {
  const Param* weight = nullptr;
  const Param* bias = nullptr;
  int64_t channels = 0, kernel = 0;
  float* state = nullptr;

  ConvShape shape(int batch, int seq) const { return {batch, seq, int(channels), int(kernel)}; }
  int64_t state_floats() const { return (kernel - 1) * channels; }
  void plan_state(Arena& arena, int64_t decode_batch) {
    arena.reserve_state(&state, decode_batch * state_floats());
  }
  // Training (no state, zero history) or decode (through `state`).
  void forward(Backend& be, float* y, const float* x, int batch, int seq, bool decode) const {
    be.causal_conv_forward(y, x, weight->value, bias->value, decode ? state : nullptr, shape(batch, seq));
  }
  // dx = ... (written: the conv is its only writer in every scan op), and
  // the weight and bias gradients (+=).
  void backward(Backend& be, float* dx, const float* dy, const float* x, int batch, int seq) const {
    be.causal_conv_backward(dx, weight->grad, bias->grad, dy, x, weight->value, shape(batch, seq),
                            /*accumulate_dx=*/false);
  }
};

// The differential form of the scanned channels: [rows, 2W] -> [rows, W],
// out = in_1 - (kDiffLambdaInit + lambda) in_2; without it the scan's output
// is used as it is. `mixed` is the combined buffer (differential only).
struct DifferentialHalves {
  const Param* lambda = nullptr;  // null: not differential
  int64_t width = 0;              // W, the channels after combination

  bool on() const { return lambda != nullptr; }
  const float* combined(const float* mixed, const float* scanned) const { return on() ? mixed : scanned; }
  // What the gate multiplies: `mixed` (written here) or the scan's output itself.
  const float* forward(Backend& be, float* mixed, const float* scanned, int64_t rows) const {
    if (!on()) return scanned;
    be.halves_difference_forward({mixed, rows, width}, {scanned, rows, 2 * width}, lambda->value,
                                 kDiffLambdaInit);
    return mixed;
  }
  // `gate_backward(dcombined)` WRITES the gradient of what forward()
  // returned into dcombined (over whatever it held); this routes it into
  // dscanned (and lambda's grad), which is written too: no zeroing before.
  template <class GateBackward>
  void backward(Backend& be, GateBackward gate_backward, float* dscanned, float* dmixed, const float* scanned,
                int64_t rows) const {
    if (!on()) {
      gate_backward(dscanned);
      return;
    }
    gate_backward(dmixed);
    be.fill(dscanned, rows * 2 * width, 0.0f);  // halves_difference_backward adds into it
    be.halves_difference_backward({dscanned, rows, 2 * width}, lambda->grad, {dmixed, rows, width},
                                  {scanned, rows, 2 * width}, lambda->value, kDiffLambdaInit);
  }
};

// Reserves `count` floats for each buffer.
inline void reserve_all(Arena& arena, std::initializer_list<float**> buffers, int64_t count) {
  for (float** b : buffers) arena.reserve(b, count);
}

// Zeroes internal gradient buffers at the start of a backward pass.
inline void zero_all(Backend& be, std::initializer_list<float*> buffers, int64_t count) {
  for (float* b : buffers) be.fill(b, count, 0.0f);
}

}  // namespace livs::evaluator
