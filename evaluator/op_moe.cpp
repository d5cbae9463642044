// moe: a mixture of SwiGLU experts with top-k softmax routing.
//   p = softmax(x Router^T);  top-k experts by p (ties: the lower index);
//   w_j = p_{i_j} / sum_l p_{i_l}  (renormalised);  y = sum_j w_j SwiGLU_{i_j}(x)
// Dispatch is deterministic: assignments are sorted by expert, stably, and
// each expert runs its rows as one matmul.
// Load balancing (Switch / GShard): aux = 0.01 * E * sum_e f_e P_e with f_e
// the fraction of the rows * top_k assignments routed to e and P_e the mean
// router probability of e. It is added to the training objective through
// Operator::auxiliary_loss(): Model::forward sums it over operators
// (Model::auxiliary_loss()), and backward always includes its gradient
// (f held constant, as in Switch). No decode state.
#include <stdexcept>
#include <vector>

#include "evaluator/operator.hpp"

namespace livs::evaluator {

namespace {

constexpr float kAuxWeight = 0.01f;

class MoeOp final : public Operator {
 public:
  explicit MoeOp(OpContext& c)
      : d_(c.d_model), e_(c.spec.moe.experts), k_(c.spec.moe.top_k), f_(c.spec.moe.hidden) {
    if (c.spec.differential) throw std::invalid_argument(c.describe() + ": moe has no differential form");
    if (e_ <= 0 || k_ <= 0 || k_ > e_ || f_ <= 0)
      throw std::invalid_argument(c.describe() + ": invalid knobs (experts " + std::to_string(e_) +
                                  ", top_k " + std::to_string(k_) + ", hidden " + std::to_string(f_) + ")");
    c.bind_weight("router", {e_, d_}, Init::normal, true, &router_);
    c.bind_weight("w_gate", {e_, f_, d_}, Init::normal, true, &w_gate_);
    c.bind_weight("w_up", {e_, f_, d_}, Init::normal, true, &w_up_);
    c.bind_weight("w_down", {e_, d_, f_}, Init::out_projection, true, &w_down_);
  }

  void plan(Arena& arena, const PlanShape& s) override {
    n_ = s.tokens();
    if (n_ > 0) plan_rows(arena, train_, n_, true);
    decode_batch_ = s.decode_batch;
    if (decode_batch_ > 0) plan_rows(arena, dec_, decode_batch_, false);
  }

  void forward(Backend& be, OpInput x, float* y) override {
    run(be, train_, x, y, n_);
    std::vector<float>& stats = train_.host_stats;
    be.copy_to_host(stats.data(), train_.stats, stats.size() * sizeof(float));
    double sum = 0.0;
    for (int64_t e = 0; e < e_; ++e) sum += double(stats[e]) * double(stats[e_ + e]);
    aux_ = double(kAuxWeight) * double(e_) * sum;
  }

  double auxiliary_loss() const override { return aux_; }

  void backward(Backend& be, OpInput x, OpInput dy, float* dx) override {
    Rows& r = train_;
    const int64_t a = n_ * k_;
    be.fill(r.dys, a * d_, 0.0f);
    be.fill(r.dxs, a * d_, 0.0f);
    be.fill(r.dweight, a, 0.0f);
    be.fill(r.dlogits, n_ * e_, 0.0f);
    for (float* b : {r.dh, r.dgate, r.dup}) be.fill(b, a * f_, 0.0f);
    be.moe_combine_backward({r.dys, a, d_}, r.dweight, {dy, n_, d_}, {r.ys, a, d_}, r.weight, r.position, k_);
    for (int64_t e = 0; e < e_; ++e) {
      const int64_t r0 = r.host_offsets[e], m = r.host_offsets[e + 1] - r0;
      if (m == 0) continue;
      const float *xs = r.xs + r0 * d_, *h = r.h + r0 * f_;
      float *dys = r.dys + r0 * d_, *dh = r.dh + r0 * f_, *dg = r.dgate + r0 * f_, *du = r.dup + r0 * f_;
      be.matmul_backward_weight({w_down_.grad + e * d_ * f_, d_, f_}, {dys, m, d_}, {h, m, f_});
      be.matmul_backward_input({dh, m, f_}, {dys, m, d_}, {w_down_.value + e * d_ * f_, d_, f_});
      be.swiglu_backward(dg, du, dh, r.gate + r0 * f_, r.up + r0 * f_, m * f_);
      be.matmul_backward_weight({w_gate_.grad + e * f_ * d_, f_, d_}, {dg, m, f_}, {xs, m, d_});
      be.matmul_backward_weight({w_up_.grad + e * f_ * d_, f_, d_}, {du, m, f_}, {xs, m, d_});
      be.matmul_backward_input({r.dxs + r0 * d_, m, d_}, {dg, m, f_}, {w_gate_.value + e * f_ * d_, f_, d_});
      be.matmul_backward_input({r.dxs + r0 * d_, m, d_}, {du, m, f_}, {w_up_.value + e * f_ * d_, f_, d_});
    }
    be.moe_gather_backward({dx, n_, d_}, {r.dxs, a, d_}, r.position, k_);
    be.moe_route_backward({r.dlogits, n_, e_}, r.dweight, r.probs, r.index, r.weight, r.stats, k_,
                          kAuxWeight);
    be.matmul_backward_weight({router_.grad, e_, d_}, {r.dlogits, n_, e_}, {x, n_, d_});
    be.matmul_backward_input({dx, n_, d_}, {r.dlogits, n_, e_}, {router_.value, e_, d_});
  }

  genome::DecodeState decode_state() const override { return {}; }

  void decode_step(Backend& be, const float* x, float* y, int64_t) override {
    run(be, dec_, x, y, decode_batch_);
  }

 private:
  struct Rows {
    float *logits = nullptr, *probs = nullptr, *weight = nullptr, *stats = nullptr;
    int32_t *index = nullptr, *order = nullptr, *position = nullptr, *offsets = nullptr;
    float *xs = nullptr, *gate = nullptr, *up = nullptr, *h = nullptr, *ys = nullptr;
    float *dlogits = nullptr, *dweight = nullptr, *dys = nullptr, *dh = nullptr, *dgate = nullptr,
          *dup = nullptr, *dxs = nullptr;
    std::vector<int32_t> host_offsets;  // the expert boundaries, needed on the host to size the matmuls
    std::vector<float> host_stats;
  };

  void plan_rows(Arena& arena, Rows& r, int64_t rows, bool grads) {
    const int64_t a = rows * k_;
    arena.reserve(&r.logits, rows * e_);
    arena.reserve(&r.probs, rows * e_);
    arena.reserve(&r.weight, a);
    arena.reserve(&r.stats, 2 * e_);
    arena.reserve_tokens(&r.index, a);
    arena.reserve_tokens(&r.order, a);
    arena.reserve_tokens(&r.position, a);
    arena.reserve_tokens(&r.offsets, e_ + 1);
    arena.reserve(&r.xs, a * d_);
    arena.reserve(&r.ys, a * d_);
    for (float** b : {&r.gate, &r.up, &r.h}) arena.reserve(b, a * f_);
    if (grads) {
      arena.reserve(&r.dlogits, rows * e_);
      arena.reserve(&r.dweight, a);
      arena.reserve(&r.dys, a * d_);
      arena.reserve(&r.dxs, a * d_);
      for (float** b : {&r.dh, &r.dgate, &r.dup}) arena.reserve(b, a * f_);
    }
    r.host_offsets.assign(std::size_t(e_ + 1), 0);
    r.host_stats.assign(std::size_t(2 * e_), 0.0f);
  }

  void run(Backend& be, Rows& r, const float* x, float* y, int64_t rows) {
    const int64_t a = rows * k_;
    be.matmul({r.logits, rows, e_}, {x, rows, d_}, {router_.value, e_, d_});
    be.moe_route(r.probs, r.index, r.weight, r.stats, {r.logits, rows, e_}, k_);
    be.moe_dispatch(r.order, r.position, r.offsets, r.index, rows, k_, e_);
    be.copy_to_host(r.host_offsets.data(), r.offsets, r.host_offsets.size() * sizeof(int32_t));
    be.moe_gather({r.xs, a, d_}, {x, rows, d_}, r.order, k_);
    for (int64_t e = 0; e < e_; ++e) {
      const int64_t r0 = r.host_offsets[e], m = r.host_offsets[e + 1] - r0;
      if (m == 0) continue;
      float *g = r.gate + r0 * f_, *u = r.up + r0 * f_, *h = r.h + r0 * f_;
      be.matmul({g, m, f_}, {r.xs + r0 * d_, m, d_}, {w_gate_.value + e * f_ * d_, f_, d_});
      be.matmul({u, m, f_}, {r.xs + r0 * d_, m, d_}, {w_up_.value + e * f_ * d_, f_, d_});
      be.swiglu_forward(h, g, u, m * f_);
      be.matmul({r.ys + r0 * d_, m, d_}, {h, m, f_}, {w_down_.value + e * d_ * f_, d_, f_});
    }
    be.moe_combine({y, rows, d_}, {r.ys, a, d_}, r.weight, r.position, k_);
  }

  int64_t d_, e_;
  int k_;
  int64_t f_;
  Param router_, w_gate_, w_up_, w_down_;
  int64_t n_ = 0;
  int decode_batch_ = 0;
  Rows train_, dec_;
  double aux_ = 0.0;
};

}  // namespace

std::unique_ptr<Operator> make_moe(OpContext& context) { return std::make_unique<MoeOp>(context); }

}  // namespace livs::evaluator
