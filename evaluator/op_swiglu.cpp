// swiglu: y = W_down (silu(W_gate x) * (W_up x)), no token mixing, no decode state.
#include <stdexcept>

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
      for (float** b : {&gate_, &up_, &h_, &dgate_, &dup_, &dh_}) arena.reserve(b, n_ * f_);
    }
    decode_batch_ = s.decode_batch;
    if (decode_batch_ > 0)
      for (float** b : {&dec_gate_, &dec_up_, &dec_h_}) arena.reserve(b, int64_t(decode_batch_) * f_);
  }

  void forward(Backend& be, const float* x, float* y) override { run(be, x, y, n_, gate_, up_, h_); }

  void backward(Backend& be, const float* x, const float* dy, float* dx) override {
    for (float* b : {dgate_, dup_, dh_}) be.fill(b, n_ * f_, 0.0f);
    be.matmul_backward_weight({w_down_.grad, d_, f_}, {dy, n_, d_}, {h_, n_, f_});
    be.matmul_backward_input({dh_, n_, f_}, {dy, n_, d_}, {w_down_.value, d_, f_});
    be.swiglu_backward(dgate_, dup_, dh_, gate_, up_, n_ * f_);
    be.matmul_backward_weight({w_gate_.grad, f_, d_}, {dgate_, n_, f_}, {x, n_, d_});
    be.matmul_backward_weight({w_up_.grad, f_, d_}, {dup_, n_, f_}, {x, n_, d_});
    be.matmul_backward_input({dx, n_, d_}, {dgate_, n_, f_}, {w_gate_.value, f_, d_});
    be.matmul_backward_input({dx, n_, d_}, {dup_, n_, f_}, {w_up_.value, f_, d_});
  }

  genome::DecodeState decode_state() const override { return {}; }

  void decode_step(Backend& be, const float* x, float* y, int64_t) override {
    run(be, x, y, decode_batch_, dec_gate_, dec_up_, dec_h_);
  }

 private:
  void run(Backend& be, const float* x, float* y, int64_t rows, float* gate, float* up, float* h) {
    be.matmul({gate, rows, f_}, {x, rows, d_}, {w_gate_.value, f_, d_});
    be.matmul({up, rows, f_}, {x, rows, d_}, {w_up_.value, f_, d_});
    be.swiglu_forward(h, gate, up, rows * f_);
    be.matmul({y, rows, d_}, {h, rows, f_}, {w_down_.value, d_, f_});
  }

  int64_t d_, f_;
  Param w_gate_, w_up_, w_down_;
  int64_t n_ = 0;
  int decode_batch_ = 0;
  float *gate_ = nullptr, *up_ = nullptr, *h_ = nullptr, *dgate_ = nullptr, *dup_ = nullptr, *dh_ = nullptr;
  float *dec_gate_ = nullptr, *dec_up_ = nullptr, *dec_h_ = nullptr;
};

}  // namespace

std::unique_ptr<Operator> make_swiglu(OpContext& context) { return std::make_unique<SwigluOp>(context); }

}  // namespace livs::evaluator
