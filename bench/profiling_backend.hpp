#pragma once
// A Backend that forwards every call to another one and, when timing is on,
// synchronises before and after each call and adds the wall time to the call's
// kernel family. Only for bench_train's --profile mode: the synchronisation
// serialises the device, so totals are slower than a normal step, but the
// split between families says where a step's time goes.
// The forwarding methods were written by a script from evaluator/backend.hpp;
// a new Backend method needs one more forwarder here (the compiler says so
// when it is pure virtual).
#include <chrono>
#include <map>
#include <string>

#include "evaluator/backend.hpp"

namespace livs::bench {

using namespace livs::evaluator;

class ProfilingBackend final : public Backend {
 public:
  struct Total {
    double seconds = 0.0;
    long calls = 0;
  };

  explicit ProfilingBackend(Backend& inner) : inner_(inner) {}
  const char* name() const override { return inner_.name(); }
  void set_timing(bool on) { timing_ = on; }
  const std::map<std::string, Total>& totals() const { return totals_; }
  void clear() { totals_.clear(); }

  void* allocate(std::size_t bytes) override { return inner_.allocate(bytes); }
  void free(void* pointer) override { inner_.free(pointer); }
  void copy_to_device(void* device_dst, const void* host_src, std::size_t bytes) override {
    Timed timed(*this, "copy_to_device");
    inner_.copy_to_device(device_dst, host_src, bytes);
  }
  void copy_to_host(void* host_dst, const void* device_src, std::size_t bytes) override {
    Timed timed(*this, "copy_to_host");
    inner_.copy_to_host(host_dst, device_src, bytes);
  }
  void copy(float* dst, const float* src, int64_t count) override {
    Timed timed(*this, "copy");
    inner_.copy(dst, src, count);
  }
  void fill(float* dst, int64_t count, float value) override {
    Timed timed(*this, "fill");
    inner_.fill(dst, count, value);
  }
  void synchronize() override { inner_.synchronize(); }
  void embedding_forward(Matrix out, ConstMatrix table, const int32_t* tokens) override {
    Timed timed(*this, "embedding_forward");
    inner_.embedding_forward(out, table, tokens);
  }
  void embedding_backward(Matrix dtable, ConstMatrix dout, const int32_t* tokens) override {
    Timed timed(*this, "embedding_backward");
    inner_.embedding_backward(dtable, dout, tokens);
  }
  void rmsnorm_forward(Matrix out, float* rstd, ConstMatrix x, const float* gain, float eps,
                       void* out16 = nullptr) override {
    Timed timed(*this, "rmsnorm_forward");
    inner_.rmsnorm_forward(out, rstd, x, gain, eps, out16);
  }
  void rmsnorm_backward(Matrix dx, float* dgain, ConstMatrix dout, ConstMatrix x, const float* gain,
                        const float* rstd, void* dx16, bool accumulate_dx) override {
    Timed timed(*this, "rmsnorm_backward");
    inner_.rmsnorm_backward(dx, dgain, dout, x, gain, rstd, dx16, accumulate_dx);
  }
  void matmul(Matrix y, GemmOperand x, GemmOperand w, bool accumulate) override {
    Timed timed(*this, "matmul");
    inner_.matmul(y, x, w, accumulate);
  }
  void matmul_backward_input(Matrix dx, GemmOperand dy, GemmOperand w, bool accumulate = true) override {
    Timed timed(*this, "matmul_backward_input");
    inner_.matmul_backward_input(dx, dy, w, accumulate);
  }
  void matmul_backward_weight(Matrix dw, GemmOperand dy, GemmOperand x) override {
    Timed timed(*this, "matmul_backward_weight");
    inner_.matmul_backward_weight(dw, dy, x);
  }
  void matmul_bf16_output(void* y16, GemmOperand x, GemmOperand w) override {
    Timed timed(*this, "matmul");
    inner_.matmul_bf16_output(y16, x, w);
  }
  void matmul_backward_input_bf16_output(void* dx16, GemmOperand dy, GemmOperand w) override {
    Timed timed(*this, "matmul_backward_input");
    inner_.matmul_backward_input_bf16_output(dx16, dy, w);
  }
  void rope_forward(float* out, const float* in, const float* cos, const float* sin,
                    const RopeShape& shape) override {
    Timed timed(*this, "rope_forward");
    inner_.rope_forward(out, in, cos, sin, shape);
  }
  void rope_backward_bf16(void* din16, const float* dout, const float* cos, const float* sin,
                          const RopeShape& shape) override {
    Timed timed(*this, "rope_backward");
    inner_.rope_backward_bf16(din16, dout, cos, sin, shape);
  }
  void rope_backward(float* din, const float* dout, const float* cos, const float* sin,
                     const RopeShape& shape) override {
    Timed timed(*this, "rope_backward");
    inner_.rope_backward(din, dout, cos, sin, shape);
  }
  void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                         const AttentionShape& shape, void* out16 = nullptr) override {
    Timed timed(*this, "attention_forward");
    inner_.attention_forward(out, lse, q, k, v, shape, out16);
  }
  void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                          const float* v, const float* out, const float* lse, const AttentionShape& shape,
                          bool accumulate, void* dv16 = nullptr) override {
    Timed timed(*this, "attention_backward");
    inner_.attention_backward(dq, dk, dv, dout, q, k, v, out, lse, shape, accumulate, dv16);
  }
  void kv_cache_write(float* k_cache, float* v_cache, const float* k, const float* v,
                      const AttentionShape& shape, int64_t capacity, int64_t position) override {
    Timed timed(*this, "kv_cache_write");
    inner_.kv_cache_write(k_cache, v_cache, k, v, shape, capacity, position);
  }
  void attention_decode(float* out, const float* q, const float* k_cache, const float* v_cache,
                        const AttentionShape& shape, int64_t capacity, int64_t position) override {
    Timed timed(*this, "attention_decode");
    inner_.attention_decode(out, q, k_cache, v_cache, shape, capacity, position);
  }
  void swiglu_forward(float* h, const float* gate, const float* up, int64_t count) override {
    Timed timed(*this, "swiglu_forward");
    inner_.swiglu_forward(h, gate, up, count);
  }
  void swiglu_backward(float* dgate, float* dup, const float* dh, const float* gate, const float* up,
                       int64_t count, bool accumulate) override {
    Timed timed(*this, "swiglu_backward");
    inner_.swiglu_backward(dgate, dup, dh, gate, up, count, accumulate);
  }
  void add(float* out, const float* a, const float* b, int64_t count) override {
    Timed timed(*this, "add");
    inner_.add(out, a, b, count);
  }
  void cross_entropy_forward(float* losses, float* lse, ConstMatrix logits, const int32_t* targets) override {
    Timed timed(*this, "cross_entropy_forward");
    inner_.cross_entropy_forward(losses, lse, logits, targets);
  }
  void cross_entropy_backward(Matrix dlogits, ConstMatrix logits, const float* lse, const int32_t* targets,
                              float scale) override {
    Timed timed(*this, "cross_entropy_backward");
    inner_.cross_entropy_backward(dlogits, logits, lse, targets, scale);
  }
  double sum_of_squares(const float* x, int64_t count) override {
    Timed timed(*this, "sum_of_squares");
    return inner_.sum_of_squares(x, count);
  }
  void adamw_update(float* params, const float* grads, float* m, float* v, int64_t count,
                    const AdamWStep& step) override {
    Timed timed(*this, "adamw_update");
    inner_.adamw_update(params, grads, m, v, count, step);
  }
  void feature_map_forward(float* out, const float* in, int64_t count, FeatureMapKind kind) override {
    Timed timed(*this, "feature_map_forward");
    inner_.feature_map_forward(out, in, count, kind);
  }
  void feature_map_backward(float* din, const float* dout, const float* in, int64_t count,
                            FeatureMapKind kind, bool accumulate) override {
    Timed timed(*this, "feature_map_backward");
    inner_.feature_map_backward(din, dout, in, count, kind, accumulate);
  }
  void gla_log_decay_forward(float* log_alpha, const float* z, const float* bias, int64_t rows, int64_t cols,
                             float temperature) override {
    Timed timed(*this, "gla_log_decay_forward");
    inner_.gla_log_decay_forward(log_alpha, z, bias, rows, cols, temperature);
  }
  void gla_log_decay_backward(float* dz, float* dbias, const float* dlog_alpha, const float* z,
                              const float* bias, int64_t rows, int64_t cols, float temperature) override {
    Timed timed(*this, "gla_log_decay_backward");
    inner_.gla_log_decay_backward(dz, dbias, dlog_alpha, z, bias, rows, cols, temperature);
  }
  void linear_attention_forward(float* out, const float* q, const float* k, const float* v,
                                const float* log_alpha, const LinearAttentionShape& shape) override {
    Timed timed(*this, "linear_attention_forward");
    inner_.linear_attention_forward(out, q, k, v, log_alpha, shape);
  }
  void linear_attention_backward(float* dq, float* dk, float* dv, float* dlog_alpha, const float* dout,
                                 const float* q, const float* k, const float* v, const float* log_alpha,
                                 const LinearAttentionShape& shape, bool accumulate) override {
    Timed timed(*this, "linear_attention_backward");
    inner_.linear_attention_backward(dq, dk, dv, dlog_alpha, dout, q, k, v, log_alpha, shape, accumulate);
  }
  void linear_attention_state_update(float* state, const float* k, const float* v, const float* log_alpha,
                                     const LinearAttentionShape& shape) override {
    Timed timed(*this, "linear_attention_state_update");
    inner_.linear_attention_state_update(state, k, v, log_alpha, shape);
  }
  void linear_attention_state_read(float* out, const float* q, const float* state,
                                   const LinearAttentionShape& shape) override {
    Timed timed(*this, "linear_attention_state_read");
    inner_.linear_attention_state_read(out, q, state, shape);
  }
  void differential_forward(float* out, const float* a1, const float* a2, const float* lambda,
                            float lambda_init, int64_t rows, int heads, int head_dim) override {
    Timed timed(*this, "differential_forward");
    inner_.differential_forward(out, a1, a2, lambda, lambda_init, rows, heads, head_dim);
  }
  void differential_backward(float* da1, float* da2, float* dlambda, const float* dout, const float* a2,
                             const float* lambda, float lambda_init, int64_t rows, int heads,
                             int head_dim) override {
    Timed timed(*this, "differential_backward");
    inner_.differential_backward(da1, da2, dlambda, dout, a2, lambda, lambda_init, rows, heads, head_dim);
  }
  void gate_mix_forward(float* out, const float* y0, const float* y1, const float* gate, int64_t rows,
                        int64_t cols) override {
    Timed timed(*this, "gate_mix_forward");
    inner_.gate_mix_forward(out, y0, y1, gate, rows, cols);
  }
  void gate_mix_backward(float* dy0, float* dy1, float* dgate, const float* dout, const float* y0,
                         const float* y1, const float* gate, int64_t rows, int64_t cols) override {
    Timed timed(*this, "gate_mix_backward");
    inner_.gate_mix_backward(dy0, dy1, dgate, dout, y0, y1, gate, rows, cols);
  }
  void moe_route(float* probs, int32_t* top_index, float* top_weight, ConstMatrix logits,
                 int top_k) override {
    Timed timed(*this, "moe_route");
    inner_.moe_route(probs, top_index, top_weight, logits, top_k);
  }
  void moe_route_backward(Matrix dlogits, const float* dtop_weight, const float* probs,
                          const int32_t* top_index, const float* top_weight, const float* expert_fractions,
                          int top_k, float aux_weight) override {
    Timed timed(*this, "moe_route_backward");
    inner_.moe_route_backward(dlogits, dtop_weight, probs, top_index, top_weight, expert_fractions, top_k,
                              aux_weight);
  }
  void moe_dispatch(int32_t* order, int32_t* position, int32_t* offsets, float* expert_fractions,
                    const int32_t* top_index, int64_t rows, int top_k, int experts) override {
    Timed timed(*this, "moe_dispatch");
    inner_.moe_dispatch(order, position, offsets, expert_fractions, top_index, rows, top_k, experts);
  }
  void moe_gather(Matrix xs, ConstMatrix x, const int32_t* order, int top_k) override {
    Timed timed(*this, "moe_gather");
    inner_.moe_gather(xs, x, order, top_k);
  }
  void moe_gather_backward(Matrix dx, ConstMatrix dxs, const int32_t* position, int top_k) override {
    Timed timed(*this, "moe_gather_backward");
    inner_.moe_gather_backward(dx, dxs, position, top_k);
  }
  void moe_combine(Matrix y, ConstMatrix ys, const float* top_weight, const int32_t* position,
                   int top_k) override {
    Timed timed(*this, "moe_combine");
    inner_.moe_combine(y, ys, top_weight, position, top_k);
  }
  void moe_combine_halves(Matrix y, Matrix ys, ConstMatrix ys_second, const float* top_weight,
                          const int32_t* position, int top_k) override {
    Timed timed(*this, "moe_combine_halves");
    inner_.moe_combine_halves(y, ys, ys_second, top_weight, position, top_k);
  }
  void moe_combine_backward(Matrix dys, float* dtop_weight, ConstMatrix dy, ConstMatrix ys,
                            const float* top_weight, const int32_t* position, int top_k) override {
    Timed timed(*this, "moe_combine_backward");
    inner_.moe_combine_backward(dys, dtop_weight, dy, ys, top_weight, position, top_k);
  }
  void moe_route_and_gather(const MoeRouting& r, Matrix xs, GemmOperand x, GemmOperand router) override {
    Timed timed(*this, "moe_route_and_gather");
    inner_.moe_route_and_gather(r, xs, x, router);
  }
  void moe_combine_route_backward(const MoeRouting& r, Matrix dlogits, void* dlogits16, Matrix dys,
                                  float* dtop_weight, ConstMatrix dy, ConstMatrix ys,
                                  float aux_weight) override {
    Timed timed(*this, "moe_combine_route_backward");
    inner_.moe_combine_route_backward(r, dlogits, dlogits16, dys, dtop_weight, dy, ys, aux_weight);
  }
  void moe_gather_router_backward(const MoeRouting& r, Matrix dx, ConstMatrix dxs, GemmOperand dlogits,
                                  GemmOperand router, bool accumulate, ConstMatrix dxs_up = {}) override {
    Timed timed(*this, "moe_gather_router_backward");
    inner_.moe_gather_router_backward(r, dx, dxs, dlogits, router, accumulate, dxs_up);
  }
  void moe_balance_loss(double* out, const float* expert_fractions, ConstMatrix probs,
                        float aux_weight) override {
    Timed timed(*this, "moe_balance_loss");
    inner_.moe_balance_loss(out, expert_fractions, probs, aux_weight);
  }
  void grouped_swiglu_backward(Matrix dw_down, Matrix dgate, Matrix dup, Matrix dh, ConstMatrix dy,
                               ConstMatrix h, ConstMatrix w_down, ConstMatrix gate, ConstMatrix up,
                               ExpertRows rows) override {
    Timed timed(*this, "grouped_swiglu_backward");
    inner_.grouped_swiglu_backward(dw_down, dgate, dup, dh, dy, h, w_down, gate, up, rows);
  }
  void grouped_gate_up_backward(Matrix dw_gate, Matrix dw_up, Matrix dx, ConstMatrix dgate, ConstMatrix dup,
                                ConstMatrix x, ConstMatrix w_gate, ConstMatrix w_up, ExpertRows rows,
                                bool accumulate, Matrix dx_up = {}) override {
    Timed timed(*this, "grouped_gate_up_backward");
    inner_.grouped_gate_up_backward(dw_gate, dw_up, dx, dgate, dup, x, w_gate, w_up, rows, accumulate, dx_up);
  }
  void grouped_matmul(Matrix y, ConstMatrix x, ConstMatrix w, ExpertRows rows, bool accumulate) override {
    Timed timed(*this, "grouped_matmul");
    inner_.grouped_matmul(y, x, w, rows, accumulate);
  }
  void grouped_matmul_halves(Matrix y, Matrix y_second, ConstMatrix x, ConstMatrix w,
                             ExpertRows rows) override {
    Timed timed(*this, "grouped_matmul_halves");
    inner_.grouped_matmul_halves(y, y_second, x, w, rows);
  }
  void grouped_matmul_backward_input(Matrix dx, ConstMatrix dy, ConstMatrix w, ExpertRows rows,
                                     bool accumulate) override {
    Timed timed(*this, "grouped_matmul_backward_input");
    inner_.grouped_matmul_backward_input(dx, dy, w, rows, accumulate);
  }
  void grouped_matmul_backward_weight(Matrix dw, ConstMatrix dy, ConstMatrix x, ExpertRows rows) override {
    Timed timed(*this, "grouped_matmul_backward_weight");
    inner_.grouped_matmul_backward_weight(dw, dy, x, rows);
  }
  void grouped_swiglu_forward(Matrix h, Matrix gate, Matrix up, ConstMatrix x, ConstMatrix w_gate,
                              ConstMatrix w_up, ExpertRows rows) override {
    Timed timed(*this, "grouped_swiglu_forward");
    inner_.grouped_swiglu_forward(h, gate, up, x, w_gate, w_up, rows);
  }
  void grouped_swiglu_backward_input(Matrix dgate, Matrix dup, Matrix dh, ConstMatrix dy, ConstMatrix w_down,
                                     ConstMatrix gate, ConstMatrix up, ExpertRows rows) override {
    Timed timed(*this, "grouped_swiglu_backward_input");
    inner_.grouped_swiglu_backward_input(dgate, dup, dh, dy, w_down, gate, up, rows);
  }
  void grouped_matmul_backward_input_pair(Matrix dx, ConstMatrix dy0, ConstMatrix w0, ConstMatrix dy1,
                                          ConstMatrix w1, ExpertRows rows, bool accumulate) override {
    Timed timed(*this, "grouped_matmul_backward_input");
    inner_.grouped_matmul_backward_input_pair(dx, dy0, w0, dy1, w1, rows, accumulate);
  }
  void grouped_matmul_backward_weight_pair(Matrix dw0, ConstMatrix dy0, Matrix dw1, ConstMatrix dy1,
                                           ConstMatrix x, ExpertRows rows) override {
    Timed timed(*this, "grouped_matmul_backward_weight");
    inner_.grouped_matmul_backward_weight_pair(dw0, dy0, dw1, dy1, x, rows);
  }
  void causal_conv_forward(float* y, const float* x, const float* w, const float* bias, float* state,
                           const ConvShape& shape) override {
    Timed timed(*this, "causal_conv_forward");
    inner_.causal_conv_forward(y, x, w, bias, state, shape);
  }
  void causal_conv_backward(float* dx, float* dw, float* dbias, const float* dy, const float* x,
                            const float* w, const ConvShape& shape, bool accumulate_dx) override {
    Timed timed(*this, "causal_conv_backward");
    inner_.causal_conv_backward(dx, dw, dbias, dy, x, w, shape, accumulate_dx);
  }
  void gated_conv_forward(float* out, const float* bcx, const float* w, float* state,
                          const ConvShape& shape) override {
    Timed timed(*this, "gated_conv_forward");
    inner_.gated_conv_forward(out, bcx, w, state, shape);
  }
  void gated_conv_backward(float* dbcx, float* dw, const float* dout, const float* bcx, const float* w,
                           const ConvShape& shape) override {
    Timed timed(*this, "gated_conv_backward");
    inner_.gated_conv_backward(dbcx, dw, dout, bcx, w, shape);
  }
  void rglru_forward(float* h, const float* u, const float* gate_a, const float* gate_i, const float* lambda,
                     float c, float* state, const ScanShape& shape) override {
    Timed timed(*this, "rglru_forward");
    inner_.rglru_forward(h, u, gate_a, gate_i, lambda, c, state, shape);
  }
  void rglru_backward(float* du, float* dgate_a, float* dgate_i, float* dlambda, const float* dh,
                      const float* h, const float* u, const float* gate_a, const float* gate_i,
                      const float* lambda, float c, const ScanShape& shape) override {
    Timed timed(*this, "rglru_backward");
    inner_.rglru_backward(du, dgate_a, dgate_i, dlambda, dh, h, u, gate_a, gate_i, lambda, c, shape);
  }
  void selective_scan_forward(float* y, float* h_all, const float* u, const float* delta, const float* a_log,
                              const float* B, const float* C, const float* D, float* state,
                              const ScanShape& shape) override {
    Timed timed(*this, "selective_scan_forward");
    inner_.selective_scan_forward(y, h_all, u, delta, a_log, B, C, D, state, shape);
  }
  void selective_scan_backward(float* du, float* ddelta, float* da_log, float* dB, float* dC, float* dD,
                               float* partials, const float* dy, const float* h_all, const float* u,
                               const float* delta, const float* a_log, const float* B, const float* C,
                               const float* D, const ScanShape& shape) override {
    Timed timed(*this, "selective_scan_backward");
    inner_.selective_scan_backward(du, ddelta, da_log, dB, dC, dD, partials, dy, h_all, u, delta, a_log, B, C,
                                   D, shape);
  }
  void ssd_forward(float* y, float* checkpoints, const float* xbc, const float* dt, const float* a_log,
                   const float* D, float* state, const SsdShape& shape) override {
    Timed timed(*this, "ssd_forward");
    inner_.ssd_forward(y, checkpoints, xbc, dt, a_log, D, state, shape);
  }
  void ssd_backward(float* dxbc, float* ddt, float* da_log, float* dD, float* partials, const float* dy,
                    const float* checkpoints, const float* xbc, const float* dt, const float* a_log,
                    const float* D, const SsdShape& shape) override {
    Timed timed(*this, "ssd_backward");
    inner_.ssd_backward(dxbc, ddt, da_log, dD, partials, dy, checkpoints, xbc, dt, a_log, D, shape);
  }
  void delta_rule_forward(float* o, float* checkpoints, const float* q, const float* k, const float* v,
                          const float* log_alpha, const float* beta, float* state,
                          const DeltaRuleShape& shape) override {
    Timed timed(*this, "delta_rule_forward");
    inner_.delta_rule_forward(o, checkpoints, q, k, v, log_alpha, beta, state, shape);
  }
  void delta_rule_backward(float* dq, float* dk, float* dv, float* dlog_alpha, float* dbeta, float* scratch,
                           const float* dout, const float* checkpoints, const float* q, const float* k,
                           const float* v, const float* log_alpha, const float* beta,
                           const DeltaRuleShape& shape) override {
    Timed timed(*this, "delta_rule_backward");
    inner_.delta_rule_backward(dq, dk, dv, dlog_alpha, dbeta, scratch, dout, checkpoints, q, k, v, log_alpha,
                               beta, shape);
  }
  void gdn_decay_forward(float* log_alpha, const float* z, const float* a_log, const float* dt_bias,
                         int64_t rows, int heads) override {
    Timed timed(*this, "gdn_decay_forward");
    inner_.gdn_decay_forward(log_alpha, z, a_log, dt_bias, rows, heads);
  }
  void gdn_decay_backward(float* dz, float* da_log, float* ddt_bias, const float* dlog_alpha, const float* z,
                          const float* a_log, const float* dt_bias, int64_t rows, int heads) override {
    Timed timed(*this, "gdn_decay_backward");
    inner_.gdn_decay_backward(dz, da_log, ddt_bias, dlog_alpha, z, a_log, dt_bias, rows, heads);
  }
  void activation_forward(float* out, const float* in, int64_t count, ActivationKind kind) override {
    Timed timed(*this, "activation_forward");
    inner_.activation_forward(out, in, count, kind);
  }
  void activation_backward(float* din, const float* dout, const float* in, int64_t count, ActivationKind kind,
                           bool accumulate) override {
    Timed timed(*this, "activation_backward");
    inner_.activation_backward(din, dout, in, count, kind, accumulate);
  }
  void multiply_forward(float* out, const float* a, const float* b, int64_t count) override {
    Timed timed(*this, "multiply_forward");
    inner_.multiply_forward(out, a, b, count);
  }
  void multiply_backward(float* da, float* db, const float* dout, const float* a, const float* b,
                         int64_t count, bool accumulate) override {
    Timed timed(*this, "multiply_backward");
    inner_.multiply_backward(da, db, dout, a, b, count, accumulate);
  }
  void halves_difference_forward(Matrix out, ConstMatrix in, const float* lambda,
                                 float lambda_init) override {
    Timed timed(*this, "halves_difference_forward");
    inner_.halves_difference_forward(out, in, lambda, lambda_init);
  }
  void halves_difference_backward(Matrix din, float* dlambda, ConstMatrix dout, ConstMatrix in,
                                  const float* lambda, float lambda_init) override {
    Timed timed(*this, "halves_difference_backward");
    inner_.halves_difference_backward(din, dlambda, dout, in, lambda, lambda_init);
  }
  void add_bias(Matrix y, const float* bias) override {
    Timed timed(*this, "add_bias");
    inner_.add_bias(y, bias);
  }
  void bias_backward(float* dbias, ConstMatrix dy) override {
    Timed timed(*this, "bias_backward");
    inner_.bias_backward(dbias, dy);
  }
  bool wants_gemm_shadows() const override { return inner_.wants_gemm_shadows(); }
  void add_rmsnorm_forward(float* sum, Matrix out, float* rstd, const float* a, const float* b,
                           const float* gain, float eps, void* out16 = nullptr) override {
    Timed timed(*this, "add_rmsnorm_forward");
    inner_.add_rmsnorm_forward(sum, out, rstd, a, b, gain, eps, out16);
  }
  void swiglu_forward_bf16(void* h16, const void* gate16, const void* up16, int64_t rows, int64_t cols,
                           int64_t ld) override {
    Timed timed(*this, "swiglu_forward");
    inner_.swiglu_forward_bf16(h16, gate16, up16, rows, cols, ld);
  }
  void swiglu_backward_bf16(void* dgate16, void* dup16, const void* dh16, const void* gate16,
                            const void* up16, int64_t rows, int64_t cols, int64_t ld) override {
    Timed timed(*this, "swiglu_backward");
    inner_.swiglu_backward_bf16(dgate16, dup16, dh16, gate16, up16, rows, cols, ld);
  }
  void round_to_bf16(void* dst, const float* src, int64_t count) override {
    Timed timed(*this, "round_to_bf16");
    inner_.round_to_bf16(dst, src, count);
  }
  int64_t lm_head_logits_floats(int64_t rows, int64_t vocab) const override {
    return inner_.lm_head_logits_floats(rows, vocab);
  }
  void lm_head_forward(float* losses, float* lse, Matrix logits, GemmOperand x, GemmOperand table,
                       const int32_t* targets) override {
    Timed timed(*this, "lm_head_forward");
    inner_.lm_head_forward(losses, lse, logits, x, table, targets);
  }
  void lm_head_backward(Matrix dx, Matrix dtable, Matrix logits, ConstMatrix x, ConstMatrix table,
                        const float* lse, const int32_t* targets, float scale) override {
    Timed timed(*this, "lm_head_backward");
    inner_.lm_head_backward(dx, dtable, logits, x, table, lse, targets, scale);
  }
  void mean_to_device(double* out, const float* x, int64_t count) override {
    Timed timed(*this, "mean_to_device");
    inner_.mean_to_device(out, x, count);
  }
  void grad_clip_scale(float* scale_out, double* norm_out, const float* grads, int64_t count,
                       double max_norm) override {
    Timed timed(*this, "grad_clip_scale");
    inner_.grad_clip_scale(scale_out, norm_out, grads, count, max_norm);
  }
  void adamw_update_device(float* params, const float* grads, float* m, float* v, int64_t count,
                           const AdamWStep& constants, const DeviceStepScalars* scalars) override {
    Timed timed(*this, "adamw_update_device");
    inner_.adamw_update_device(params, grads, m, v, count, constants, scalars);
  }
  // Not timed: what the device reports. (A profile never captures graphs:
  // make_step_runner keeps the default, eager, so every call is timed.)
  std::optional<int64_t> device_bytes_in_use() override { return inner_.device_bytes_in_use(); }

 protected:
  MemoryInfo query_memory_info() override { return inner_.memory_info(); }

 public:
 private:
  class Timed {
   public:
    Timed(ProfilingBackend& owner, const char* family) : owner_(owner), family_(family) {
      if (!owner_.timing_) return;
      owner_.inner_.synchronize();
      start_ = std::chrono::steady_clock::now();
    }
    ~Timed() {
      if (!owner_.timing_) return;
      owner_.inner_.synchronize();
      Total& t = owner_.totals_[family_];
      t.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
      ++t.calls;
    }
    Timed(const Timed&) = delete;
    Timed& operator=(const Timed&) = delete;

   private:
    ProfilingBackend& owner_;
    const char* family_;
    std::chrono::steady_clock::time_point start_;
  };

  Backend& inner_;
  bool timing_ = false;
  std::map<std::string, Total> totals_;
};

}  // namespace livs::bench
