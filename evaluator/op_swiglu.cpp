// swiglu: y = W_down (silu(W_gate x) * (W_up x)), no token mixing, no decode state.
#include <stdexcept>
#include <utility>

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
      // bf16 shadows of every GEMM operand that is read twice: x and h (by a
      // forward and a weight-gradient product), dy, dgate and dup (by both
      // backward products; dgate and dup one after the other).
      arena.reserve_gemm_shadow(&x16_, n_ * d_);
      arena.reserve_gemm_shadow(&h16_, n_ * f_);
      arena.reserve_gemm_shadow(&dy16_, n_ * d_);
      arena.reserve_gemm_shadow(&dhidden16_, n_ * f_);
    }
    decode_batch_ = s.decode_batch;
    if (decode_batch_ > 0)
      for (float** b : {&dec_gate_, &dec_up_, &dec_h_}) arena.reserve(b, int64_t(decode_batch_) * f_);
  }

  void forward(Backend& be, const float* x, float* y) override {
    run(be, x, y, n_, gate_, up_, h_, x16_, h16_);
  }

  void backward(Backend& be, const float* x, const float* dy, float* dx) override {
    for (float* b : {dgate_, dup_, dh_}) be.fill(b, n_ * f_, 0.0f);
    const GemmOperand dys(dy, n_, d_, round_shadow(be, dy16_, dy, n_ * d_));
    be.matmul_backward_weight({w_down_.grad, d_, f_}, dys, {h_, n_, f_, h16_});
    be.matmul_backward_input({dh_, n_, f_}, dys, {w_down_.value, d_, f_});
    be.swiglu_backward(dgate_, dup_, dh_, gate_, up_, n_ * f_);
    // x16_ still holds forward's shadow of x.
    for (auto [dhidden, w] : {std::pair{dgate_, &w_gate_}, std::pair{dup_, &w_up_}}) {
      const GemmOperand dhs(dhidden, n_, f_, round_shadow(be, dhidden16_, dhidden, n_ * f_));
      be.matmul_backward_weight({w->grad, f_, d_}, dhs, {x, n_, d_, x16_});
      be.matmul_backward_input({dx, n_, d_}, dhs, {w->value, f_, d_});
    }
  }

  genome::DecodeState decode_state() const override { return {}; }

  void decode_step(Backend& be, const float* x, float* y, int64_t) override {
    run(be, x, y, decode_batch_, dec_gate_, dec_up_, dec_h_, nullptr, nullptr);
  }

 private:
  // x16 and h16: the shadows to fill, or nullptr (decode; no shadows planned).
  void run(Backend& be, const float* x, float* y, int64_t rows, float* gate, float* up, float* h, void* x16,
           void* h16) {
    const GemmOperand xs(x, rows, d_, round_shadow(be, x16, x, rows * d_));
    be.matmul({gate, rows, f_}, xs, {w_gate_.value, f_, d_});
    be.matmul({up, rows, f_}, xs, {w_up_.value, f_, d_});
    be.swiglu_forward(h, gate, up, rows * f_);
    be.matmul({y, rows, d_}, {h, rows, f_, round_shadow(be, h16, h, rows * f_)}, {w_down_.value, d_, f_});
  }

  int64_t d_, f_;
  Param w_gate_, w_up_, w_down_;
  int64_t n_ = 0;
  int decode_batch_ = 0;
  float *gate_ = nullptr, *up_ = nullptr, *h_ = nullptr, *dgate_ = nullptr, *dup_ = nullptr, *dh_ = nullptr;
  float *dec_gate_ = nullptr, *dec_up_ = nullptr, *dec_h_ = nullptr;
  void *x16_ = nullptr, *h16_ = nullptr, *dy16_ = nullptr, *dhidden16_ = nullptr;  // bf16 GEMM shadows
};

}  // namespace

std::unique_ptr<Operator> make_swiglu(OpContext& context) { return std::make_unique<SwigluOp>(context); }

}  // namespace livs::evaluator
