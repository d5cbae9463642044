// sa: causal softmax attention with RoPE, optional qk-RMSNorm, MHA/GQA/MQA and
// an optional sliding window; decode keeps a KV cache (a ring buffer of the
// window when there is one).
//   q = x Wq^T, k = x Wk^T, v = x Wv^T   (per head: [.., heads, head_dim])
//   q, k <- rmsnorm per head (qk_norm), then RoPE
//   y = attention(q, k, v) Wo^T
#include <cmath>
#include <stdexcept>

#include "evaluator/operator.hpp"

namespace livs::evaluator {

namespace {

class AttentionOp final : public Operator {
 public:
  explicit AttentionOp(OpContext& c) : knobs_(c.spec.sa), d_(c.d_model), eps_(float(c.norm_eps)) {
    if (c.spec.differential)
      throw std::invalid_argument(c.describe() +
                                  ": differential attention is not implemented by the evaluator yet");
    if (c.spec.feature_source.valid())
      throw std::invalid_argument(c.describe() +
                                  ": K/V feature sharing is not implemented by the evaluator yet");
    const auto& k = knobs_;
    if (k.heads <= 0 || k.kv_heads <= 0 || k.heads % k.kv_heads != 0 || k.head_dim <= 0 || k.window < 0 ||
        (k.rope && k.head_dim % 2 != 0))
      throw std::invalid_argument(c.describe() + ": invalid knobs (heads " + std::to_string(k.heads) +
                                  ", kv_heads " + std::to_string(k.kv_heads) + ", head_dim " +
                                  std::to_string(k.head_dim) + ", window " + std::to_string(k.window) + ")");
    hq_ = int64_t(k.heads) * k.head_dim;
    hkv_ = int64_t(k.kv_heads) * k.head_dim;
    c.bind_weight("wq", {hq_, d_}, Init::normal, true, &wq_);
    c.bind_weight("wk", {hkv_, d_}, Init::normal, true, &wk_);
    c.bind_weight("wv", {hkv_, d_}, Init::normal, true, &wv_);
    c.bind_weight("wo", {d_, hq_}, Init::out_projection, true, &wo_);
    if (k.qk_norm) {
      c.bind_weight("q_norm", {k.head_dim}, Init::ones, false, &q_norm_);
      c.bind_weight("k_norm", {k.head_dim}, Init::ones, false, &k_norm_);
    }
  }

  void plan(Arena& arena, const PlanShape& s) override {
    batch_ = s.batch;
    seq_ = s.seq;
    n_ = s.tokens();
    const auto& k = knobs_;
    if (n_ > 0) {
      arena.reserve(&q_.raw, n_ * hq_);
      arena.reserve(&k_.raw, n_ * hkv_);
      arena.reserve(&v_, n_ * hkv_);
      arena.reserve(&att_, n_ * hq_);
      arena.reserve(&lse_, n_ * k.heads);
      arena.reserve(&datt_, n_ * hq_);
      arena.reserve(&dv_, n_ * hkv_);
      plan_projection(arena, q_, n_, k.heads);
      plan_projection(arena, k_, n_, k.kv_heads);
    }
    decode_batch_ = s.decode_batch;
    if (decode_batch_ > 0) {
      capacity_ = k.window > 0 ? std::min<int64_t>(k.window, s.decode_context) : s.decode_context;
      decode_context_ = s.decode_context;
      const int64_t b = decode_batch_;
      arena.reserve_state(&k_cache_, b * k.kv_heads * capacity_ * k.head_dim);
      arena.reserve_state(&v_cache_, b * k.kv_heads * capacity_ * k.head_dim);
      arena.reserve(&dec_q_.raw, b * hq_);
      arena.reserve(&dec_k_.raw, b * hkv_);
      arena.reserve(&dec_v_, b * hkv_);
      arena.reserve(&dec_att_, b * hq_);
      plan_projection(arena, dec_q_, b, k.heads, false);
      plan_projection(arena, dec_k_, b, k.kv_heads, false);
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

  void forward(Backend& be, const float* x, float* y) override {
    const auto& k = knobs_;
    be.matmul({q_.raw, n_, hq_}, {x, n_, d_}, {wq_.value, hq_, d_});
    be.matmul({k_.raw, n_, hkv_}, {x, n_, d_}, {wk_.value, hkv_, d_});
    be.matmul({v_, n_, hkv_}, {x, n_, d_}, {wv_.value, hkv_, d_});
    project(be, q_, n_, k.heads, q_norm_, batch_, seq_, 0);
    project(be, k_, n_, k.kv_heads, k_norm_, batch_, seq_, 0);
    be.attention_forward(att_, lse_, q_.rotated, k_.rotated, v_, shape(batch_, seq_));
    be.matmul({y, n_, d_}, {att_, n_, hq_}, {wo_.value, d_, hq_});
  }

  void backward(Backend& be, const float* x, const float* dy, float* dx) override {
    const auto& k = knobs_;
    be.fill(datt_, n_ * hq_, 0.0f);
    be.fill(dv_, n_ * hkv_, 0.0f);
    zero_grads(be, q_, n_ * hq_);
    zero_grads(be, k_, n_ * hkv_);
    be.matmul_backward_weight({wo_.grad, d_, hq_}, {dy, n_, d_}, {att_, n_, hq_});
    be.matmul_backward_input({datt_, n_, hq_}, {dy, n_, d_}, {wo_.value, d_, hq_});
    be.attention_backward(q_.d_rotated, k_.d_rotated, dv_, datt_, q_.rotated, k_.rotated, v_, att_, lse_,
                          shape(batch_, seq_));
    project_backward(be, q_, n_, k.heads, q_norm_);
    project_backward(be, k_, n_, k.kv_heads, k_norm_);
    for (auto [param, grad, rows] : {std::tuple{&wq_, q_.d_raw, hq_}, std::tuple{&wk_, k_.d_raw, hkv_},
                                     std::tuple{&wv_, static_cast<float*>(dv_), hkv_}}) {
      be.matmul_backward_weight({param->grad, rows, d_}, {grad, n_, rows}, {x, n_, d_});
      be.matmul_backward_input({dx, n_, d_}, {grad, n_, rows}, {param->value, rows, d_});
    }
  }

  // The KV cache: 2 * kv_heads * head_dim values per token, up to the window.
  genome::DecodeState decode_state() const override {
    return {0, 2 * hkv_, knobs_.window > 0 ? int64_t(knobs_.window) : 0};
  }

  void decode_step(Backend& be, const float* x, float* y, int64_t position) override {
    if (position < 0 || position >= decode_context_)
      throw std::out_of_range("attention decode: position " + std::to_string(position) +
                              " outside the planned " + std::to_string(decode_context_) + "-token context");
    const auto& k = knobs_;
    const int64_t b = decode_batch_;
    be.matmul({dec_q_.raw, b, hq_}, {x, b, d_}, {wq_.value, hq_, d_});
    be.matmul({dec_k_.raw, b, hkv_}, {x, b, d_}, {wk_.value, hkv_, d_});
    be.matmul({dec_v_, b, hkv_}, {x, b, d_}, {wv_.value, hkv_, d_});
    project(be, dec_q_, b, k.heads, q_norm_, decode_batch_, 1, position);
    project(be, dec_k_, b, k.kv_heads, k_norm_, decode_batch_, 1, position);
    const AttentionShape s = shape(decode_batch_, 1);
    be.kv_cache_write(k_cache_, v_cache_, dec_k_.rotated, dec_v_, s, capacity_, position);
    be.attention_decode(dec_att_, dec_q_.rotated, k_cache_, v_cache_, s, capacity_, position);
    be.matmul({y, b, d_}, {dec_att_, b, hq_}, {wo_.value, d_, hq_});
  }

 private:
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

  void project(Backend& be, Projection& p, int64_t rows, int heads, const Param& gain, int batch, int seq,
               int64_t position) {
    resolve(p);
    const int64_t hd = knobs_.head_dim;
    if (knobs_.qk_norm)
      be.rmsnorm_forward({p.normed, rows * heads, hd}, p.rstd, {p.raw, rows * heads, hd}, gain.value, eps_);
    if (knobs_.rope) be.rope_forward(p.rotated, p.normed, cos_, sin_, {batch, seq, heads, int(hd), position});
  }

  void project_backward(Backend& be, Projection& p, int64_t rows, int heads, const Param& gain) {
    const int64_t hd = knobs_.head_dim;
    if (knobs_.rope) be.rope_backward(p.d_normed, p.d_rotated, cos_, sin_, {batch_, seq_, heads, int(hd), 0});
    if (knobs_.qk_norm)
      be.rmsnorm_backward({p.d_raw, rows * heads, hd}, gain.grad, {p.d_normed, rows * heads, hd},
                          {p.raw, rows * heads, hd}, gain.value, p.rstd);
  }

  void zero_grads(Backend& be, Projection& p, int64_t count) {
    resolve(p);
    for (float* b : {p.d_rotated, p.d_normed, p.d_raw})
      be.fill(b, count, 0.0f);  // aliases zero twice: harmless
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
  Param wq_, wk_, wv_, wo_, q_norm_, k_norm_;
  int batch_ = 0, seq_ = 0;
  int64_t n_ = 0;
  Projection q_, k_, dec_q_, dec_k_;
  float *v_ = nullptr, *att_ = nullptr, *lse_ = nullptr, *datt_ = nullptr, *dv_ = nullptr;
  int decode_batch_ = 0;
  int64_t capacity_ = 0, decode_context_ = 0;
  float *k_cache_ = nullptr, *v_cache_ = nullptr, *dec_v_ = nullptr, *dec_att_ = nullptr;
  float *cos_ = nullptr, *sin_ = nullptr;
};

}  // namespace

std::unique_ptr<Operator> make_attention(OpContext& context) {
  return std::make_unique<AttentionOp>(context);
}

}  // namespace livs::evaluator
