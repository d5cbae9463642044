// gconv: LFM2's double-gated short convolution.
//   [B; C; x~] = x W_in^T        (three blocks of rows of w_in, Ci channels each)
//   m = C * conv_k(B * x~)       (conv_k depthwise and causal, kernel k, no bias, no activation)
//   y = m W_out^T                or, differential (Ci = 2D),  y = (m_1 - (0.8 + diff_lambda) m_2) W_out^T
// Decode keeps the last k-1 inputs of the convolution, (k-1) x Ci values.
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
    for (int i = 0; i < 3; ++i) in_[i] = {&w_in_, i * ci_, ci_, d_};
  }

  void plan(Arena& arena, const PlanShape& s) override {
    batch_ = s.batch;
    seq_ = s.seq;
    n_ = s.tokens();
    if (n_ > 0) {
      plan_buffers(arena, t_, n_);
      reserve_all(arena, {&db_, &dc_, &dxt_, &dbx_, &dconv_, &dcz_}, n_ * ci_);
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

  void backward(Backend& be, OpInput x, OpInput dy, float* dx) override {
    zero_all(be, {db_, dc_, dxt_, dbx_, dconv_, dcz_}, n_ * ci_);
    if (diff_) {
      be.fill(dmixed_, n_ * d_, 0.0f);
      WeightRows{&w_out_, 0, d_, d_}.backward(be, dy, t_.mixed, dmixed_, n_);
      be.halves_difference_backward({dcz_, n_, 2 * d_}, diff_lambda_.grad, {dmixed_, n_, d_},
                                    {t_.cz, n_, 2 * d_}, diff_lambda_.value, kDiffLambdaInit);
    } else {
      WeightRows{&w_out_, 0, d_, d_}.backward(be, dy, t_.cz, dcz_, n_);
    }
    be.multiply_backward(dc_, dconv_, dcz_, t_.c, t_.conv_out, n_ * ci_);
    be.causal_conv_backward(dbx_, conv_.grad, nullptr, dconv_, t_.bx, conv_.value,
                            {batch_, seq_, int(ci_), int(k_)});
    be.multiply_backward(db_, dxt_, dbx_, t_.b, t_.xt, n_ * ci_);
    in_[0].backward(be, db_, x, dx, n_);
    in_[1].backward(be, dc_, x, dx, n_);
    in_[2].backward(be, dxt_, x, dx, n_);
  }

  genome::DecodeState decode_state() const override { return {(k_ - 1) * ci_, 0, 0}; }

  void decode_step(Backend& be, const float* x, float* y, int64_t) override {
    run(be, x, y, decode_batch_, {decode_batch_, 1, int(ci_), int(k_)}, conv_state_, dec_);
  }

 private:
  struct Buffers {
    float *b = nullptr, *c = nullptr, *xt = nullptr, *bx = nullptr, *conv_out = nullptr, *cz = nullptr,
          *mixed = nullptr;  // mixed: the two halves' difference (differential only)
  };

  void plan_buffers(Arena& arena, Buffers& b, int64_t rows) {
    reserve_all(arena, {&b.b, &b.c, &b.xt, &b.bx, &b.conv_out, &b.cz}, rows * ci_);
    if (diff_) arena.reserve(&b.mixed, rows * d_);
  }

  void run(Backend& be, OpInput x, float* y, int64_t rows, const ConvShape& shape, float* state,
           const Buffers& b) {
    in_[0].forward(be, b.b, x, rows);
    in_[1].forward(be, b.c, x, rows);
    in_[2].forward(be, b.xt, x, rows);
    be.multiply_forward(b.bx, b.b, b.xt, rows * ci_);
    be.causal_conv_forward(b.conv_out, b.bx, conv_.value, nullptr, state, shape);
    be.multiply_forward(b.cz, b.c, b.conv_out, rows * ci_);
    if (diff_)
      be.halves_difference_forward({b.mixed, rows, d_}, {b.cz, rows, 2 * d_}, diff_lambda_.value,
                                   kDiffLambdaInit);
    WeightRows{&w_out_, 0, d_, d_}.forward(be, y, diff_ ? b.mixed : b.cz, rows);
  }

  int64_t d_, ci_, k_;
  bool diff_;
  Param w_in_, conv_, diff_lambda_, w_out_;
  WeightRows in_[3];  // B, C, x~
  int batch_ = 0, seq_ = 0, decode_batch_ = 0;
  int64_t n_ = 0;
  Buffers t_, dec_;
  float *db_ = nullptr, *dc_ = nullptr, *dxt_ = nullptr, *dbx_ = nullptr, *dconv_ = nullptr, *dcz_ = nullptr,
        *dmixed_ = nullptr;
  float* conv_state_ = nullptr;
};

}  // namespace

std::unique_ptr<Operator> make_gconv(OpContext& context) { return std::make_unique<GconvOp>(context); }

}  // namespace livs::evaluator
