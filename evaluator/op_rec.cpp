// rec: Griffin's recurrent block (De et al., 2024).
//   u = conv_k(x W_x^T) + conv_bias                  (depthwise, causal)
//   r = sigmoid(u W_a^T + b_a), i = sigmoid(u W_i^T + b_i)
//   log a = -8 r softplus(lambda),  h_t = a h_{t-1} + sqrt(1 - a^2) (i u)   (RG-LRU, fp32)
//   y = (GeLU(x W_y^T) * h) W_out^T
// Differential: the recurrent channels are doubled (Wi = 2W: w_x, conv, the
// gates and lambda) and h = h_1 - (0.8 + diff_lambda) h_2 before the GeLU gate.
// Decode keeps h and the last k-1 inputs of the convolution: Wi + (k-1) Wi values.
#include <stdexcept>
#include <tuple>

#include "evaluator/op_scan_common.hpp"
#include "evaluator/operator.hpp"

namespace livs::evaluator {

namespace {

constexpr float kGateConstant = 8.0f;  // Griffin's c

class RecOp final : public Operator {
 public:
  explicit RecOp(OpContext& c)
      : d_(c.d_model),
        w_(c.spec.rec.width),
        wi_((c.spec.differential ? 2 : 1) * w_),
        k_(c.spec.rec.conv_kernel),
        diff_(c.spec.differential) {
    if (w_ < 1 || k_ < 1)
      throw std::invalid_argument(c.describe() + ": width and conv_kernel must be >= 1, got " +
                                  std::to_string(w_) + " and " + std::to_string(k_));
    c.bind_weight("w_x", {wi_, d_}, Init::normal, true, &w_x_);
    c.bind_weight("w_y", {w_, d_}, Init::normal, true, &w_y_);
    c.bind_weight("conv", {wi_, k_}, Init::fan_in_uniform, true, &conv_);
    c.bind_weight("conv_bias", {wi_}, Init::zeros, false, &conv_bias_);
    c.bind_weight("w_a", {wi_, wi_}, Init::normal, true, &w_a_);
    c.bind_weight("w_i", {wi_, wi_}, Init::normal, true, &w_i_);
    c.bind_weight("b_a", {wi_}, Init::zeros, false, &b_a_);
    c.bind_weight("b_i", {wi_}, Init::zeros, false, &b_i_);
    c.bind_weight("lambda", {wi_}, Init::rglru_lambda, false, &lambda_);
    if (diff_) c.bind_weight("diff_lambda", {w_}, Init::zeros, false, &diff_lambda_);
    c.bind_weight("w_out", {d_, w_}, Init::out_projection, true, &w_out_);
    conv_branch_ = {&conv_, &conv_bias_, wi_, k_};
    halves_ = {diff_ ? &diff_lambda_ : nullptr, w_};
  }

  void plan(Arena& arena, const PlanShape& s) override {
    batch_ = s.batch;
    seq_ = s.seq;
    n_ = s.tokens();
    if (n_ > 0) {
      plan_buffers(arena, t_, n_);
      reserve_all(arena, {&dxb_, &du_, &dga_, &dgi_, &dh_}, n_ * wi_);
      reserve_all(arena, {&dyb_, &dgy_, &do_}, n_ * w_);
      if (diff_) arena.reserve(&dmixed_, n_ * w_);
    }
    decode_batch_ = s.decode_batch;
    if (decode_batch_ > 0) {
      plan_buffers(arena, dec_, decode_batch_);
      arena.reserve_state(&h_state_, decode_batch_ * wi_);
      conv_branch_.plan_state(arena, decode_batch_);
    }
  }

  void forward(Backend& be, OpInput x, float* y) override { run(be, x, y, batch_, seq_, t_, false); }

  void backward(Backend& be, OpInput x, OpInput dy, float* dx_out, bool accumulate_dx) override {
    InputGradient dx(dx_out, accumulate_dx);
    zero_all(be, {du_, dga_, dgi_}, n_ * wi_);  // dxb is written by the convolution
    WeightRows{&w_out_, 0, d_, w_}.backward(be, dy, t_.o, do_, n_, /*accumulate_dx=*/false);
    const auto gate_backward = [&](float* dcombined) {  // o = GeLU(x W_y^T) * h: dgy and dcombined written
      be.multiply_backward(dgy_, dcombined, do_, t_.gy, halves_.combined(t_.mixed, t_.h), n_ * w_,
                           /*accumulate=*/false);
    };
    halves_.backward(be, gate_backward, dh_, dmixed_, t_.h, n_);
    be.activation_backward(dyb_, dgy_, t_.yb, n_ * w_, ActivationKind::gelu_tanh, /*accumulate=*/false);
    WeightRows{&w_y_, 0, w_, d_}.backward(be, dyb_, x, dx, n_);
    be.rglru_backward(du_, dga_, dgi_, lambda_.grad, dh_, t_.h, t_.u, t_.ga, t_.gi, lambda_.value,
                      kGateConstant, {batch_, seq_, int(wi_), 1});
    for (auto [weight, bias, grad] : {std::tuple{&w_a_, &b_a_, dga_}, std::tuple{&w_i_, &b_i_, dgi_}}) {
      be.bias_backward(bias->grad, {grad, n_, wi_});
      WeightRows{weight, 0, wi_, wi_}.backward(be, grad, t_.u, du_, n_);
    }
    conv_branch_.backward(be, dxb_, du_, t_.xb, batch_, seq_);
    WeightRows{&w_x_, 0, wi_, d_}.backward(be, dxb_, x, dx, n_);
  }

  bool reads_input_values() const override { return false; }  // x reaches GEMMs only

  genome::DecodeState decode_state() const override { return {wi_ + conv_branch_.state_floats(), 0, 0}; }

  void decode_step(Backend& be, const float* x, float* y, int64_t) override {
    run(be, x, y, decode_batch_, 1, dec_, true);
  }

 private:
  struct Buffers {
    float *xb = nullptr, *u = nullptr, *ga = nullptr, *gi = nullptr, *h = nullptr;  // Wi channels
    float *yb = nullptr, *gy = nullptr, *o = nullptr, *mixed = nullptr;             // W channels
  };

  void plan_buffers(Arena& arena, Buffers& b, int64_t rows) {
    reserve_all(arena, {&b.xb, &b.u, &b.ga, &b.gi, &b.h}, rows * wi_);
    reserve_all(arena, {&b.yb, &b.gy, &b.o}, rows * w_);
    if (diff_) arena.reserve(&b.mixed, rows * w_);  // h_1 - lambda h_2
  }

  // Training (zero state) or one decode step (through the states).
  void run(Backend& be, OpInput x, float* y, int batch, int seq, const Buffers& b, bool decode) {
    const int64_t rows = int64_t(batch) * seq;
    WeightRows{&w_x_, 0, wi_, d_}.forward(be, b.xb, x, rows);
    conv_branch_.forward(be, b.u, b.xb, batch, seq, decode);
    WeightRows{&w_a_, 0, wi_, wi_}.forward(be, b.ga, b.u, rows);
    be.add_bias({b.ga, rows, wi_}, b_a_.value);
    WeightRows{&w_i_, 0, wi_, wi_}.forward(be, b.gi, b.u, rows);
    be.add_bias({b.gi, rows, wi_}, b_i_.value);
    be.rglru_forward(b.h, b.u, b.ga, b.gi, lambda_.value, kGateConstant, decode ? h_state_ : nullptr,
                     {batch, seq, int(wi_), 1});
    const float* combined = halves_.forward(be, b.mixed, b.h, rows);
    WeightRows{&w_y_, 0, w_, d_}.forward(be, b.yb, x, rows);
    be.activation_forward(b.gy, b.yb, rows * w_, ActivationKind::gelu_tanh);
    be.multiply_forward(b.o, b.gy, combined, rows * w_);
    WeightRows{&w_out_, 0, d_, w_}.forward(be, y, b.o, rows);
  }

  int64_t d_, w_, wi_, k_;
  bool diff_;
  Param w_x_, w_y_, conv_, conv_bias_, w_a_, w_i_, b_a_, b_i_, lambda_, diff_lambda_, w_out_;
  ConvBranch conv_branch_;
  DifferentialHalves halves_;
  int batch_ = 0, seq_ = 0, decode_batch_ = 0;
  int64_t n_ = 0;
  Buffers t_, dec_;
  float *dxb_ = nullptr, *du_ = nullptr, *dga_ = nullptr, *dgi_ = nullptr, *dh_ = nullptr, *dyb_ = nullptr,
        *dgy_ = nullptr, *do_ = nullptr, *dmixed_ = nullptr;
  float* h_state_ = nullptr;
};

}  // namespace

std::unique_ptr<Operator> make_rec(OpContext& context) { return std::make_unique<RecOp>(context); }

}  // namespace livs::evaluator
