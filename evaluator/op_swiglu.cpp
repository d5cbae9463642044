// swiglu: y = W_down (silu(W_gate x) * (W_up x)), no token mixing, no decode state.
#include <stdexcept>
#include <tuple>

#include "evaluator/operator.hpp"

namespace livs::evaluator {

namespace {

class SwigluOp final : public Operator {
 public:
  explicit SwigluOp(OpContext& c) : d_(c.d_model), f_(c.spec.swiglu.hidden) {
    if (c.spec.differential) throw std::invalid_argument(c.describe() + ": swiglu has no differential form");
    c.bind_weight("w_gate", {f_, d_}, Init::normal, true, &w_gate_);
    c.bind_weight("w_up", {f_, d_}, Init::normal, true, &w_up_);
    c.bind_weight("w_down", {d_, f_}, Init::out_projection, true, &w_down_);
  }

  void plan(Arena& arena, const PlanShape& s) override {
    n_ = s.tokens();
    if (n_ > 0) {
      if (arena.gemm_shadows()) {
        // Everything between the three products is bf16 and nothing fp32:
        // gate, up and dh come from GEMMs with bf16 outputs, h, dgate and
        // dup only feed GEMMs (written by swiglu_*_bf16), as in autocast.
        // x's shadow comes from the model, and dy's too unless the slot fuses
        // two mixers with a gate.
        // gate and up come from one product with [W_gate; W_up] (gate | up
        // on every row), and their gradients go back through one.
        arena.reserve_gemm_shadow(&dy16_, n_ * d_);
        for (void** b : {&gate_up16_, &dgate_up16_}) arena.reserve_gemm_shadow(b, n_ * 2 * f_);
        for (void** b : {&dh16_, &h16_}) arena.reserve_gemm_shadow(b, n_ * f_);
      } else {
        for (float** b : {&gate_, &up_, &dh_, &h_, &dgate_, &dup_}) arena.reserve(b, n_ * f_);
      }
    }
    decode_batch_ = s.decode_batch;
    if (decode_batch_ > 0)
      for (float** b : {&dec_gate_, &dec_up_, &dec_h_}) arena.reserve(b, int64_t(decode_batch_) * f_);
  }

  void forward(Backend& be, OpInput x, float* y) override {
    if (!h16_) return run(be, x, y, n_, gate_, up_, h_);
    // bf16 between the products (plan): the weights' shadows are read too.
    const GemmOperand xs(x.data, n_, d_, x.bf16);
    be.matmul_bf16_output(gate_up16_, xs, gate_up_weights());
    be.swiglu_forward_bf16(h16_, gate_up16_, second_half(gate_up16_), n_, f_, 2 * f_);
    be.matmul({y, n_, d_}, {nullptr, n_, f_, h16_}, w_down_.operand(d_, f_));
  }

  void backward(Backend& be, OpInput x, OpInput dy, float* dx, bool accumulate_dx) override {
    const GemmOperand dys(dy.data, n_, d_, shadow_of(be, dy, dy16_, n_ * d_));
    be.matmul_backward_weight({w_down_.grad, d_, f_}, dys, {h_, n_, f_, h16_});
    const GemmOperand xs(x.data, n_, d_, x.bf16);
    if (dgate_up16_) {
      be.matmul_backward_input_bf16_output(dh16_, dys, w_down_.operand(d_, f_));
      be.swiglu_backward_bf16(dgate_up16_, second_half(dgate_up16_), dh16_, gate_up16_,
                              second_half(gate_up16_), n_, f_, 2 * f_);
      // Both halves' weight gradients and dx in one product each.
      const GemmOperand dgate_up(nullptr, n_, 2 * f_, dgate_up16_);
      be.matmul_backward_weight({w_gate_.grad, 2 * f_, d_}, dgate_up, xs);
      be.matmul_backward_input({dx, n_, d_}, dgate_up, gate_up_weights(), accumulate_dx);
      return;
    }
    be.matmul_backward_input({dh_, n_, f_}, dys, w_down_.operand(d_, f_), /*accumulate=*/false);
    be.swiglu_backward(dgate_, dup_, dh_, gate_, up_, n_ * f_, /*accumulate=*/false);
    InputGradient dxs(dx, accumulate_dx);
    for (auto [dhidden, w] : {std::tuple{dgate_, &w_gate_}, std::tuple{dup_, &w_up_}}) {
      const GemmOperand dhs(dhidden, n_, f_);
      be.matmul_backward_weight({w->grad, f_, d_}, dhs, xs);
      be.matmul_backward_input({dx, n_, d_}, dhs, w->operand(f_, d_), dxs.next());
    }
  }

  bool reads_input_values() const override { return false; }  // x reaches GEMMs only

  genome::DecodeState decode_state() const override { return {}; }

  void decode_step(Backend& be, const float* x, float* y, int64_t) override {
    run(be, x, y, decode_batch_, dec_gate_, dec_up_, dec_h_);
  }

 private:
  // In fp32 between the products (the CPU, fp32 mode; decode, which reads
  // fp32 weights).
  void run(Backend& be, OpInput x, float* y, int64_t rows, float* gate, float* up, float* h) {
    const GemmOperand xs(x.data, rows, d_, x.bf16);
    be.matmul({gate, rows, f_}, xs, {w_gate_.value, f_, d_});
    be.matmul({up, rows, f_}, xs, {w_up_.value, f_, d_});
    be.swiglu_forward(h, gate, up, rows * f_);
    be.matmul({y, rows, d_}, {h, rows, f_}, {w_down_.value, d_, f_});
  }

  // [W_gate; W_up] as one [2 hidden, d_model] operand: the parameter store
  // packs weights in the order they are bound (values, gradients and
  // shadows alike), so w_up follows w_gate, here or in a featurizer source.
  GemmOperand gate_up_weights() const {
    if (w_up_.value != w_gate_.value + f_ * d_ || w_up_.grad != w_gate_.grad + f_ * d_)
      throw std::logic_error("swiglu: w_up does not follow w_gate in the parameter store");
    return w_gate_.operand(2 * f_, d_);
  }
  // The up half of a [tokens, 2 hidden] bf16 buffer (gate | up on every row).
  void* second_half(void* gate_up16) const { return static_cast<uint16_t*>(gate_up16) + f_; }

  int64_t d_, f_;
  Param w_gate_, w_up_, w_down_;
  int64_t n_ = 0;
  int decode_batch_ = 0;
  float *gate_ = nullptr, *up_ = nullptr, *h_ = nullptr, *dgate_ = nullptr, *dup_ = nullptr, *dh_ = nullptr;
  float *dec_gate_ = nullptr, *dec_up_ = nullptr, *dec_h_ = nullptr;
  // bf16 shadows, and the bf16 activations that replace gate, up and dh
  void *dy16_ = nullptr, *h16_ = nullptr, *dgate_up16_ = nullptr, *gate_up16_ = nullptr, *dh16_ = nullptr;
};

}  // namespace

std::unique_ptr<Operator> make_swiglu(OpContext& context) { return std::make_unique<SwigluOp>(context); }

}  // namespace livs::evaluator
