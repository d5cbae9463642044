// ssm: Mamba's selective state-space block (Gu & Dao, 2023).
//   [x; z] = x_in in_proj^T                        (x: Ii channels, z: Di = expand * D)
//   u = SiLU(conv_k(x) + conv_bias)                (depthwise, causal)
//   [delta_raw; B; C] = u x_proj^T                 (R = dt_rank, N = d_state, N)
//   delta = softplus(delta_raw dt_proj^T + dt_bias)
//   h_t = exp(delta A) h_{t-1} + delta B_t u_t,  A = -exp(a_log),  y = C_t h_t + d u   (fp32 scan)
//   out = (y * SiLU(z)) out_proj^T
// Differential: the scanned channels are doubled (Ii = 2 Di; B and C are
// shared) and y = y_1 - (0.8 + diff_lambda) y_2 before the SiLU(z) gate.
// a_log starts at S4D-real (A_n = -(n+1)); dt_bias so that delta starts
// log-uniform in [1e-3, 1e-1]. The scan keeps the state entering every chunk
// of kScanChunk steps ([batch, chunks, Ii, N]) and its backward recomputes
// the states in between. Decode keeps h (Ii x N) and the last k-1 conv inputs
// ((k-1) x Ii).
#include <stdexcept>

#include "evaluator/op_scan_common.hpp"
#include "evaluator/operator.hpp"

namespace livs::evaluator {

namespace {

class SsmOp final : public Operator {
 public:
  explicit SsmOp(OpContext& c)
      : d_(c.d_model),
        di_(c.spec.ssm.d_inner),
        ii_((c.spec.differential ? 2 : 1) * di_),
        n_state_(c.spec.ssm.d_state),
        k_(c.spec.ssm.conv_kernel),
        r_(c.spec.ssm.dt_rank),
        diff_(c.spec.differential) {
    if (di_ < 1 || n_state_ < 1 || n_state_ > 1024 || k_ < 1 || r_ < 1)
      throw std::invalid_argument(c.describe() + ": invalid knobs (d_inner " + std::to_string(di_) +
                                  ", d_state " + std::to_string(n_state_) + " (at most 1024), conv_kernel " +
                                  std::to_string(k_) + ", dt_rank " + std::to_string(r_) + ")");
    c.bind_weight("in_proj", {ii_ + di_, d_}, Init::normal, true, &in_proj_);
    c.bind_weight("conv", {ii_, k_}, Init::fan_in_uniform, true, &conv_);
    c.bind_weight("conv_bias", {ii_}, Init::zeros, false, &conv_bias_);
    c.bind_weight("x_proj", {r_ + 2 * n_state_, ii_}, Init::normal, true, &x_proj_);
    c.bind_weight("dt_proj", {ii_, r_}, Init::fan_in_uniform, true, &dt_proj_);
    c.bind_weight("dt_bias", {ii_}, Init::ssm_dt_bias, false, &dt_bias_);
    c.bind_weight("a_log", {ii_, n_state_}, Init::ssm_a_log, false, &a_log_);
    c.bind_weight("d", {ii_}, Init::ones, false, &d_skip_);
    if (diff_) c.bind_weight("diff_lambda", {di_}, Init::zeros, false, &diff_lambda_);
    c.bind_weight("out_proj", {d_, di_}, Init::out_projection, true, &out_proj_);
    in_x_ = {&in_proj_, 0, ii_, d_};
    in_z_ = {&in_proj_, ii_, di_, d_};
    proj_dt_ = {&x_proj_, 0, r_, ii_};
    proj_b_ = {&x_proj_, r_, n_state_, ii_};
    proj_c_ = {&x_proj_, r_ + n_state_, n_state_, ii_};
    conv_branch_ = {&conv_, &conv_bias_, ii_, k_};
    halves_ = {diff_ ? &diff_lambda_ : nullptr, di_};
  }

  void plan(Arena& arena, const PlanShape& s) override {
    batch_ = s.batch;
    seq_ = s.seq;
    n_ = s.tokens();
    if (n_ > 0) {
      plan_buffers(arena, t_, n_);
      arena.reserve(&t_.checkpoints, selective_scan_checkpoint_floats(scan_shape(batch_, seq_)));
      reserve_all(arena, {&dxr_, &dxc_, &du_, &ddpre_, &ddelta_, &dys_}, n_ * ii_);
      reserve_all(arena, {&dz_, &dg_}, n_ * di_);
      if (diff_) arena.reserve(&dmixed_, n_ * di_);
      reserve_all(arena, {&db_, &dc_}, n_ * n_state_);
      arena.reserve(&ddraw_, n_ * r_);
      arena.reserve(&partials_, int64_t(batch_) * ii_ * (n_state_ + 1));
    }
    decode_batch_ = s.decode_batch;
    if (decode_batch_ > 0) {
      plan_buffers(arena, dec_, decode_batch_);
      arena.reserve_state(&ssm_state_, decode_batch_ * ii_ * n_state_);
      conv_branch_.plan_state(arena, decode_batch_);
    }
  }

  void forward(Backend& be, OpInput x, float* y) override { run(be, x, y, batch_, seq_, t_, false); }

  void backward(Backend& be, OpInput x, OpInput dy, float* dx_out, bool accumulate_dx) override {
    InputGradient dx(dx_out, accumulate_dx);
    // dg, dz, dys, ddraw, ddpre, dxc and dxr are written by their first step
    // (the projections, the gate, the activations, the convolution), not zeroed first.
    zero_all(be, {du_, ddelta_}, n_ * ii_);
    zero_all(be, {db_, dc_}, n_ * n_state_);
    WeightRows{&out_proj_, 0, d_, di_}.backward(be, dy, t_.g, dg_, n_, /*accumulate_dx=*/false);
    const auto gate_backward = [&](float* dcombined) {  // g = y * SiLU(z)
      be.swiglu_backward(dz_, dcombined, dg_, t_.z, halves_.combined(t_.mixed, t_.ys), n_ * di_,
                         /*accumulate=*/false);
    };
    halves_.backward(be, gate_backward, dys_, dmixed_, t_.ys, n_);
    be.selective_scan_backward(du_, ddelta_, a_log_.grad, db_, dc_, d_skip_.grad, partials_, dys_,
                               t_.checkpoints, t_.u, t_.delta, a_log_.value, t_.b, t_.c, d_skip_.value,
                               scan_shape(batch_, seq_));
    be.activation_backward(ddpre_, ddelta_, t_.dpre, n_ * ii_, ActivationKind::softplus,
                           /*accumulate=*/false);
    be.bias_backward(dt_bias_.grad, {ddpre_, n_, ii_});
    WeightRows{&dt_proj_, 0, ii_, r_}.backward(be, ddpre_, t_.draw, ddraw_, n_, /*accumulate_dx=*/false);
    proj_dt_.backward(be, ddraw_, t_.u, du_, n_);
    proj_b_.backward(be, db_, t_.u, du_, n_);
    proj_c_.backward(be, dc_, t_.u, du_, n_);
    be.activation_backward(dxc_, du_, t_.xc, n_ * ii_, ActivationKind::silu, /*accumulate=*/false);
    conv_branch_.backward(be, dxr_, dxc_, t_.xr, batch_, seq_);
    in_x_.backward(be, dxr_, x, dx, n_);
    in_z_.backward(be, dz_, x, dx, n_);
  }

  bool reads_input_values() const override { return false; }  // x reaches GEMMs only

  genome::DecodeState decode_state() const override {
    return {ii_ * n_state_ + conv_branch_.state_floats(), 0, 0};
  }

  void decode_step(Backend& be, const float* x, float* y, int64_t) override {
    run(be, x, y, decode_batch_, 1, dec_, true);
  }

 private:
  struct Buffers {
    float *xr = nullptr, *xc = nullptr, *u = nullptr, *dpre = nullptr, *delta = nullptr, *ys = nullptr;  // Ii
    float *z = nullptr, *g = nullptr, *mixed = nullptr;                                                  // Di
    float *draw = nullptr, *b = nullptr, *c = nullptr, *checkpoints = nullptr;
  };

  void plan_buffers(Arena& arena, Buffers& b, int64_t rows) {
    reserve_all(arena, {&b.xr, &b.xc, &b.u, &b.dpre, &b.delta, &b.ys}, rows * ii_);
    reserve_all(arena, {&b.z, &b.g}, rows * di_);
    if (diff_) arena.reserve(&b.mixed, rows * di_);  // y_1 - lambda y_2
    reserve_all(arena, {&b.b, &b.c}, rows * n_state_);
    arena.reserve(&b.draw, rows * r_);
  }

  ScanShape scan_shape(int batch, int seq) const { return {batch, seq, int(ii_), int(n_state_)}; }

  // Training (zero state, checkpoints kept for backward) or one decode step (through the states).
  void run(Backend& be, OpInput x, float* y, int batch, int seq, const Buffers& b, bool decode) {
    const int64_t rows = int64_t(batch) * seq;
    in_x_.forward(be, b.xr, x, rows);
    in_z_.forward(be, b.z, x, rows);
    conv_branch_.forward(be, b.xc, b.xr, batch, seq, decode);
    be.activation_forward(b.u, b.xc, rows * ii_, ActivationKind::silu);
    proj_dt_.forward(be, b.draw, b.u, rows);
    proj_b_.forward(be, b.b, b.u, rows);
    proj_c_.forward(be, b.c, b.u, rows);
    WeightRows{&dt_proj_, 0, ii_, r_}.forward(be, b.dpre, b.draw, rows);
    be.add_bias({b.dpre, rows, ii_}, dt_bias_.value);
    be.activation_forward(b.delta, b.dpre, rows * ii_, ActivationKind::softplus);
    be.selective_scan_forward(b.ys, b.checkpoints, b.u, b.delta, a_log_.value, b.b, b.c, d_skip_.value,
                              decode ? ssm_state_ : nullptr, scan_shape(batch, seq));
    be.swiglu_forward(b.g, b.z, halves_.forward(be, b.mixed, b.ys, rows), rows * di_);  // y * SiLU(z)
    WeightRows{&out_proj_, 0, d_, di_}.forward(be, y, b.g, rows);
  }

  int64_t d_, di_, ii_, n_state_, k_, r_;
  bool diff_;
  Param in_proj_, conv_, conv_bias_, x_proj_, dt_proj_, dt_bias_, a_log_, d_skip_, diff_lambda_, out_proj_;
  WeightRows in_x_, in_z_, proj_dt_, proj_b_, proj_c_;
  ConvBranch conv_branch_;
  DifferentialHalves halves_;
  int batch_ = 0, seq_ = 0, decode_batch_ = 0;
  int64_t n_ = 0;
  Buffers t_, dec_;
  float *dxr_ = nullptr, *dxc_ = nullptr, *du_ = nullptr, *ddpre_ = nullptr, *ddelta_ = nullptr,
        *dys_ = nullptr;
  float *dz_ = nullptr, *dg_ = nullptr, *dmixed_ = nullptr, *db_ = nullptr, *dc_ = nullptr, *ddraw_ = nullptr,
        *partials_ = nullptr;
  float* ssm_state_ = nullptr;
};

}  // namespace

std::unique_ptr<Operator> make_ssm(OpContext& context) { return std::make_unique<SsmOp>(context); }

}  // namespace livs::evaluator
