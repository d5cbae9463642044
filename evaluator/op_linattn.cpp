// linattn: causal linear attention with a positive feature map, optionally
// gated (GLA), optionally differential, optionally reading an earlier
// linattn's features (feature sharing).
//   q_g = phi(x Wq_g^T), k_g = phi(x Wk_g^T), v = x Wv^T      (g = 1, or 1..2 when differential)
//   log alpha = log(sigmoid(x W_gate^T + gate_bias)) / 16    (gated; GLA's low-temperature gate)
//   S_t = diag(alpha_t) S_{t-1} + k_t v_t^T,  a_t = S_t^T q_t   (per head, d_k = d_v = head_dim)
//   o = a_1                   or   o = a_1 - (0.8 + lambda_h) a_2   (differential)
//   y = (rmsnorm_per_head(o) * c / sqrt(head_dim)) Wo^T,  c = 1, or 1 - 0.8 when differential
//   (each head's output vector normalised to unit length, times c)
// The normalisation is GLA's / RetNet's per-head norm (no gain, so no weight)
// instead of the classical phi(q).sum(phi(k)) denominator: it keeps the
// decode state at heads x d_k x d_v and the output scale bounded whatever the
// decay. Differential follows the Differential Transformer: subtract, then
// normalise per head, then scale by (1 - lambda_init).
// Feature sharing: the sharer has only wq, wo (and lambda); it reads the
// source's k, v and decay (and in decode the source's state), and sends dk,
// dv and dlog_alpha back into the source's gradient buffers.
// Short convolution (short_conv = kernel > 0): the projections x Wq^T, x Wk^T
// and x Wv^T each pass a causal depthwise conv (short_conv.hpp) before the
// feature map: q_g = phi(conv(x Wq_g^T)), ...; decode keeps the last
// kernel - 1 projected inputs besides the state (q's only for a sharer).
#include <cmath>
#include <stdexcept>

#include "evaluator/operator.hpp"
#include "evaluator/short_conv.hpp"

namespace livs::evaluator {

namespace {

constexpr float kLambdaInit = 0.8f;
constexpr float kGateTemperature = 16.0f;

FeatureMapKind kind_of(genome::FeatureMap f) {
  switch (f) {
    case genome::FeatureMap::elu_plus_one:
      return FeatureMapKind::elu_plus_one;
    case genome::FeatureMap::relu:
      return FeatureMapKind::relu;
    case genome::FeatureMap::identity:
      return FeatureMapKind::identity;
  }
  return FeatureMapKind::elu_plus_one;
}

class LinearAttentionOp final : public Operator {
 public:
  explicit LinearAttentionOp(OpContext& c)
      : knobs_(c.spec.linattn),
        d_(c.d_model),
        groups_(c.spec.differential ? 2 : 1),
        own_features_(!c.spec.feature_source.valid()),
        eps_(float(c.norm_eps)),
        describe_(c.describe()) {
    if (knobs_.heads <= 0 || knobs_.head_dim <= 0)
      throw std::invalid_argument(describe_ + ": invalid knobs (heads " + std::to_string(knobs_.heads) +
                                  ", head_dim " + std::to_string(knobs_.head_dim) + ")");
    width_ = int64_t(knobs_.heads) * knobs_.head_dim;
    c.bind_weight("wq", {groups_ * width_, d_}, Init::normal, true, &wq_);
    if (own_features_) {
      c.bind_weight("wk", {groups_ * width_, d_}, Init::normal, true, &wk_);
      c.bind_weight("wv", {width_, d_}, Init::normal, true, &wv_);
      if (knobs_.gated) {
        c.bind_weight("w_gate", {width_, d_}, Init::normal, true, &w_gate_);
        c.bind_weight("gate_bias", {width_}, Init::zeros, false, &gate_bias_);
      }
    }
    c.bind_weight("wo", {d_, width_}, Init::out_projection, true, &wo_);
    if (groups_ == 2) c.bind_weight("lambda", {knobs_.heads}, Init::zeros, false, &lambda_);
    if (const int k = knobs_.short_conv; k > 0) {
      c.bind_weight("q_conv", {groups_ * width_, k}, Init::fan_in_uniform, true, &q_conv_w_);
      if (own_features_) {
        c.bind_weight("k_conv", {groups_ * width_, k}, Init::fan_in_uniform, true, &k_conv_w_);
        c.bind_weight("v_conv", {width_, k}, Init::fan_in_uniform, true, &v_conv_w_);
      }
      for (int g = 0; g < groups_; ++g) {
        q_conv_[g] = ShortConv(&q_conv_w_, g * width_, width_, k);
        if (own_features_) k_conv_[g] = ShortConv(&k_conv_w_, g * width_, width_, k);
      }
      if (own_features_) v_conv_ = ShortConv(&v_conv_w_, 0, width_, k);
    }
  }

  void share_features_from(Operator& source) override {
    auto* src = dynamic_cast<LinearAttentionOp*>(&source);
    if (!src || own_features_ || !src->own_features_ || src->knobs_.heads != knobs_.heads ||
        src->knobs_.head_dim != knobs_.head_dim || src->knobs_.feature_map != knobs_.feature_map ||
        src->knobs_.gated != knobs_.gated || src->knobs_.short_conv != knobs_.short_conv ||
        src->groups_ != groups_)
      throw std::invalid_argument(describe_ +
                                  ": feature sharing needs a linattn source that owns its features with the "
                                  "same heads, feature map, gating, short_conv and differential form");
    source_ = src;
    src->has_sharers_ = true;
  }

  void plan(Arena& arena, const PlanShape& s) override {
    if (!own_features_ && !source_)
      throw std::invalid_argument(describe_ + ": shares features but no source was connected");
    batch_ = s.batch;
    seq_ = s.seq;
    n_ = s.tokens();
    if (n_ > 0) plan_rows(arena, train_, n_, true);
    decode_batch_ = s.decode_batch;
    if (decode_batch_ > 0) {
      plan_rows(arena, dec_, decode_batch_, false);
      if (own_features_)
        for (int g = 0; g < groups_; ++g)
          arena.reserve_state(&state_[g],
                              int64_t(decode_batch_) * knobs_.heads * knobs_.head_dim * knobs_.head_dim);
    }
    for (ShortConv* conv : {&q_conv_[0], &q_conv_[1], &k_conv_[0], &k_conv_[1], &v_conv_})
      conv->plan(arena, n_, decode_batch_);
    arena.reserve_constant(&norm_gain_, std::vector<float>(knobs_.head_dim, output_scale()));
    arena.reserve(&dnorm_gain_, knobs_.head_dim);
  }

  void forward(Backend& be, OpInput x, float* y) override {
    Rows& r = train_;
    project_features(be, x, r, n_, batch_, seq_, false);
    if (own_features_ && accumulates_attention_gradients()) {  // sharers add into these before our backward
      for (int g = 0; g < groups_; ++g) be.fill(r.dkf[g], n_ * width_, 0.0f);
      be.fill(r.dv, n_ * width_, 0.0f);
      if (knobs_.gated) be.fill(r.dla, n_ * width_, 0.0f);
    }
    const Rows& f = features();
    for (int g = 0; g < groups_; ++g)
      be.linear_attention_forward(r.a[g], r.qf[g], f.kf[g], f.v, f.la, shape(batch_, seq_));
    finish(be, r, n_, y);
  }

  void backward(Backend& be, OpInput x, OpInput dy, float* dx_out, bool accumulate_dx) override {
    InputGradient dx(dx_out, accumulate_dx);
    Rows& r = train_;
    const int64_t hd = knobs_.head_dim, rows = n_ * knobs_.heads;
    // dnormed, dmixed, dq and dk_raw are written by their first step (the out
    // projection, the norm, the feature maps); without the differential form
    // the attention's output gradient is dmixed itself (no copy).
    const bool accumulate = accumulates_attention_gradients();
    for (int g = 0; g < groups_; ++g) {
      if (groups_ == 2) be.fill(r.da[g], n_ * width_, 0.0f);  // differential_backward adds into both
      if (accumulate) be.fill(r.dq_feature[g], n_ * width_, 0.0f);
    }
    be.fill(dnorm_gain_, knobs_.head_dim, 0.0f);  // a constant gain: its gradient is discarded
    be.matmul_backward_weight({wo_.grad, d_, width_}, {dy, n_, d_}, {r.normed, n_, width_});
    be.matmul_backward_input({r.dnormed, n_, width_}, {dy, n_, d_}, wo_.operand(d_, width_),
                             /*accumulate=*/false);
    be.rmsnorm_backward({r.dmixed, rows, hd}, dnorm_gain_, {r.dnormed, rows, hd}, {r.mixed, rows, hd},
                        norm_gain_, r.rstd, nullptr, /*accumulate_dx=*/false);
    if (groups_ == 2)
      be.differential_backward(r.da[0], r.da[1], lambda_.grad, r.dmixed, r.a[1], lambda_.value, kLambdaInit,
                               n_, knobs_.heads, knobs_.head_dim);
    const Rows& f = features();
    for (int g = 0; g < groups_; ++g) {
      const float* da = groups_ == 2 ? r.da[g] : r.dmixed;
      be.linear_attention_backward(r.dqf(g), f.dkf[g], f.dv, f.dla, da, r.qf[g], f.kf[g], f.v, f.la,
                                   shape(batch_, seq_), accumulate);
    }
    // r.dqf(g) is the feature-space gradient; map it back through phi.
    for (int g = 0; g < groups_; ++g) {
      be.feature_map_backward(r.dq[g], r.dqf(g), r.q[g], n_ * width_, kind_of(knobs_.feature_map),
                              /*accumulate=*/false);
      linear_backward(be, wq_, g, q_conv_[g].backward(be, r.dq[g], batch_, seq_), x, dx);
    }
    if (!own_features_) return;
    for (int g = 0; g < groups_; ++g) {
      be.feature_map_backward(r.dk_raw, r.dkf[g], r.k[g], n_ * width_, kind_of(knobs_.feature_map),
                              /*accumulate=*/false);
      linear_backward(be, wk_, g, k_conv_[g].backward(be, r.dk_raw, batch_, seq_), x, dx);
    }
    linear_backward(be, wv_, 0, v_conv_.backward(be, r.dv, batch_, seq_), x, dx);
    if (knobs_.gated) {
      be.fill(r.dk_raw, n_ * width_, 0.0f);  // reused as dz
      be.gla_log_decay_backward(r.dk_raw, gate_bias_.grad, r.dla, r.z, gate_bias_.value, n_, width_,
                                kGateTemperature);
      linear_backward(be, w_gate_, 0, r.dk_raw, x, dx);
    }
  }

  // heads x d_k x d_v per feature group; a feature sharer reads its source's.
  // Plus the short convolutions' last kernel - 1 inputs (q's only for a sharer).
  genome::DecodeState decode_state() const override {
    int64_t conv = 0;
    for (const ShortConv* c : {&q_conv_[0], &q_conv_[1], &k_conv_[0], &k_conv_[1], &v_conv_})
      conv += c->state_floats();
    if (!own_features_) return {conv, 0, 0};
    return {conv + int64_t(groups_) * knobs_.heads * knobs_.head_dim * knobs_.head_dim, 0, 0};
  }

  void decode_step(Backend& be, const float* x, float* y, int64_t) override {
    Rows& r = dec_;
    const int64_t b = decode_batch_;
    project_features(be, x, r, b, decode_batch_, 1, true);
    const LinearAttentionShape s = shape(decode_batch_, 1);
    for (int g = 0; g < groups_; ++g) {
      if (own_features_) be.linear_attention_state_update(state_[g], r.kf[g], r.v, r.la, s);
      be.linear_attention_state_read(r.a[g], r.qf[g], source_ ? source_->state_[g] : state_[g], s);
    }
    finish(be, r, b, y);
  }

 private:
  // Activations for one row count (training tokens, or decode sequences).
  struct Rows {
    float *q[2] = {}, *qf[2] = {}, *k[2] = {}, *kf[2] = {}, *v = nullptr, *z = nullptr, *la = nullptr;
    float *a[2] = {}, *mixed = nullptr, *normed = nullptr, *rstd = nullptr;
    // Gradients (training only).
    float *dq[2] = {}, *dq_feature[2] = {}, *dkf[2] = {}, *dv = nullptr, *dla = nullptr, *dk_raw = nullptr;
    float *da[2] = {}, *dmixed = nullptr, *dnormed = nullptr;
    float* dqf(int g) const { return dq_feature[g]; }
  };

  void plan_rows(Arena& arena, Rows& r, int64_t rows, bool grads) {
    const int64_t n = rows * width_;
    for (int g = 0; g < groups_; ++g) {
      arena.reserve(&r.q[g], n);
      arena.reserve(&r.qf[g], n);
      arena.reserve(&r.a[g], n);
      if (own_features_) {
        arena.reserve(&r.k[g], n);
        arena.reserve(&r.kf[g], n);
      }
      if (grads) {
        arena.reserve(&r.dq[g], n);
        arena.reserve(&r.dq_feature[g], n);
        if (groups_ == 2) arena.reserve(&r.da[g], n);  // else the output gradient is dmixed
        if (own_features_) arena.reserve(&r.dkf[g], n);
      }
    }
    if (own_features_) {
      arena.reserve(&r.v, n);
      if (grads) {
        arena.reserve(&r.dv, n);
        arena.reserve(&r.dk_raw, n);
      }
      if (knobs_.gated) {
        arena.reserve(&r.z, n);
        arena.reserve(&r.la, n);
        if (grads) arena.reserve(&r.dla, n);
      }
    }
    arena.reserve(&r.mixed, n);
    arena.reserve(&r.normed, n);
    arena.reserve(&r.rstd, rows * knobs_.heads);
    if (grads) {
      arena.reserve(&r.dmixed, n);
      arena.reserve(&r.dnormed, n);
    }
  }

  // Whether linear_attention_backward adds into its gradients (zeroed first)
  // rather than writing them: where a sharer adds into our feature gradients
  // (its backward runs before ours), where we are a sharer, and in the
  // differential form (both groups add into dv and dlog_alpha).
  bool accumulates_attention_gradients() const { return has_sharers_ || !own_features_ || groups_ == 2; }

  // The features (k, v, decay and their gradients) this operator attends over.
  const Rows& features() const { return source_ ? source_->train_ : train_; }

  // q, k, v (through their short convolutions when on), then the feature map.
  void project_features(Backend& be, const float* x, Rows& r, int64_t rows, int batch, int seq, bool decode) {
    const int64_t n = rows * width_;
    const FeatureMapKind fm = kind_of(knobs_.feature_map);
    for (int g = 0; g < groups_; ++g) {
      be.matmul({q_conv_[g].input(r.q[g], decode), rows, width_}, {x, rows, d_},
                wq_.operand(width_, d_, g * width_ * d_));
      q_conv_[g].forward(be, r.q[g], batch, seq, decode);
      be.feature_map_forward(r.qf[g], r.q[g], n, fm);
      if (!own_features_) continue;
      be.matmul({k_conv_[g].input(r.k[g], decode), rows, width_}, {x, rows, d_},
                wk_.operand(width_, d_, g * width_ * d_));
      k_conv_[g].forward(be, r.k[g], batch, seq, decode);
      be.feature_map_forward(r.kf[g], r.k[g], n, fm);
    }
    if (!own_features_) return;
    be.matmul({v_conv_.input(r.v, decode), rows, width_}, {x, rows, d_}, wv_.operand(width_, d_));
    v_conv_.forward(be, r.v, batch, seq, decode);
    if (knobs_.gated) {
      be.matmul({r.z, rows, width_}, {x, rows, d_}, w_gate_.operand(width_, d_));
      be.gla_log_decay_forward(r.la, r.z, gate_bias_.value, rows, width_, kGateTemperature);
    }
  }

  // a_1 (- lambda a_2) -> per-head RMSNorm -> Wo.
  void finish(Backend& be, Rows& r, int64_t rows, float* y) {
    const int64_t hd = knobs_.head_dim;
    if (groups_ == 2)
      be.differential_forward(r.mixed, r.a[0], r.a[1], lambda_.value, kLambdaInit, rows, knobs_.heads,
                              knobs_.head_dim);
    else
      be.copy(r.mixed, r.a[0], rows * width_);
    be.rmsnorm_forward({r.normed, rows * knobs_.heads, hd}, r.rstd, {r.mixed, rows * knobs_.heads, hd},
                       norm_gain_, eps_);
    be.matmul({y, rows, d_}, {r.normed, rows, width_}, wo_.operand(d_, width_));
  }

  // The projection `g` (a block of rows of w): dW_g += dout^T x, dx += dout W_g
  // (x with its bf16 shadow, so a bf16 backend rounds dout once for both).
  void linear_backward(Backend& be, const Param& w, int g, const float* dout, OpInput x, InputGradient& dx) {
    be.linear_backward({w.grad + g * width_ * d_, width_, d_}, {dx.data(), n_, d_}, {dout, n_, width_},
                       {x.data, n_, d_, x.bf16}, w.operand(width_, d_, g * width_ * d_), dx.next());
  }

  // Per-head L2 normalisation: RMSNorm's unit RMS times 1/sqrt(head_dim) is a
  // unit-length head vector, so the output starts at the scale of softmax
  // attention's average of values (a unit-RMS output trains far slower: the
  // same context average is added to every token at 10x the embedding's scale).
  float output_scale() const {
    return float((groups_ == 2 ? 1.0 - kLambdaInit : 1.0) / std::sqrt(double(knobs_.head_dim)));
  }

  LinearAttentionShape shape(int batch, int seq) const { return {batch, seq, knobs_.heads, knobs_.head_dim}; }

  genome::LinAttnKnobs knobs_;
  int64_t d_;
  int groups_;
  bool own_features_;
  float eps_;
  std::string describe_;
  int64_t width_ = 0;
  Param wq_, wk_, wv_, wo_, w_gate_, gate_bias_, lambda_, q_conv_w_, k_conv_w_, v_conv_w_;
  ShortConv q_conv_[2], k_conv_[2], v_conv_;
  LinearAttentionOp* source_ = nullptr;
  bool has_sharers_ = false;  // some later linattn reads our features (share_features_from)
  int batch_ = 0, seq_ = 0, decode_batch_ = 0;
  int64_t n_ = 0;
  Rows train_, dec_;
  float* state_[2] = {};
  float *norm_gain_ = nullptr, *dnorm_gain_ = nullptr;
};

}  // namespace

std::unique_ptr<Operator> make_linear_attention(OpContext& context) {
  return std::make_unique<LinearAttentionOp>(context);
}

}  // namespace livs::evaluator
