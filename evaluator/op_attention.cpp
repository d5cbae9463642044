// sa: causal softmax attention with RoPE, optional qk-RMSNorm, MHA/GQA/MQA and
// an optional sliding window; decode keeps a KV cache (a ring buffer of the
// window when there is one).
//   q = x Wq^T, k = x Wk^T, v = x Wv^T   (per head: [.., heads, head_dim])
//   q, k <- rmsnorm per head (qk_norm), then RoPE
//   y = attention(q, k, v) Wo^T
// Differential (Differential Transformer): two groups q_1, q_2 and k_1, k_2
// (the doubled wq/wk rows: group 1 first), one v,
//   a = attention(q_1, k_1, v) - (0.8 + lambda_h) attention(q_2, k_2, v),
//   y = (rmsnorm_per_head(a) * (1 - 0.8)) Wo^T,
// lambda a plain per-head parameter stored as its offset from lambda_init =
// 0.8 (initialised to 0), instead of the paper's exp(lq1.lk1) - exp(lq2.lk2) + 0.8.
// Feature sharing: the sharer has its own q (wq, q_norm) and reads the
// source's normed and rotated K and its V (training) or K/V caches (decode);
// it has no cache of its own and sends dK/dV back into the source's buffers.
// Short convolution (short_conv = kernel > 0): each projection's output (q,
// k, v, per feature group) passes a causal depthwise conv (short_conv.hpp)
// before qk-norm and RoPE; decode keeps its last kernel - 1 inputs.
// Output gate (gated attention, Qiu et al. 2025 / Qwen3-Next): the attention
// output (after the differential combination) is multiplied elementwise by
// sigmoid(x W_out_gate^T) before Wo.
#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "evaluator/operator.hpp"
#include "evaluator/short_conv.hpp"

namespace livs::evaluator {

namespace {

constexpr float kLambdaInit = 0.8f;

class AttentionOp final : public Operator {
 public:
  explicit AttentionOp(OpContext& c)
      : knobs_(c.spec.sa),
        d_(c.d_model),
        eps_(float(c.norm_eps)),
        groups_(c.spec.differential ? 2 : 1),
        own_kv_(!c.spec.feature_source.valid()),
        describe_(c.describe()) {
    const auto& k = knobs_;
    if (k.heads <= 0 || k.kv_heads <= 0 || k.heads % k.kv_heads != 0 || k.head_dim <= 0 || k.window < 0 ||
        (k.rope && k.head_dim % 2 != 0))
      throw std::invalid_argument(c.describe() + ": invalid knobs (heads " + std::to_string(k.heads) +
                                  ", kv_heads " + std::to_string(k.kv_heads) + ", head_dim " +
                                  std::to_string(k.head_dim) + ", window " + std::to_string(k.window) + ")");
    hq_ = int64_t(k.heads) * k.head_dim;
    hkv_ = int64_t(k.kv_heads) * k.head_dim;
    c.bind_weight("wq", {groups_ * hq_, d_}, Init::normal, true, &wq_);
    if (own_kv_) {
      c.bind_weight("wk", {groups_ * hkv_, d_}, Init::normal, true, &wk_);
      c.bind_weight("wv", {hkv_, d_}, Init::normal, true, &wv_);
    }
    c.bind_weight("wo", {d_, hq_}, Init::out_projection, true, &wo_);
    if (k.qk_norm) {
      c.bind_weight("q_norm", {k.head_dim}, Init::ones, false, &q_norm_);
      if (own_kv_) c.bind_weight("k_norm", {k.head_dim}, Init::ones, false, &k_norm_);
    }
    if (groups_ == 2) c.bind_weight("lambda", {k.heads}, Init::zeros, false, &lambda_);
    if (k.short_conv > 0) {
      c.bind_weight("q_conv", {groups_ * hq_, k.short_conv}, Init::fan_in_uniform, true, &q_conv_w_);
      if (own_kv_) {
        c.bind_weight("k_conv", {groups_ * hkv_, k.short_conv}, Init::fan_in_uniform, true, &k_conv_w_);
        c.bind_weight("v_conv", {hkv_, k.short_conv}, Init::fan_in_uniform, true, &v_conv_w_);
      }
      for (int g = 0; g < groups_; ++g) {
        q_conv_[g] = ShortConv(&q_conv_w_, g * hq_, hq_, k.short_conv);
        if (own_kv_) k_conv_[g] = ShortConv(&k_conv_w_, g * hkv_, hkv_, k.short_conv);
      }
      if (own_kv_) v_conv_ = ShortConv(&v_conv_w_, 0, hkv_, k.short_conv);
    }
    if (k.output_gate) c.bind_weight("w_out_gate", {hq_, d_}, Init::normal, true, &w_out_gate_);
  }

  void share_features_from(Operator& source) override {
    auto* src = dynamic_cast<AttentionOp*>(&source);
    const auto &a = knobs_, &b = src ? src->knobs_ : knobs_;
    if (!src || own_kv_ || !src->own_kv_ || a.heads != b.heads || a.kv_heads != b.kv_heads ||
        a.head_dim != b.head_dim || a.window != b.window || a.qk_norm != b.qk_norm || a.rope != b.rope ||
        a.rope_theta != b.rope_theta || a.short_conv != b.short_conv || groups_ != src->groups_)
      throw std::invalid_argument(
          describe_ +
          ": K/V feature sharing needs an sa source that owns its K and V with the same "
          "heads, kv_heads, window, qk_norm, rope, short_conv and differential form");
    source_ = src;
    src->has_sharers_ = true;
  }

  void plan(Arena& arena, const PlanShape& s) override {
    batch_ = s.batch;
    seq_ = s.seq;
    n_ = s.tokens();
    const auto& k = knobs_;
    if (!own_kv_ && !source_)
      throw std::invalid_argument(describe_ + ": shares K/V but no source was connected");
    if (n_ > 0) {
      // q and k straight from one product into RoPE (no norm, no convolution,
      // shadows planned): [Wq; Wk] in one GEMM each way, q | k on every row.
      // v's gradient joins them (written by the attention's backward) where
      // nothing adds into it (no sharers).
      fused_qk_ =
          groups_ == 1 && own_kv_ && k.rope && !k.qk_norm && k.short_conv == 0 && arena.gemm_shadows();
      fused_v_ = fused_qk_ && !has_sharers_;
      if (fused_qk_) {
        arena.reserve(&qk_raw_, n_ * (hq_ + hkv_));
        arena.reserve_gemm_shadow(&dqkv16_, n_ * fused_grad_width());
      }
      for (int g = 0; g < groups_; ++g) {
        if (!fused_qk_) arena.reserve(&q_[g].raw, n_ * hq_);
        arena.reserve(&att_[g], n_ * hq_);
        arena.reserve(&lse_[g], n_ * k.heads);
        arena.reserve(&datt_[g], n_ * hq_);
        plan_projection(arena, q_[g], n_, k.heads);
        if (!own_kv_) continue;
        if (!fused_qk_) arena.reserve(&k_[g].raw, n_ * hkv_);
        plan_projection(arena, k_[g], n_, k.kv_heads);
      }
      if (own_kv_) {
        arena.reserve(&v_, n_ * hkv_);
        arena.reserve(&dv_, n_ * hkv_);
      }
      if (groups_ == 2) plan_differential(arena, mix_, n_, true);
      // bf16 shadows (x's comes from the model's RMSNorm): the attention
      // output feeds Wo and its gradient, and each gradient into a projection
      // feeds its two backward products (one at a time; also dy's, when the
      // caller has none).
      arena.reserve_gemm_shadow(&out16_, n_ * hq_);
      arena.reserve_gemm_shadow(&grad16_, n_ * std::max({d_, hq_, hkv_}));
      if (own_kv_ && !v_conv_.on() && !fused_v_) arena.reserve_gemm_shadow(&dv16_, n_ * hkv_);
    }
    decode_batch_ = s.decode_batch;
    if (decode_batch_ > 0) {
      capacity_ = k.window > 0 ? std::min<int64_t>(k.window, s.decode_context) : s.decode_context;
      decode_context_ = s.decode_context;
      const int64_t b = decode_batch_;
      for (int g = 0; g < groups_; ++g) {
        arena.reserve(&dec_q_[g].raw, b * hq_);
        arena.reserve(&dec_att_[g], b * hq_);
        plan_projection(arena, dec_q_[g], b, k.heads, false);
        if (!own_kv_) continue;
        arena.reserve_state(&k_cache_[g], b * k.kv_heads * capacity_ * k.head_dim);
        arena.reserve(&dec_k_[g].raw, b * hkv_);
        plan_projection(arena, dec_k_[g], b, k.kv_heads, false);
      }
      if (own_kv_) {
        arena.reserve_state(&v_cache_, b * k.kv_heads * capacity_ * k.head_dim);
        arena.reserve(&dec_v_, b * hkv_);
      }
      if (groups_ == 2) plan_differential(arena, dec_mix_, b, false);
      if (k.output_gate) plan_gate(arena, dec_gate_, b, false);
    }
    for (ShortConv* conv : {&q_conv_[0], &q_conv_[1], &k_conv_[0], &k_conv_[1], &v_conv_})
      conv->plan(arena, n_, decode_batch_);
    if (n_ > 0 && k.output_gate) plan_gate(arena, gate_, n_, true);
    if (groups_ == 2) {
      arena.reserve_constant(&mix_gain_, std::vector<float>(std::size_t(k.head_dim), 1.0f - kLambdaInit));
      arena.reserve(&dmix_gain_, k.head_dim);
    }
    if (k.rope) {
      const int64_t positions = s.max_position(), half = k.head_dim / 2;
      std::vector<float> cos(positions * half), sin(positions * half);
      for (int64_t p = 0; p < positions; ++p)
        for (int64_t i = 0; i < half; ++i) {
          const double angle = double(p) * std::pow(k.rope_theta, -2.0 * double(i) / double(k.head_dim));
          cos[p * half + i] = float(std::cos(angle));
          sin[p * half + i] = float(std::sin(angle));
        }
      arena.reserve_constant(&cos_, std::move(cos));
      arena.reserve_constant(&sin_, std::move(sin));
    }
  }

  void forward(Backend& be, OpInput x, float* y) override {
    const auto& k = knobs_;
    const GemmOperand xs(x.data, n_, d_, x.bf16);
    if (fused_qk_) {  // q and k: the two parts of every row of one product
      q_[0].raw = qk_raw_;
      k_[0].raw = qk_raw_ + hq_;
      be.matmul({qk_raw_, n_, hq_ + hkv_}, xs, fused_weights(hq_ + hkv_));
    }
    const int64_t raw_ld = fused_qk_ ? hq_ + hkv_ : 0;
    for (int g = 0; g < groups_; ++g) {
      if (!fused_qk_)
        be.matmul({q_conv_[g].input(q_[g].raw, false), n_, hq_}, xs, wq_.operand(hq_, d_, g * hq_ * d_));
      q_conv_[g].forward(be, q_[g].raw, batch_, seq_, false);
      project(be, q_[g], n_, k.heads, q_norm_, batch_, seq_, 0, raw_ld);
      if (!own_kv_) continue;
      if (!fused_qk_)
        be.matmul({k_conv_[g].input(k_[g].raw, false), n_, hkv_}, xs, wk_.operand(hkv_, d_, g * hkv_ * d_));
      k_conv_[g].forward(be, k_[g].raw, batch_, seq_, false);
      project(be, k_[g], n_, k.kv_heads, k_norm_, batch_, seq_, 0, raw_ld);
      // Feature sharers add into these before our backward runs.
      if (accumulates_attention_gradients()) zero_grads(be, k_[g], n_ * hkv_);
    }
    if (own_kv_) {
      be.matmul({v_conv_.input(v_, false), n_, hkv_}, xs, wv_.operand(hkv_, d_));
      v_conv_.forward(be, v_, batch_, seq_, false);
      if (accumulates_attention_gradients()) be.fill(dv_, n_ * hkv_, 0.0f);
    }
    const AttentionOp& f = features();
    // The attention's output goes straight into Wo (one group, no output
    // gate): the kernel writes its shadow too.
    const bool direct = groups_ == 1 && !k.output_gate;
    for (int g = 0; g < groups_; ++g)
      be.attention_forward(att_[g], lse_[g], q_[g].rotated, f.k_[g].rotated, f.v_, shape(batch_, seq_),
                           direct ? out16_ : nullptr);
    const float* out = gate_forward(be, gate_, combine(be, att_, mix_, n_), xs, n_);
    const void* out16 = direct ? out16_ : round_shadow(be, out16_, out, n_ * hq_);
    be.matmul({y, n_, d_}, {out, n_, hq_, out16}, wo_.operand(d_, hq_));
  }

  void backward(Backend& be, OpInput x, OpInput dy, float* dx_out, bool accumulate_dx) override {
    InputGradient dx(dx_out, accumulate_dx);
    const auto& k = knobs_;
    const bool accumulate = accumulates_attention_gradients();
    for (int g = 0; g < groups_; ++g) {
      if (groups_ == 2) be.fill(datt_[g], n_ * hq_, 0.0f);  // differential_backward adds into both
      if (accumulate) zero_grads(be, q_[g], n_ * hq_);
    }
    const float* out = groups_ == 2 ? mix_.normed : att_[0];
    float* dout = groups_ == 2 ? mix_.dnormed : datt_[0];
    const GemmOperand dys(dy.data, n_, d_, shadow_of(be, dy, grad16_, n_ * d_));
    const bool gated = knobs_.output_gate;
    be.matmul_backward_weight({wo_.grad, d_, hq_}, dys, {gated ? gate_.gated : out, n_, hq_, out16_});
    be.matmul_backward_input({gated ? gate_.dgated : dout, n_, hq_}, dys, wo_.operand(d_, hq_),
                             /*accumulate=*/false);
    if (gated) gate_backward(be, dout, out, x, dx);
    if (groups_ == 2) {
      const int64_t rows = n_ * k.heads, hd = k.head_dim;
      be.fill(dmix_gain_, hd, 0.0f);  // a constant gain: its gradient is discarded
      be.rmsnorm_backward({mix_.dmixed, rows, hd}, dmix_gain_, {mix_.dnormed, rows, hd},
                          {mix_.mixed, rows, hd}, mix_gain_, mix_.rstd, nullptr, /*accumulate_dx=*/false);
      be.differential_backward(datt_[0], datt_[1], lambda_.grad, mix_.dmixed, att_[1], lambda_.value,
                               kLambdaInit, n_, k.heads, k.head_dim);
    }
    AttentionOp& f = features();
    // dv feeds only its products (written, no convolution): its shadow from
    // the kernel too, into v's part of the fused gradient where there is one.
    const int64_t ld = fused_grad_width();
    void* const dv16 = accumulate ? nullptr : fused_v_ ? static_cast<uint16_t*>(dqkv16_) + hq_ + hkv_ : dv16_;
    AttentionShape att_shape = shape(batch_, seq_);
    if (fused_v_) att_shape.dv16_ld = ld;
    for (int g = 0; g < groups_; ++g) {
      be.attention_backward(q_[g].d_rotated, f.k_[g].d_rotated, f.dv_, datt_[g], q_[g].rotated,
                            f.k_[g].rotated, f.v_, att_[g], lse_[g], att_shape, accumulate, dv16);
      if (!fused_qk_) project_backward(be, q_[g], k.heads, q_norm_, q_conv_[g], wq_, g, x, dx);
    }
    if (fused_qk_) {  // RoPE's backward writes q's and k's parts of one bf16 gradient: one product each way
      be.rope_backward_bf16(dqkv16_, q_[0].d_rotated, cos_, sin_,
                            {batch_, seq_, k.heads, k.head_dim, 0, 0, ld});
      be.rope_backward_bf16(static_cast<uint16_t*>(dqkv16_) + hq_, k_[0].d_rotated, cos_, sin_,
                            {batch_, seq_, k.kv_heads, k.head_dim, 0, 0, ld});
      const GemmOperand dqkv(nullptr, n_, ld, dqkv16_);
      be.matmul_backward_weight({wq_.grad, ld, d_}, dqkv, {x.data, n_, d_, x.bf16});  // [dWq; dWk (; dWv)]
      be.matmul_backward_input({dx.data(), n_, d_}, dqkv, fused_weights(ld), dx.next());
    }
    if (!own_kv_ || fused_v_) return;
    if (!fused_qk_)
      for (int g = 0; g < groups_; ++g)
        project_backward(be, k_[g], k.kv_heads, k_norm_, k_conv_[g], wk_, g, x, dx);
    if (dv16)
      linear_backward(be, wv_, 0, hkv_, GemmOperand(dv_, n_, hkv_, dv16), x, dx);
    else
      linear_backward(be, wv_, 0, hkv_, v_conv_.backward(be, dv_, batch_, seq_), x, dx);
  }

  bool reads_input_values() const override { return false; }  // x reaches GEMMs only

  // The KV cache: (groups + 1) * kv_heads * head_dim values per token (K per
  // group, V once), up to the window; none for a feature sharer.
  // The short convolutions add their last kernel - 1 inputs (q's for a sharer too).
  genome::DecodeState decode_state() const override {
    int64_t conv = 0;
    for (const ShortConv* c : {&q_conv_[0], &q_conv_[1], &k_conv_[0], &k_conv_[1], &v_conv_})
      conv += c->state_floats();
    if (!own_kv_) return {conv, 0, 0};
    return {conv, (groups_ + 1) * hkv_, knobs_.window > 0 ? int64_t(knobs_.window) : 0};
  }

  void decode_step(Backend& be, const float* x, float* y, int64_t position) override {
    if (position < 0 || position >= decode_context_)
      throw std::out_of_range("attention decode: position " + std::to_string(position) +
                              " outside the planned " + std::to_string(decode_context_) + "-token context");
    const auto& k = knobs_;
    const int64_t b = decode_batch_;
    const AttentionShape s = shape(decode_batch_, 1);
    if (own_kv_) {
      be.matmul({v_conv_.input(dec_v_, true), b, hkv_}, {x, b, d_}, wv_.operand(hkv_, d_));
      v_conv_.forward(be, dec_v_, decode_batch_, 1, true);
    }
    const AttentionOp& f = features();
    for (int g = 0; g < groups_; ++g) {
      be.matmul({q_conv_[g].input(dec_q_[g].raw, true), b, hq_}, {x, b, d_},
                wq_.operand(hq_, d_, g * hq_ * d_));
      q_conv_[g].forward(be, dec_q_[g].raw, decode_batch_, 1, true);
      project(be, dec_q_[g], b, k.heads, q_norm_, decode_batch_, 1, position);
      if (own_kv_) {
        be.matmul({k_conv_[g].input(dec_k_[g].raw, true), b, hkv_}, {x, b, d_},
                  wk_.operand(hkv_, d_, g * hkv_ * d_));
        k_conv_[g].forward(be, dec_k_[g].raw, decode_batch_, 1, true);
        project(be, dec_k_[g], b, k.kv_heads, k_norm_, decode_batch_, 1, position);
        // Both groups write the same V into the one V cache: harmless.
        be.kv_cache_write(k_cache_[g], v_cache_, dec_k_[g].rotated, dec_v_, s, capacity_, position);
      }
      be.attention_decode(dec_att_[g], dec_q_[g].rotated, f.k_cache_[g], f.v_cache_, s, capacity_, position);
    }
    const float* out = gate_forward(be, dec_gate_, combine(be, dec_att_, dec_mix_, b), {x, b, d_}, b);
    be.matmul({y, b, d_}, {out, b, hq_}, wo_.operand(d_, hq_));
  }

 private:
  // The differential path's buffers: a_1 - lambda a_2, its per-head norm.
  struct Mix {
    float *mixed = nullptr, *normed = nullptr, *rstd = nullptr, *dmixed = nullptr, *dnormed = nullptr;
  };

  void plan_differential(Arena& arena, Mix& m, int64_t rows, bool with_grads) {
    arena.reserve(&m.mixed, rows * hq_);
    arena.reserve(&m.normed, rows * hq_);
    arena.reserve(&m.rstd, rows * knobs_.heads);
    if (!with_grads) return;
    arena.reserve(&m.dmixed, rows * hq_);
    arena.reserve(&m.dnormed, rows * hq_);
  }

  // What goes into Wo: the attention output, or the differential combination.
  const float* combine(Backend& be, float* const* att, Mix& m, int64_t rows) {
    if (groups_ == 1) return att[0];
    const int64_t hd = knobs_.head_dim;
    be.differential_forward(m.mixed, att[0], att[1], lambda_.value, kLambdaInit, rows, knobs_.heads,
                            knobs_.head_dim);
    be.rmsnorm_forward({m.normed, rows * knobs_.heads, hd}, m.rstd, {m.mixed, rows * knobs_.heads, hd},
                       mix_gain_, eps_);
    return m.normed;
  }

  // The output gate's buffers: z = x W_g^T, s = sigmoid(z), gated = out * s.
  struct Gate {
    float *z = nullptr, *s = nullptr, *gated = nullptr, *dgated = nullptr, *ds = nullptr, *dz = nullptr;
  };

  void plan_gate(Arena& arena, Gate& gt, int64_t rows, bool with_grads) {
    for (float** b : {&gt.z, &gt.s, &gt.gated}) arena.reserve(b, rows * hq_);
    if (with_grads)
      for (float** b : {&gt.dgated, &gt.ds, &gt.dz}) arena.reserve(b, rows * hq_);
  }

  // What goes into Wo: `out`, or out * sigmoid(x W_g^T) with the output gate.
  const float* gate_forward(Backend& be, Gate& gt, const float* out, const GemmOperand& x, int64_t rows) {
    if (!knobs_.output_gate) return out;
    be.matmul({gt.z, rows, hq_}, x, w_out_gate_.operand(hq_, d_));
    be.activation_forward(gt.s, gt.z, rows * hq_, ActivationKind::sigmoid);
    be.multiply_forward(gt.gated, out, gt.s, rows * hq_);
    return gt.gated;
  }

  // From gate_.dgated: dout (overwritten), dW_g and dx (accumulated).
  void gate_backward(Backend& be, float* dout, const float* out, OpInput x, InputGradient& dx) {
    Gate& gt = gate_;
    const int64_t count = n_ * hq_;
    be.multiply_backward(dout, gt.ds, gt.dgated, out, gt.s, count, /*accumulate=*/false);
    be.activation_backward(gt.dz, gt.ds, gt.z, count, ActivationKind::sigmoid, /*accumulate=*/false);
    linear_backward(be, w_out_gate_, 0, hq_, gt.dz, x, dx);
  }

  // The projection group g (a block of `rows` rows of w): dW_g += dout^T x, dx += dout W_g.
  // dout's shadow reuses grad16_.
  void linear_backward(Backend& be, const Param& w, int g, int64_t rows, const float* dout, OpInput x,
                       InputGradient& dx) {
    linear_backward(be, w, g, rows, GemmOperand(dout, n_, rows, round_shadow(be, grad16_, dout, n_ * rows)),
                    x, dx);
  }
  void linear_backward(Backend& be, const Param& w, int g, int64_t rows, const GemmOperand& douts, OpInput x,
                       InputGradient& dx) {
    be.matmul_backward_weight({w.grad + g * rows * d_, rows, d_}, douts, {x.data, n_, d_, x.bf16});
    be.matmul_backward_input({dx.data(), n_, d_}, douts, w.operand(rows, d_, g * rows * d_), dx.next());
  }

  // Whether attention_backward adds into its gradients (zeroed first) rather
  // than writing them: where a sharer adds into our K and V gradients (its
  // backward runs before ours), where we are a sharer, and in the
  // differential form (both groups add into dv).
  bool accumulates_attention_gradients() const { return has_sharers_ || !own_kv_ || groups_ == 2; }

  AttentionOp& features() { return source_ ? *source_ : *this; }
  const AttentionOp& features() const { return source_ ? *source_ : *this; }

  // q or k on its way from the projection to attention: raw -> normed (qk_norm)
  // -> rotated (RoPE). A stage that is off aliases the previous buffer.
  struct Projection {
    float *raw = nullptr, *normed = nullptr, *rotated = nullptr, *rstd = nullptr;
    float *d_raw = nullptr, *d_normed = nullptr, *d_rotated = nullptr;
  };

  void plan_projection(Arena& arena, Projection& p, int64_t rows, int heads, bool with_grads = true) {
    const int64_t width = int64_t(heads) * knobs_.head_dim;
    if (knobs_.qk_norm) {
      arena.reserve(&p.normed, rows * width);
      arena.reserve(&p.rstd, rows * heads);
      if (with_grads) arena.reserve(&p.d_raw, rows * width);
    }
    if (knobs_.rope) {
      arena.reserve(&p.rotated, rows * width);
      if (with_grads) arena.reserve(&p.d_normed, rows * width);
    }
    if (with_grads) arena.reserve(&p.d_rotated, rows * width);
  }

  // Arena pointers are only known after allocation, so aliases are resolved lazily.
  static void resolve(Projection& p) {
    if (!p.normed) p.normed = p.raw;
    if (!p.rotated) p.rotated = p.normed;
    if (!p.d_normed) p.d_normed = p.d_rotated;
    if (!p.d_raw) p.d_raw = p.d_normed;
  }

  // raw_ld: elements between raw's rows (0: contiguous; wider for q | k rows of one product, no norm).
  void project(Backend& be, Projection& p, int64_t rows, int heads, const Param& gain, int batch, int seq,
               int64_t position, int64_t raw_ld = 0) {
    resolve(p);
    const int64_t hd = knobs_.head_dim;
    if (knobs_.qk_norm)
      be.rmsnorm_forward({p.normed, rows * heads, hd}, p.rstd, {p.raw, rows * heads, hd}, gain.value, eps_);
    if (knobs_.rope)
      be.rope_forward(p.rotated, p.normed, cos_, sin_, {batch, seq, heads, int(hd), position, raw_ld, 0});
  }

  // [Wq; Wk] (rows = q + k width) or [Wq; Wk; Wv] (rows = q + k + v width)
  // as one [rows, d_model] operand: the parameter store packs weights in the
  // order they are bound (wq, wk, wv), values, gradients and shadows alike.
  GemmOperand fused_weights(int64_t rows) const {
    const bool qk = wk_.value == wq_.value + hq_ * d_ && wk_.grad == wq_.grad + hq_ * d_;
    const bool v =
        rows == hq_ + hkv_ || (wv_.value == wk_.value + hkv_ * d_ && wv_.grad == wk_.grad + hkv_ * d_);
    if (!qk || !v)
      throw std::logic_error(describe_ + ": wq, wk and wv do not follow each other in the parameters");
    return wq_.operand(rows, d_);
  }
  // Columns of the fused gradient: q | k, and v's part where it joins.
  int64_t fused_grad_width() const { return hq_ + hkv_ + (fused_v_ ? hkv_ : 0); }

  // From q's or k's gradient at the attention (d_rotated) back through RoPE,
  // the qk norm and the short convolution to the projection group g of w:
  // dW_g and dx. Where RoPE's output feeds the products alone (no norm, no
  // convolution, shadows planned), its backward writes the products' bf16
  // operand and no fp32 gradient.
  void project_backward(Backend& be, Projection& p, int heads, const Param& gain, const ShortConv& conv,
                        const Param& w, int g, OpInput x, InputGradient& dx) {
    const int64_t hd = knobs_.head_dim, rows = n_ * heads, width = int64_t(heads) * hd;
    const RopeShape rope{batch_, seq_, heads, int(hd), 0};
    if (knobs_.rope && !knobs_.qk_norm && !conv.on() && grad16_) {
      be.rope_backward_bf16(grad16_, p.d_rotated, cos_, sin_, rope);
      return linear_backward(be, w, g, width, GemmOperand(nullptr, n_, width, grad16_), x, dx);
    }
    if (knobs_.rope) be.rope_backward(p.d_normed, p.d_rotated, cos_, sin_, rope);
    if (knobs_.qk_norm)
      be.rmsnorm_backward({p.d_raw, rows, hd}, gain.grad, {p.d_normed, rows, hd}, {p.raw, rows, hd},
                          gain.value, p.rstd, nullptr, /*accumulate_dx=*/false);
    linear_backward(be, w, g, width, conv.backward(be, p.d_raw, batch_, seq_), x, dx);
  }

  void zero_grads(Backend& be, Projection& p, int64_t count) {
    resolve(p);
    // Stages that are off alias the one before: each buffer once (a memset
    // of a [tokens, width] buffer is not free at d 256 and up). RoPE's
    // backward writes d_normed and the norm's backward d_raw, so only what is
    // added into is zeroed.
    be.fill(p.d_rotated, count, 0.0f);
  }

  AttentionShape shape(int batch, int seq) const {
    return {batch,
            seq,
            knobs_.heads,
            knobs_.kv_heads,
            knobs_.head_dim,
            knobs_.window,
            float(1.0 / std::sqrt(double(knobs_.head_dim)))};
  }

  genome::SaKnobs knobs_;
  int64_t d_, hq_ = 0, hkv_ = 0;
  float eps_;
  int groups_;  // 2 when differential
  bool own_kv_;
  std::string describe_;
  AttentionOp* source_ = nullptr;  // feature sharing: whose K and V we read
  bool has_sharers_ = false;       // some later sa reads our K and V (share_features_from)
  Param wq_, wk_, wv_, wo_, q_norm_, k_norm_, lambda_, q_conv_w_, k_conv_w_, v_conv_w_, w_out_gate_;
  ShortConv q_conv_[2], k_conv_[2], v_conv_;
  Gate gate_, dec_gate_;
  int batch_ = 0, seq_ = 0;
  int64_t n_ = 0;
  Projection q_[2], k_[2], dec_q_[2], dec_k_[2];
  float *v_ = nullptr, *att_[2] = {}, *lse_[2] = {}, *datt_[2] = {}, *dv_ = nullptr;
  Mix mix_, dec_mix_;
  float *mix_gain_ = nullptr, *dmix_gain_ = nullptr;
  void *out16_ = nullptr, *grad16_ = nullptr;  // bf16 GEMM shadows (GemmOperand)
  void* dv16_ = nullptr;   // dv's shadow, written by the attention's backward (no v convolution)
  bool fused_qk_ = false;  // q and k from one product, their gradients into one (plan)
  bool fused_v_ = false;   // and v's gradient into the same
  float* qk_raw_ = nullptr;
  void* dqkv16_ = nullptr;  // the q | k (| v) gradient in bf16, rows fused_grad_width() wide
  int decode_batch_ = 0;
  int64_t capacity_ = 0, decode_context_ = 0;
  float *k_cache_[2] = {}, *v_cache_ = nullptr, *dec_v_ = nullptr, *dec_att_[2] = {};
  float *cos_ = nullptr, *sin_ = nullptr;
};

}  // namespace

std::unique_ptr<Operator> make_attention(OpContext& context) {
  return std::make_unique<AttentionOp>(context);
}

}  // namespace livs::evaluator
