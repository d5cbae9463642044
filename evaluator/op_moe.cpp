// moe: a mixture of SwiGLU experts with top-k softmax routing.
//   p = softmax(x Router^T);  top-k experts by p (ties: the lower index);
//   w_j = p_{i_j} / sum_l p_{i_l}  (renormalised);  y = sum_j w_j SwiGLU_{i_j}(x)
// Where one product would leave the device mostly idle (the backend says so:
// Backend::splits_grouped_products), the down projection runs as two halves
// of its reduction and the gate and up input gradients apart (dys holds the
// second of each while it is free), so the GPU runs each pair side by side;
// LIVSEARCH_MOE_SPLIT=1 or 0 forces that on or off.
// Dispatch is deterministic: assignments are sorted by expert, stably, and
// the experts' products are grouped GEMMs over the sorted rows
// (Backend::grouped_matmul*): the expert boundaries stay in device memory,
// so nothing is read on the host inside a step and the step can be captured
// as a CUDA graph. Dropless top-k: all rows * top_k assignments are real, so
// every dispatched row belongs to an expert. Around the experts' products the
// layer makes three composite calls (Backend::moe_route_and_gather,
// moe_combine_route_backward, moe_gather_router_backward), which a backend
// may run as one launch each; the CPU runs the calls they stand for.
// Load balancing (Switch / GShard): aux = 0.01 * E * sum_e f_e P_e with f_e
// the fraction of the rows * top_k assignments routed to e and P_e the mean
// router probability of e. It is computed on the device (moe_balance_loss,
// from the last forward's f_e and probabilities) only when Operator::auxiliary_loss()
// is called (Model::auxiliary_loss() sums it over operators, outside the
// step), so a training step spends no launch on a value nobody reads;
// backward always includes its gradient (f held constant, as in Switch), so
// the trained objective is cross-entropy + aux. No decode state.
#include <optional>
#include <stdexcept>

#include "common/environment_switch.hpp"
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
    if (n_ > 0) {
      plan_rows(arena, train_, n_, true);
      arena.reserve_bytes(reinterpret_cast<void**>(&aux_), sizeof(double));
    }
    decode_batch_ = s.decode_batch;
    if (decode_batch_ > 0) plan_rows(arena, dec_, decode_batch_, false);
  }

  void forward(Backend& be, OpInput x, float* y) override {
    run(be, train_, x, y, n_);
    aux_backend_ = &be;
  }

  // Computed and read on the device's stream, so only outside a step (tests, reports).
  double auxiliary_loss() const override {
    if (!aux_backend_) return 0.0;
    aux_backend_->moe_balance_loss(aux_, train_.fractions, {train_.probs, n_, e_}, kAuxWeight);
    double aux = 0.0;
    aux_backend_->copy_to_host(&aux, aux_, sizeof(double));
    return aux;
  }

  void backward(Backend& be, OpInput x, OpInput dy, float* dx, bool accumulate_dx) override {
    Rows& r = train_;
    const int64_t a = n_ * k_;
    const ExpertRows groups{r.offsets, int(e_)};
    // Every dispatched row belongs to an expert, so the steps that write
    // (combine and route backward, swiglu and products with accumulate =
    // false) cover their outputs whole and nothing is zeroed first.
    const MoeRouting routing = routing_of(r, n_);
    be.moe_combine_route_backward(routing, {r.dlogits, n_, e_}, r.dlogits16, {r.dys, a, d_}, r.dweight,
                                  {dy, n_, d_}, {r.ys, a, d_}, kAuxWeight);
    be.grouped_swiglu_backward({w_down_.grad, d_, f_}, {r.dgate, a, f_}, {r.dup, a, f_}, {r.dh, a, f_},
                               {r.dys, a, d_}, {r.h, a, f_}, {w_down_.value, d_, f_}, {r.gate, a, f_},
                               {r.up, a, f_}, groups);
    // The gate and up products' input gradients apart (the up one into dys,
    // whose rows the swiglu backward has read): the two reductions run side
    // by side, and the gather below adds both.
    const Matrix dxs_up = split_products(be, a) ? Matrix{r.dys, a, d_} : Matrix{};
    be.grouped_gate_up_backward({w_gate_.grad, f_, d_}, {w_up_.grad, f_, d_}, {r.dxs, a, d_},
                                {r.dgate, a, f_}, {r.dup, a, f_}, {r.xs, a, d_}, {w_gate_.value, f_, d_},
                                {w_up_.value, f_, d_}, groups, /*accumulate=*/false, dxs_up);
    // The router's product is dx's first contribution (it may write dx), the
    // experts' rows the second.
    const GemmOperand dlogits{r.dlogits, n_, e_, r.dlogits16};
    be.matmul_backward_weight({router_.grad, e_, d_}, dlogits, {x.data, n_, d_, x.bf16});
    be.moe_gather_router_backward(routing, {dx, n_, d_}, {r.dxs, a, d_}, dlogits, router_.operand(e_, d_),
                                  accumulate_dx, dxs_up);
  }

  genome::DecodeState decode_state() const override { return {}; }

  void decode_step(Backend& be, const float* x, float* y, int64_t) override {
    run(be, dec_, x, y, decode_batch_);
  }

 private:
  struct Rows {
    float *logits = nullptr, *probs = nullptr, *weight = nullptr, *fractions = nullptr;
    int32_t *index = nullptr, *order = nullptr, *position = nullptr, *offsets = nullptr;
    float *xs = nullptr, *gate = nullptr, *up = nullptr, *h = nullptr, *ys = nullptr;
    float *dlogits = nullptr, *dweight = nullptr, *dys = nullptr, *dh = nullptr, *dgate = nullptr,
          *dup = nullptr, *dxs = nullptr;
    void* dlogits16 = nullptr;  // dlogits' bf16 shadow where the backend plans shadows
  };

  MoeRouting routing_of(const Rows& r, int64_t rows) const {
    return {r.logits,   r.probs,   r.index, r.weight, r.fractions, r.order,
            r.position, r.offsets, rows,    int(e_),  k_};
  }

  void plan_rows(Arena& arena, Rows& r, int64_t rows, bool grads) {
    const int64_t a = rows * k_;
    arena.reserve(&r.logits, rows * e_);
    arena.reserve(&r.probs, rows * e_);
    arena.reserve(&r.weight, a);
    arena.reserve(&r.fractions, e_);
    arena.reserve_tokens(&r.index, a);
    arena.reserve_tokens(&r.order, a);
    arena.reserve_tokens(&r.position, a);
    arena.reserve_tokens(&r.offsets, e_ + 1);
    arena.reserve(&r.xs, a * d_);
    arena.reserve(&r.ys, a * d_);
    for (float** b : {&r.gate, &r.up, &r.h}) arena.reserve(b, a * f_);
    if (grads) {
      arena.reserve(&r.dlogits, rows * e_);
      arena.reserve_gemm_shadow(&r.dlogits16, rows * e_);
      arena.reserve(&r.dweight, a);
      arena.reserve(&r.dys, a * d_);
      arena.reserve(&r.dxs, a * d_);
      for (float** b : {&r.dh, &r.dgate, &r.dup}) arena.reserve(b, a * f_);
    }
  }

  void run(Backend& be, Rows& r, OpInput x, float* y, int64_t rows) {
    const int64_t a = rows * k_;
    const ExpertRows groups{r.offsets, int(e_)};
    be.moe_route_and_gather(routing_of(r, rows), {r.xs, a, d_}, {x.data, rows, d_, x.bf16},
                            router_.operand(e_, d_));
    be.grouped_swiglu_forward({r.h, a, f_}, {r.gate, a, f_}, {r.up, a, f_}, {r.xs, a, d_},
                              {w_gate_.value, f_, d_}, {w_up_.value, f_, d_}, groups);
    if (r.dys && split_products(be, a)) {  // the training rows: dys is free until the backward writes it
      be.grouped_matmul_halves({r.ys, a, d_}, {r.dys, a, d_}, {r.h, a, f_}, {w_down_.value, d_, f_}, groups);
      be.moe_combine_halves({y, rows, d_}, {r.ys, a, d_}, {r.dys, a, d_}, r.weight, r.position, k_);
    } else {
      be.grouped_matmul({r.ys, a, d_}, {r.h, a, f_}, {w_down_.value, d_, f_}, groups);
      be.moe_combine({y, rows, d_}, {r.ys, a, d_}, r.weight, r.position, k_);
    }
  }

  // The down projection's reduction in two halves and the gate and up input
  // gradients apart, each pair side by side (both products have d outputs a
  // row); the same sums either way, in another order.
  bool split_products(const Backend& be, int64_t capacity) const {
    if (split_forced_) return *split_forced_;
    return be.splits_grouped_products(capacity, d_, int(e_));
  }

  int64_t d_, e_;
  int k_;
  int64_t f_;
  const std::optional<bool> split_forced_ = forced_switch("LIVSEARCH_MOE_SPLIT");
  Param router_, w_gate_, w_up_, w_down_;
  int64_t n_ = 0;
  int decode_batch_ = 0;
  Rows train_, dec_;
  double* aux_ = nullptr;           // the last training forward's load-balancing loss, in device memory
  Backend* aux_backend_ = nullptr;  // set by the first forward: aux_ is readable from then on
};

}  // namespace

std::unique_ptr<Operator> make_moe(OpContext& context) { return std::make_unique<MoeOp>(context); }

}  // namespace livs::evaluator
