// ssm in Mamba-2's form (Dao & Gu, 2024, "Transformers are SSMs"): the
// state-space duality (SSD) block with a scalar decay per head.
//   [z; xBC; dt_raw] = x_in in_proj^T           (z: Di = expand * D; xBC: Ii + 2N; dt_raw: heads)
//   [x; B; C] = SiLU(conv_k(xBC) + conv_bias)   (depthwise, causal, over x, B and C together)
//   dt = softplus(dt_raw + dt_bias)             (one per head)
//   H_t = exp(dt A_h) H_{t-1} + dt x_t B_t^T,  A_h = -exp(a_log[h]),  y_t = H_t C_t + d[h] x_t
//   out = (RMSNorm(y * SiLU(z)) * norm) out_proj^T
// Heads of head_dim channels (Ii = heads * head_dim); B and C are shared by
// all heads (ngroups 1); the norm is Mamba-2's gated RMSNorm (gate before the
// norm, one group). Differential: the scanned heads are doubled (Ii = 2 Di,
// B and C shared) and y = y_1 - (0.8 + diff_lambda) y_2 before the gate.
// a_log starts with A_h uniform in [1, 16], dt_bias so that dt starts
// log-uniform in [1e-3, 1e-1], d at one (Mamba-2's initialisation).
// The scan keeps the state entering every chunk of kScanChunk steps
// ([batch, chunks, heads, head_dim, N]); backward recomputes the others.
// Decode keeps the heads' states (Ii x N) and the last k-1 conv inputs
// ((k-1) x (Ii + 2N)).
#include <stdexcept>

#include "evaluator/op_scan_common.hpp"
#include "evaluator/operator.hpp"

namespace livs::evaluator {

namespace {

class SsdOp final : public Operator {
 public:
  explicit SsdOp(OpContext& c)
      : d_(c.d_model),
        di_(c.spec.ssm.d_inner),
        ii_((c.spec.differential ? 2 : 1) * di_),
        n_state_(c.spec.ssm.d_state),
        k_(c.spec.ssm.conv_kernel),
        p_(c.spec.ssm.head_dim),
        heads_(p_ > 0 ? ii_ / p_ : 0),
        xbc_(ii_ + 2 * n_state_),
        eps_(float(c.norm_eps)),
        diff_(c.spec.differential) {
    if (di_ < 1 || n_state_ < 1 || n_state_ > 1024 || k_ < 1 || p_ < 1 || di_ % p_ != 0)
      throw std::invalid_argument(c.describe() + ": invalid knobs (d_inner " + std::to_string(di_) +
                                  ", d_state " + std::to_string(n_state_) + " (at most 1024), conv_kernel " +
                                  std::to_string(k_) + ", head_dim " + std::to_string(p_) +
                                  " (must divide d_inner))");
    c.bind_weight("in_proj", {di_ + xbc_ + heads_, d_}, Init::normal, true, &in_proj_);
    c.bind_weight("conv", {xbc_, k_}, Init::fan_in_uniform, true, &conv_);
    c.bind_weight("conv_bias", {xbc_}, Init::zeros, false, &conv_bias_);
    c.bind_weight("dt_bias", {heads_}, Init::ssm_dt_bias, false, &dt_bias_);
    c.bind_weight("a_log", {heads_}, Init::ssd_a_log, false, &a_log_);
    c.bind_weight("d", {heads_}, Init::ones, false, &d_skip_);
    if (diff_) c.bind_weight("diff_lambda", {di_}, Init::zeros, false, &diff_lambda_);
    c.bind_weight("norm", {di_}, Init::ones, false, &norm_);
    c.bind_weight("out_proj", {d_, di_}, Init::out_projection, true, &out_proj_);
    in_z_ = {&in_proj_, 0, di_, d_};
    in_xbc_ = {&in_proj_, di_, xbc_, d_};
    in_dt_ = {&in_proj_, di_ + xbc_, heads_, d_};
    conv_branch_ = {&conv_, &conv_bias_, xbc_, k_};
    halves_ = {diff_ ? &diff_lambda_ : nullptr, di_};
  }

  void plan(Arena& arena, const PlanShape& s) override {
    batch_ = s.batch;
    seq_ = s.seq;
    n_ = s.tokens();
    if (n_ > 0) {
      plan_buffers(arena, t_, n_);
      arena.reserve(&t_.checkpoints, ssd_checkpoint_floats(shape(batch_, seq_)));
      reserve_all(arena, {&dxr_, &dxc_, &dxbc_}, n_ * xbc_);
      reserve_all(arena, {&ddt_, &ddraw_}, n_ * heads_);
      arena.reserve(&dys_, n_ * ii_);
      reserve_all(arena, {&dz_, &dg_, &dgn_}, n_ * di_);
      if (diff_) arena.reserve(&dmixed_, n_ * di_);
      arena.reserve(&partials_, ssd_partial_floats(shape(batch_, seq_)));
    }
    decode_batch_ = s.decode_batch;
    if (decode_batch_ > 0) {
      plan_buffers(arena, dec_, decode_batch_);
      arena.reserve_state(&ssd_state_, decode_batch_ * ii_ * n_state_);
      conv_branch_.plan_state(arena, decode_batch_);
    }
  }

  void forward(Backend& be, OpInput x, float* y) override { run(be, x, y, batch_, seq_, t_, false); }

  void backward(Backend& be, OpInput x, OpInput dy, float* dx_out, bool accumulate_dx) override {
    InputGradient dx(dx_out, accumulate_dx);
    // Every gradient buffer is written by its first step (the out projection,
    // the norm, the gate, the scan's backward, the activations, the
    // convolution), not zeroed first.
    WeightRows{&out_proj_, 0, d_, di_}.backward(be, dy, t_.gn, dgn_, n_, /*accumulate_dx=*/false);
    be.rmsnorm_backward({dg_, n_, di_}, norm_.grad, {dgn_, n_, di_}, {t_.g, n_, di_}, norm_.value, t_.rstd,
                        nullptr, /*accumulate_dx=*/false);
    const auto gate_backward = [&](float* dcombined) {  // g = y * SiLU(z)
      be.swiglu_backward(dz_, dcombined, dg_, t_.z, halves_.combined(t_.mixed, t_.ys), n_ * di_,
                         /*accumulate=*/false);
    };
    halves_.backward(be, gate_backward, dys_, dmixed_, t_.ys, n_);
    be.ssd_backward(dxbc_, ddt_, a_log_.grad, d_skip_.grad, partials_, dys_, t_.checkpoints, t_.xbc, t_.dt,
                    a_log_.value, d_skip_.value, shape(batch_, seq_));
    be.activation_backward(ddraw_, ddt_, t_.draw, n_ * heads_, ActivationKind::softplus,
                           /*accumulate=*/false);
    be.bias_backward(dt_bias_.grad, {ddraw_, n_, heads_});
    be.activation_backward(dxc_, dxbc_, t_.xc, n_ * xbc_, ActivationKind::silu, /*accumulate=*/false);
    conv_branch_.backward(be, dxr_, dxc_, t_.xr, batch_, seq_);
    in_z_.backward(be, dz_, x, dx, n_);
    in_xbc_.backward(be, dxr_, x, dx, n_);
    in_dt_.backward(be, ddraw_, x, dx, n_);
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
    float *xr = nullptr, *xc = nullptr, *xbc = nullptr;                 // Ii + 2N
    float *draw = nullptr, *dt = nullptr;                               // heads
    float* ys = nullptr;                                                // Ii
    float *z = nullptr, *g = nullptr, *gn = nullptr, *mixed = nullptr;  // Di
    float *rstd = nullptr, *checkpoints = nullptr;
  };

  void plan_buffers(Arena& arena, Buffers& b, int64_t rows) {
    reserve_all(arena, {&b.xr, &b.xc, &b.xbc}, rows * xbc_);
    reserve_all(arena, {&b.draw, &b.dt}, rows * heads_);
    arena.reserve(&b.ys, rows * ii_);
    reserve_all(arena, {&b.z, &b.g, &b.gn}, rows * di_);
    if (diff_) arena.reserve(&b.mixed, rows * di_);  // y_1 - lambda y_2
    arena.reserve(&b.rstd, rows);
  }

  SsdShape shape(int batch, int seq) const { return {batch, seq, int(heads_), int(p_), int(n_state_)}; }

  // Training (zero state, checkpoints kept for backward) or one decode step (through the states).
  void run(Backend& be, OpInput x, float* y, int batch, int seq, const Buffers& b, bool decode) {
    const int64_t rows = int64_t(batch) * seq;
    in_z_.forward(be, b.z, x, rows);
    in_xbc_.forward(be, b.xr, x, rows);
    in_dt_.forward(be, b.draw, x, rows);
    conv_branch_.forward(be, b.xc, b.xr, batch, seq, decode);
    be.activation_forward(b.xbc, b.xc, rows * xbc_, ActivationKind::silu);
    be.add_bias({b.draw, rows, heads_}, dt_bias_.value);
    be.activation_forward(b.dt, b.draw, rows * heads_, ActivationKind::softplus);
    be.ssd_forward(b.ys, decode ? nullptr : b.checkpoints, b.xbc, b.dt, a_log_.value, d_skip_.value,
                   decode ? ssd_state_ : nullptr, shape(batch, seq));
    be.swiglu_forward(b.g, b.z, halves_.forward(be, b.mixed, b.ys, rows), rows * di_);  // y * SiLU(z)
    be.rmsnorm_forward({b.gn, rows, di_}, b.rstd, {b.g, rows, di_}, norm_.value, eps_);
    WeightRows{&out_proj_, 0, d_, di_}.forward(be, y, b.gn, rows);
  }

  int64_t d_, di_, ii_, n_state_, k_, p_, heads_, xbc_;
  float eps_;
  bool diff_;
  Param in_proj_, conv_, conv_bias_, dt_bias_, a_log_, d_skip_, diff_lambda_, norm_, out_proj_;
  WeightRows in_z_, in_xbc_, in_dt_;
  ConvBranch conv_branch_;
  DifferentialHalves halves_;
  int batch_ = 0, seq_ = 0, decode_batch_ = 0;
  int64_t n_ = 0;
  Buffers t_, dec_;
  float *dxr_ = nullptr, *dxc_ = nullptr, *dxbc_ = nullptr, *ddt_ = nullptr, *ddraw_ = nullptr,
        *dys_ = nullptr;
  float *dz_ = nullptr, *dg_ = nullptr, *dgn_ = nullptr, *dmixed_ = nullptr, *partials_ = nullptr;
  float* ssd_state_ = nullptr;
};

}  // namespace

std::unique_ptr<Operator> make_ssd(OpContext& context) { return std::make_unique<SsdOp>(context); }

}  // namespace livs::evaluator
