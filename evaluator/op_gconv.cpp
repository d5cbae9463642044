// gconv: LFM2's double-gated short convolution.
//   [B; C; x~] = x W_in^T        (three blocks of rows of w_in, D channels each)
//   y = (C * conv_k(B * x~)) W_out^T
// conv_k is depthwise and causal, kernel k, no bias and no activation. Decode
// keeps the last k-1 inputs of the convolution, (k-1) x D values.
#include <stdexcept>

#include "evaluator/op_scan_common.hpp"
#include "evaluator/operator.hpp"

namespace livs::evaluator {

namespace {

class GconvOp final : public Operator {
 public:
  explicit GconvOp(OpContext& c) : d_(c.d_model), k_(c.spec.gconv.kernel) {
    if (c.spec.differential)
      throw std::invalid_argument(c.describe() +
                                  ": differential gconv is not implemented by the evaluator yet");
    if (k_ < 1)
      throw std::invalid_argument(c.describe() + ": kernel must be >= 1, got " + std::to_string(k_));
    c.bind_weight("w_in", {3 * d_, d_}, Init::normal, true, &w_in_);
    c.bind_weight("conv", {d_, k_}, Init::fan_in_uniform, true, &conv_);
    c.bind_weight("w_out", {d_, d_}, Init::out_projection, true, &w_out_);
    for (int i = 0; i < 3; ++i) in_[i] = {&w_in_, i * d_, d_, d_};
  }

  void plan(Arena& arena, const PlanShape& s) override {
    batch_ = s.batch;
    seq_ = s.seq;
    n_ = s.tokens();
    if (n_ > 0)
      reserve_all(arena, {&b_, &c_, &xt_, &bx_, &conv_out_, &cz_, &db_, &dc_, &dxt_, &dbx_, &dconv_, &dcz_},
                  n_ * d_);
    decode_batch_ = s.decode_batch;
    if (decode_batch_ > 0) {
      reserve_all(arena, {&dec_b_, &dec_c_, &dec_xt_, &dec_bx_, &dec_conv_, &dec_cz_}, decode_batch_ * d_);
      arena.reserve_state(&conv_state_, decode_batch_ * (k_ - 1) * d_);
    }
  }

  void forward(Backend& be, const float* x, float* y) override {
    run(be, x, y, n_, {batch_, seq_, int(d_), int(k_)}, nullptr, b_, c_, xt_, bx_, conv_out_, cz_);
  }

  void backward(Backend& be, const float* x, const float* dy, float* dx) override {
    zero_all(be, {db_, dc_, dxt_, dbx_, dconv_, dcz_}, n_ * d_);
    const WeightRows out{&w_out_, 0, d_, d_};
    out.backward(be, dy, cz_, dcz_, n_);
    be.multiply_backward(dc_, dconv_, dcz_, c_, conv_out_, n_ * d_);
    be.causal_conv_backward(dbx_, conv_.grad, nullptr, dconv_, bx_, conv_.value,
                            {batch_, seq_, int(d_), int(k_)});
    be.multiply_backward(db_, dxt_, dbx_, b_, xt_, n_ * d_);
    in_[0].backward(be, db_, x, dx, n_);
    in_[1].backward(be, dc_, x, dx, n_);
    in_[2].backward(be, dxt_, x, dx, n_);
  }

  genome::DecodeState decode_state() const override { return {(k_ - 1) * d_, 0, 0}; }

  void decode_step(Backend& be, const float* x, float* y, int64_t) override {
    run(be, x, y, decode_batch_, {decode_batch_, 1, int(d_), int(k_)}, conv_state_, dec_b_, dec_c_, dec_xt_,
        dec_bx_, dec_conv_, dec_cz_);
  }

 private:
  void run(Backend& be, const float* x, float* y, int64_t rows, const ConvShape& shape, float* state,
           float* b, float* c, float* xt, float* bx, float* conv_out, float* cz) {
    in_[0].forward(be, b, x, rows);
    in_[1].forward(be, c, x, rows);
    in_[2].forward(be, xt, x, rows);
    be.multiply_forward(bx, b, xt, rows * d_);
    be.causal_conv_forward(conv_out, bx, conv_.value, nullptr, state, shape);
    be.multiply_forward(cz, c, conv_out, rows * d_);
    WeightRows{&w_out_, 0, d_, d_}.forward(be, y, cz, rows);
  }

  int64_t d_, k_;
  Param w_in_, conv_, w_out_;
  WeightRows in_[3];  // B, C, x~
  int batch_ = 0, seq_ = 0, decode_batch_ = 0;
  int64_t n_ = 0;
  float *b_ = nullptr, *c_ = nullptr, *xt_ = nullptr, *bx_ = nullptr, *conv_out_ = nullptr, *cz_ = nullptr;
  float *db_ = nullptr, *dc_ = nullptr, *dxt_ = nullptr, *dbx_ = nullptr, *dconv_ = nullptr, *dcz_ = nullptr;
  float *dec_b_ = nullptr, *dec_c_ = nullptr, *dec_xt_ = nullptr, *dec_bx_ = nullptr, *dec_conv_ = nullptr,
        *dec_cz_ = nullptr, *conv_state_ = nullptr;
};

}  // namespace

std::unique_ptr<Operator> make_gconv(OpContext& context) { return std::make_unique<GconvOp>(context); }

}  // namespace livs::evaluator
