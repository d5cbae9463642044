// gconv: LFM2's double-gated short convolution.
//   [B; C; x~] = x W_in^T        (three blocks of rows of w_in, Ci channels each)
//   m = C * conv_k(B * x~)       (conv_k depthwise and causal, kernel k, no bias, no activation)
//   y = m W_out^T                or, differential (Ci = 2D),  y = (m_1 - (0.8 + diff_lambda) m_2) W_out^T
// Decode keeps the last k-1 inputs of the convolution, (k-1) x Ci values.
// One GEMM makes [B | C | x~] for all three blocks (w_in's rows in that
// order), and the backend's gated_conv does the two products and the
// convolution in one call each way (no intermediate tensors, no fills).
#include <stdexcept>

#include "evaluator/op_scan_common.hpp"
#include "evaluator/operator.hpp"

namespace livs::evaluator {

namespace {

class GconvOp final : public Operator {
 public:
  explicit GconvOp(OpContext& c)
      : d_(c.d_model),
        ci_((c.spec.differential ? 2 : 1) * d_),
        k_(c.spec.gconv.kernel),
        diff_(c.spec.differential) {
    if (k_ < 1)
      throw std::invalid_argument(c.describe() + ": kernel must be >= 1, got " + std::to_string(k_));
    c.bind_weight("w_in", {3 * ci_, d_}, Init::normal, true, &w_in_);
    c.bind_weight("conv", {ci_, k_}, Init::fan_in_uniform, true, &conv_);
    if (diff_) c.bind_weight("diff_lambda", {d_}, Init::zeros, false, &diff_lambda_);
    c.bind_weight("w_out", {d_, d_}, Init::out_projection, true, &w_out_);
  }

  void plan(Arena& arena, const PlanShape& s) override {
    batch_ = s.batch;
    seq_ = s.seq;
    n_ = s.tokens();
    if (n_ > 0) {
      plan_buffers(arena, t_, n_);
      arena.reserve(&dbcx_, n_ * 3 * ci_);
      arena.reserve(&dcz_, n_ * ci_);
      if (diff_) arena.reserve(&dmixed_, n_ * d_);
    }
    decode_batch_ = s.decode_batch;
    if (decode_batch_ > 0) {
      plan_buffers(arena, dec_, decode_batch_);
      arena.reserve_state(&conv_state_, decode_batch_ * (k_ - 1) * ci_);
    }
  }

  void forward(Backend& be, OpInput x, float* y) override {
    run(be, x, y, n_, {batch_, seq_, int(ci_), int(k_)}, nullptr, t_);
  }

  void backward(Backend& be, OpInput x, OpInput dy, float* dx, bool accumulate_dx) override {
    const GemmOperand dys(dy.data, n_, d_, dy.bf16);
    if (diff_) {
      be.matmul_backward_weight({w_out_.grad, d_, d_}, dys, {t_.mixed, n_, d_});
      be.matmul_backward_input({dmixed_, n_, d_}, dys, w_out_.operand(d_, d_), false);
      be.fill(dcz_, n_ * ci_, 0.0f);  // halves_difference_backward accumulates
      be.halves_difference_backward({dcz_, n_, 2 * d_}, diff_lambda_.grad, {dmixed_, n_, d_},
                                    {t_.cz, n_, 2 * d_}, diff_lambda_.value, kDiffLambdaInit);
    } else {
      be.matmul_backward_weight({w_out_.grad, d_, d_}, dys, {t_.cz, n_, d_});
      be.matmul_backward_input({dcz_, n_, d_}, dys, w_out_.operand(d_, d_), false);
    }
    be.gated_conv_backward(dbcx_, conv_.grad, dcz_, t_.bcx, conv_.value, {batch_, seq_, int(ci_), int(k_)});
    WeightRows{&w_in_, 0, 3 * ci_, d_}.backward(be, dbcx_, x, dx, n_, accumulate_dx);
  }

  bool reads_input_values() const override { return false; }  // x reaches GEMMs only

  genome::DecodeState decode_state() const override { return {(k_ - 1) * ci_, 0, 0}; }

  void decode_step(Backend& be, const float* x, float* y, int64_t) override {
    run(be, x, y, decode_batch_, {decode_batch_, 1, int(ci_), int(k_)}, conv_state_, dec_);
  }

 private:
  struct Buffers {
    float *bcx = nullptr, *cz = nullptr,
          *mixed = nullptr;  // mixed: the two halves' difference (differential only)
  };

  void plan_buffers(Arena& arena, Buffers& b, int64_t rows) {
    arena.reserve(&b.bcx, rows * 3 * ci_);
    arena.reserve(&b.cz, rows * ci_);
    if (diff_) arena.reserve(&b.mixed, rows * d_);
  }

  void run(Backend& be, OpInput x, float* y, int64_t rows, const ConvShape& shape, float* state,
           const Buffers& b) {
    WeightRows{&w_in_, 0, 3 * ci_, d_}.forward(be, b.bcx, x, rows);
    be.gated_conv_forward(b.cz, b.bcx, conv_.value, state, shape);
    if (diff_)
      be.halves_difference_forward({b.mixed, rows, d_}, {b.cz, rows, 2 * d_}, diff_lambda_.value,
                                   kDiffLambdaInit);
    WeightRows{&w_out_, 0, d_, d_}.forward(be, y, diff_ ? b.mixed : b.cz, rows);
  }

  int64_t d_, ci_, k_;
  bool diff_;
  Param w_in_, conv_, diff_lambda_, w_out_;
  int batch_ = 0, seq_ = 0, decode_batch_ = 0;
  int64_t n_ = 0;
  Buffers t_, dec_;
  float *dbcx_ = nullptr, *dcz_ = nullptr, *dmixed_ = nullptr;
  float* conv_state_ = nullptr;
};

}  // namespace

std::unique_ptr<Operator> make_gconv(OpContext& context) { return std::make_unique<GconvOp>(context); }

}  // namespace livs::evaluator
