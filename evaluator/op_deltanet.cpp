// deltanet: Gated DeltaNet (Yang, Kautz, Hatamizadeh 2024, arXiv 2412.06464),
// or plain DeltaNet when not gated (alpha = 1), as fla's GatedDeltaNet layer
// parametrises it (with d_v = d_k = head_dim = d_model / heads):
//   q~ = silu(conv(x Wq^T)), k~ = silu(conv(x Wk^T)), v = silu(conv(x Wv^T))   (short conv k > 0;
//        without it silu(x W^T))
//   q = l2norm(q~) / sqrt(d_k), k = l2norm(k~)                                  (per head)
//   beta = sigmoid(x W_beta^T)                                                  (per head)
//   log alpha = -exp(a_log) softplus(x W_alpha^T + dt_bias)                    (per head; gated)
//   S_t^T = alpha_t S_{t-1}^T (I - beta_t k_t k_t^T) + beta_t v_t k_t^T,  o_t = S_t^T q_t
//   y = (rmsnorm_per_head(o) * o_norm * silu(x W_out_gate^T)) Wo^T
// l2norm is RMSNorm with a constant gain 1/sqrt(d_k) (q: 1/d_k), that is
// x / sqrt(|x|^2 + d_k eps). The recurrence is Backend::delta_rule_*: the
// CPU backend runs it sequentially in time with a hand-written backward
// (chunk checkpoints, states recomputed per chunk), the CUDA backend one
// block per (sequence, head) holding the state in shared memory.
// Decode keeps S (heads x d_k x d_v) and the convolutions' last k - 1 inputs.
#include <cmath>
#include <stdexcept>

#include "evaluator/op_scan_common.hpp"
#include "evaluator/operator.hpp"
#include "evaluator/short_conv.hpp"

namespace livs::evaluator {

namespace {

class DeltaNetOp final : public Operator {
 public:
  explicit DeltaNetOp(OpContext& c)
      : knobs_(c.spec.deltanet), d_(c.d_model), eps_(float(c.norm_eps)), describe_(c.describe()) {
    if (knobs_.heads <= 0 || knobs_.head_dim <= 0 || knobs_.short_conv < 0)
      throw std::invalid_argument(describe_ + ": invalid knobs (heads " + std::to_string(knobs_.heads) +
                                  ", head_dim " + std::to_string(knobs_.head_dim) + ")");
    if (c.spec.differential || c.spec.feature_source.valid())
      throw std::invalid_argument(describe_ +
                                  ": deltanet has no differential form and no shareable features");
    heads_ = knobs_.heads;
    hd_ = knobs_.head_dim;
    width_ = int64_t(heads_) * hd_;
    c.bind_weight("wq", {width_, d_}, Init::normal, true, &wq_);
    c.bind_weight("wk", {width_, d_}, Init::normal, true, &wk_);
    c.bind_weight("wv", {width_, d_}, Init::normal, true, &wv_);
    c.bind_weight("w_beta", {heads_, d_}, Init::normal, true, &w_beta_);
    if (knobs_.gated) {
      c.bind_weight("w_alpha", {heads_, d_}, Init::normal, true, &w_alpha_);
      c.bind_weight("a_log", {heads_}, Init::ssm_a_log, false, &a_log_);
      c.bind_weight("dt_bias", {heads_}, Init::ssm_dt_bias, false, &dt_bias_);
    }
    if (const int k = knobs_.short_conv; k > 0) {
      c.bind_weight("q_conv", {width_, k}, Init::fan_in_uniform, true, &q_conv_w_);
      c.bind_weight("k_conv", {width_, k}, Init::fan_in_uniform, true, &k_conv_w_);
      c.bind_weight("v_conv", {width_, k}, Init::fan_in_uniform, true, &v_conv_w_);
      conv_[0] = ShortConv(&q_conv_w_, 0, width_, k);
      conv_[1] = ShortConv(&k_conv_w_, 0, width_, k);
      conv_[2] = ShortConv(&v_conv_w_, 0, width_, k);
    }
    c.bind_weight("w_out_gate", {width_, d_}, Init::normal, true, &w_out_gate_);
    c.bind_weight("o_norm", {hd_}, Init::ones, false, &o_norm_);
    c.bind_weight("wo", {d_, width_}, Init::out_projection, true, &wo_);
  }

  void plan(Arena& arena, const PlanShape& s) override {
    batch_ = s.batch;
    seq_ = s.seq;
    n_ = s.tokens();
    if (n_ > 0) {
      plan_rows(arena, train_, n_, true);
      const DeltaRuleShape shape = rule_shape(batch_, seq_);
      arena.reserve(&checkpoints_, delta_rule_checkpoint_floats(shape));
      arena.reserve(&scratch_, delta_rule_scratch_floats(shape));
    }
    decode_batch_ = s.decode_batch;
    if (decode_batch_ > 0) {
      plan_rows(arena, dec_, decode_batch_, false);
      arena.reserve_state(&state_, int64_t(decode_batch_) * heads_ * hd_ * hd_);
    }
    for (ShortConv& conv : conv_) conv.plan(arena, n_, decode_batch_);
    arena.reserve_constant(&q_gain_, std::vector<float>(hd_, float(1.0 / double(hd_))));
    arena.reserve_constant(&k_gain_, std::vector<float>(hd_, float(1.0 / std::sqrt(double(hd_)))));
    arena.reserve(&dgain_, hd_);
  }

  void forward(Backend& be, OpInput x, float* y) override { run(be, x, y, train_, batch_, seq_, false); }

  void backward(Backend& be, OpInput x, OpInput dy, float* dx_out, bool accumulate_dx) override {
    InputGradient dx(dx_out, accumulate_dx);
    Rows& r = train_;
    const int64_t nw = n_ * width_, nh = n_ * heads_, rows = n_ * heads_;
    // dgated, don, dsg, dzg, dzb, dout, dq_act, dk_act and the convolutions'
    // output gradients are written by their first step (the out projection,
    // the product, the activations, the norms), not zeroed.
    for (float* b : {r.dq, r.dk, r.dv}) be.fill(b, nw, 0.0f);
    be.fill(r.dbeta, nh, 0.0f);
    if (knobs_.gated)
      for (float* b : {r.dla, r.dza}) be.fill(b, nh, 0.0f);
    // y = gated Wo^T, gated = rmsnorm(o) * silu(zg).
    WeightRows{&wo_, 0, d_, width_}.backward(be, dy, r.gated, r.dgated, n_, /*accumulate_dx=*/false);
    be.multiply_backward(r.don, r.dsg, r.dgated, r.on, r.sg, nw, /*accumulate=*/false);
    be.activation_backward(r.dzg, r.dsg, r.zg, nw, ActivationKind::silu, /*accumulate=*/false);
    WeightRows{&w_out_gate_, 0, width_, d_}.backward(be, r.dzg, x, dx, n_);
    be.rmsnorm_backward({r.dout, rows, hd_}, o_norm_.grad, {r.don, rows, hd_}, {r.o, rows, hd_},
                        o_norm_.value, r.rstd_o, nullptr, /*accumulate_dx=*/false);
    // The recurrence.
    be.delta_rule_backward(r.dq, r.dk, r.dv, knobs_.gated ? r.dla : nullptr, r.dbeta, scratch_, r.dout,
                           checkpoints_, r.q, r.k, r.v, knobs_.gated ? r.la : nullptr, r.beta,
                           rule_shape(batch_, seq_));
    if (knobs_.gated) {
      be.gdn_decay_backward(r.dza, a_log_.grad, dt_bias_.grad, r.dla, r.za, a_log_.value, dt_bias_.value, n_,
                            heads_);
      WeightRows{&w_alpha_, 0, heads_, d_}.backward(be, r.dza, x, dx, n_);
    }
    be.activation_backward(r.dzb, r.dbeta, r.zb, nh, ActivationKind::sigmoid, /*accumulate=*/false);
    WeightRows{&w_beta_, 0, heads_, d_}.backward(be, r.dzb, x, dx, n_);
    // q, k: the l2 norms; v has none.
    be.rmsnorm_backward({r.dq_act, rows, hd_}, dgain_, {r.dq, rows, hd_}, {r.q_act, rows, hd_}, q_gain_,
                        r.rstd_q, nullptr, /*accumulate_dx=*/false);
    be.rmsnorm_backward({r.dk_act, rows, hd_}, dgain_, {r.dk, rows, hd_}, {r.k_act, rows, hd_}, k_gain_,
                        r.rstd_k, nullptr, /*accumulate_dx=*/false);
    const float* dact[3] = {r.dq_act, r.dk_act, r.dv};
    float* dconv[3] = {r.dqc, r.dkc, r.dvc};
    const Param* w[3] = {&wq_, &wk_, &wv_};
    for (int i = 0; i < 3; ++i) {
      be.activation_backward(dconv[i], dact[i], r.conv_out[i], nw, ActivationKind::silu,
                             /*accumulate=*/false);
      const float* dproj = conv_[i].backward(be, dconv[i], batch_, seq_);
      WeightRows{w[i], 0, width_, d_}.backward(be, dproj, x, dx, n_);
    }
  }

  bool reads_input_values() const override { return false; }  // x reaches GEMMs only

  genome::DecodeState decode_state() const override {
    int64_t conv = 0;
    for (const ShortConv& c : conv_) conv += c.state_floats();
    return {int64_t(heads_) * hd_ * hd_ + conv, 0, 0};
  }

  void decode_step(Backend& be, const float* x, float* y, int64_t) override {
    run(be, x, y, dec_, decode_batch_, 1, true);
  }

 private:
  struct Rows {
    // conv_out[i]: q, k, v after the short conv, before SiLU (the projection itself when off).
    float* conv_out[3] = {};
    float *q_act = nullptr, *k_act = nullptr, *q = nullptr, *k = nullptr, *v = nullptr;
    float *rstd_q = nullptr, *rstd_k = nullptr, *zb = nullptr, *beta = nullptr, *za = nullptr, *la = nullptr;
    float *o = nullptr, *rstd_o = nullptr, *on = nullptr, *zg = nullptr, *sg = nullptr, *gated = nullptr;
    // Gradients (training only).
    float *dgated = nullptr, *don = nullptr, *dsg = nullptr, *dzg = nullptr, *dout = nullptr, *dq = nullptr,
          *dk = nullptr, *dv = nullptr, *dq_act = nullptr, *dk_act = nullptr, *dqc = nullptr, *dkc = nullptr,
          *dvc = nullptr, *dbeta = nullptr, *dzb = nullptr, *dla = nullptr, *dza = nullptr;
  };

  void plan_rows(Arena& arena, Rows& r, int64_t rows, bool grads) {
    const int64_t nw = rows * width_, nh = rows * heads_;
    reserve_all(arena,
                {&r.conv_out[0], &r.conv_out[1], &r.conv_out[2], &r.q_act, &r.k_act, &r.q, &r.k, &r.v, &r.o,
                 &r.on, &r.zg, &r.sg, &r.gated},
                nw);
    reserve_all(arena, {&r.rstd_q, &r.rstd_k, &r.zb, &r.beta, &r.rstd_o}, nh);
    if (knobs_.gated) reserve_all(arena, {&r.za, &r.la}, nh);
    if (!grads) return;
    reserve_all(arena,
                {&r.dgated, &r.don, &r.dsg, &r.dzg, &r.dout, &r.dq, &r.dk, &r.dv, &r.dq_act, &r.dk_act,
                 &r.dqc, &r.dkc, &r.dvc},
                nw);
    reserve_all(arena, {&r.dbeta, &r.dzb}, nh);
    if (knobs_.gated) reserve_all(arena, {&r.dla, &r.dza}, nh);
  }

  // Training (zero state, checkpoints kept) or one decode step (through the states).
  void run(Backend& be, OpInput x, float* y, Rows& r, int batch, int seq, bool decode) {
    const int64_t rows = int64_t(batch) * seq, nw = rows * width_, nh = rows * heads_, head_rows = nh;
    const Param* w[3] = {&wq_, &wk_, &wv_};
    float* act[3] = {r.q_act, r.k_act, r.v};
    for (int i = 0; i < 3; ++i) {
      WeightRows{w[i], 0, width_, d_}.forward(be, conv_[i].input(r.conv_out[i], decode), x, rows);
      conv_[i].forward(be, r.conv_out[i], batch, seq, decode);
      be.activation_forward(act[i], r.conv_out[i], nw, ActivationKind::silu);
    }
    be.rmsnorm_forward({r.q, head_rows, hd_}, r.rstd_q, {r.q_act, head_rows, hd_}, q_gain_, eps_);
    be.rmsnorm_forward({r.k, head_rows, hd_}, r.rstd_k, {r.k_act, head_rows, hd_}, k_gain_, eps_);
    WeightRows{&w_beta_, 0, heads_, d_}.forward(be, r.zb, x, rows);
    be.activation_forward(r.beta, r.zb, nh, ActivationKind::sigmoid);
    if (knobs_.gated) {
      WeightRows{&w_alpha_, 0, heads_, d_}.forward(be, r.za, x, rows);
      be.gdn_decay_forward(r.la, r.za, a_log_.value, dt_bias_.value, rows, heads_);
    }
    be.delta_rule_forward(r.o, decode ? nullptr : checkpoints_, r.q, r.k, r.v, knobs_.gated ? r.la : nullptr,
                          r.beta, decode ? state_ : nullptr, rule_shape(batch, seq));
    be.rmsnorm_forward({r.on, head_rows, hd_}, r.rstd_o, {r.o, head_rows, hd_}, o_norm_.value, eps_);
    WeightRows{&w_out_gate_, 0, width_, d_}.forward(be, r.zg, x, rows);
    be.activation_forward(r.sg, r.zg, nw, ActivationKind::silu);
    be.multiply_forward(r.gated, r.on, r.sg, nw);
    WeightRows{&wo_, 0, d_, width_}.forward(be, y, r.gated, rows);
  }

  DeltaRuleShape rule_shape(int batch, int seq) const { return {batch, seq, heads_, int(hd_)}; }

  genome::DeltanetKnobs knobs_;
  int64_t d_;
  float eps_;
  std::string describe_;
  int heads_ = 0;
  int64_t hd_ = 0, width_ = 0;
  Param wq_, wk_, wv_, w_beta_, w_alpha_, a_log_, dt_bias_, q_conv_w_, k_conv_w_, v_conv_w_, w_out_gate_,
      o_norm_, wo_;
  ShortConv conv_[3];
  int batch_ = 0, seq_ = 0, decode_batch_ = 0;
  int64_t n_ = 0;
  Rows train_, dec_;
  float *checkpoints_ = nullptr, *scratch_ = nullptr, *state_ = nullptr;
  float *q_gain_ = nullptr, *k_gain_ = nullptr, *dgain_ = nullptr;
};

}  // namespace

std::unique_ptr<Operator> make_deltanet(OpContext& context) { return std::make_unique<DeltaNetOp>(context); }

}  // namespace livs::evaluator
