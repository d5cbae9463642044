#pragma once
// The CPU backend: fp32, parallel with TBB, the reference every other backend
// is checked against. Each kernel family lives in its own cpu_*.cpp file.
// Determinism: every output element (and every partial sum) is owned by one
// task and computed in a fixed order; reductions across tasks use a fixed
// tree (tbb::parallel_deterministic_reduce with a fixed grain).
#include "evaluator/backend.hpp"

namespace livs::evaluator {

class CpuBackend final : public Backend {
 public:
  const char* name() const override { return "cpu"; }

  // A played sticky error (backend.hpp): throws, and from then on every CPU
  // backend of the process reports its device lost.
  void inject_device_fault() override;
  bool device_context_lost() override;

  void* allocate(std::size_t bytes) override;
  void free(void* pointer) override;
  void copy_to_device(void* device_dst, const void* host_src, std::size_t bytes) override;
  void copy_to_host(void* host_dst, const void* device_src, std::size_t bytes) override;
  void copy(float* dst, const float* src, int64_t count) override;
  void fill(float* dst, int64_t count, float value) override;
  void synchronize() override {}

  void embedding_forward(Matrix out, ConstMatrix table, const int32_t* tokens) override;
  void embedding_backward(Matrix dtable, ConstMatrix dout, const int32_t* tokens) override;

  void rmsnorm_forward(Matrix out, float* rstd, ConstMatrix x, const float* gain, float eps,
                       void* out16 = nullptr) override;
  void rmsnorm_backward(Matrix dx, float* dgain, ConstMatrix dout, ConstMatrix x, const float* gain,
                        const float* rstd, void* dx16, bool accumulate_dx) override;

  void matmul(Matrix y, GemmOperand x, GemmOperand w, bool accumulate) override;
  void matmul_backward_input(Matrix dx, GemmOperand dy, GemmOperand w, bool accumulate = true) override;
  void matmul_backward_weight(Matrix dw, GemmOperand dy, GemmOperand x) override;

  void rope_forward(float* out, const float* in, const float* cos, const float* sin,
                    const RopeShape& shape) override;
  void rope_backward(float* din, const float* dout, const float* cos, const float* sin,
                     const RopeShape& shape) override;

  void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                         const AttentionShape& shape, void* out16 = nullptr) override;
  void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                          const float* v, const float* out, const float* lse, const AttentionShape& shape,
                          bool accumulate, void* dv16 = nullptr) override;
  void kv_cache_write(float* k_cache, float* v_cache, const float* k, const float* v,
                      const AttentionShape& shape, int64_t capacity, int64_t position) override;
  void attention_decode(float* out, const float* q, const float* k_cache, const float* v_cache,
                        const AttentionShape& shape, int64_t capacity, int64_t position) override;

  void swiglu_forward(float* h, const float* gate, const float* up, int64_t count) override;
  void swiglu_backward(float* dgate, float* dup, const float* dh, const float* gate, const float* up,
                       int64_t count, bool accumulate) override;

  void add(float* out, const float* a, const float* b, int64_t count) override;

  void cross_entropy_forward(float* losses, float* lse, ConstMatrix logits, const int32_t* targets) override;
  void cross_entropy_backward(Matrix dlogits, ConstMatrix logits, const float* lse, const int32_t* targets,
                              float scale) override;

  double sum_of_squares(const float* x, int64_t count) override;
  void adamw_update(float* params, const float* grads, float* m, float* v, int64_t count,
                    const AdamWStep& step) override;

  // The training step on the "device" (host memory here): cpu_optimizer.cpp,
  // cpu_step.cpp. Step runners are the default eager ones.
  void mean_to_device(double* out, const float* x, int64_t count) override;
  void grad_clip_scale(float* scale_out, double* norm_out, const float* grads, int64_t count,
                       double max_norm) override;
  void adamw_update_device(float* params, const float* grads, float* m, float* v, int64_t count,
                           const AdamWStep& constants, const DeviceStepScalars* scalars) override;

 protected:
  MemoryInfo query_memory_info() override;

 public:
  // Convolutions and scans (rec, ssm, gconv): cpu_conv.cpp, cpu_scan.cpp, cpu_pointwise.cpp.
  void causal_conv_forward(float* y, const float* x, const float* w, const float* bias, float* state,
                           const ConvShape& shape) override;
  void causal_conv_backward(float* dx, float* dw, float* dbias, const float* dy, const float* x,
                            const float* w, const ConvShape& shape, bool accumulate_dx) override;
  void gated_conv_forward(float* out, const float* bcx, const float* w, float* state,
                          const ConvShape& shape) override;
  void gated_conv_backward(float* dbcx, float* dw, const float* dout, const float* bcx, const float* w,
                           const ConvShape& shape) override;
  void rglru_forward(float* h, const float* u, const float* gate_a, const float* gate_i, const float* lambda,
                     float c, float* state, const ScanShape& shape) override;
  void rglru_backward(float* du, float* dgate_a, float* dgate_i, float* dlambda, const float* dh,
                      const float* h, const float* u, const float* gate_a, const float* gate_i,
                      const float* lambda, float c, const ScanShape& shape) override;
  void selective_scan_forward(float* y, float* h_all, const float* u, const float* delta, const float* a_log,
                              const float* B, const float* C, const float* D, float* state,
                              const ScanShape& shape) override;
  void selective_scan_backward(float* du, float* ddelta, float* da_log, float* dB, float* dC, float* dD,
                               float* partials, const float* dy, const float* h_all, const float* u,
                               const float* delta, const float* a_log, const float* B, const float* C,
                               const float* D, const ScanShape& shape) override;
  void ssd_forward(float* y, float* checkpoints, const float* xbc, const float* dt, const float* a_log,
                   const float* D, float* state, const SsdShape& shape) override;
  void ssd_backward(float* dxbc, float* ddt, float* da_log, float* dD, float* partials, const float* dy,
                    const float* checkpoints, const float* xbc, const float* dt, const float* a_log,
                    const float* D, const SsdShape& shape) override;
  void activation_forward(float* out, const float* in, int64_t count, ActivationKind kind) override;
  void activation_backward(float* din, const float* dout, const float* in, int64_t count, ActivationKind kind,
                           bool accumulate) override;
  void multiply_forward(float* out, const float* a, const float* b, int64_t count) override;
  void multiply_backward(float* da, float* db, const float* dout, const float* a, const float* b,
                         int64_t count, bool accumulate) override;
  void halves_difference_forward(Matrix out, ConstMatrix in, const float* lambda, float lambda_init) override;
  void halves_difference_backward(Matrix din, float* dlambda, ConstMatrix dout, ConstMatrix in,
                                  const float* lambda, float lambda_init) override;
  void add_bias(Matrix y, const float* bias) override;
  void bias_backward(float* dbias, ConstMatrix dy) override;
  // The delta rule of deltanet and its decay (cpu_deltanet.cpp).
  void delta_rule_forward(float* o, float* checkpoints, const float* q, const float* k, const float* v,
                          const float* log_alpha, const float* beta, float* state,
                          const DeltaRuleShape& shape) override;
  void delta_rule_backward(float* dq, float* dk, float* dv, float* dlog_alpha, float* dbeta, float* scratch,
                           const float* dout, const float* checkpoints, const float* q, const float* k,
                           const float* v, const float* log_alpha, const float* beta,
                           const DeltaRuleShape& shape) override;
  void gdn_decay_forward(float* log_alpha, const float* z, const float* a_log, const float* dt_bias,
                         int64_t rows, int heads) override;
  void gdn_decay_backward(float* dz, float* da_log, float* ddt_bias, const float* dlog_alpha, const float* z,
                          const float* a_log, const float* dt_bias, int64_t rows, int heads) override;
  // Linear attention and MoE (cpu_linear_attention.cpp, cpu_mixing.cpp, cpu_moe.cpp).
  void feature_map_forward(float* out, const float* in, int64_t count, FeatureMapKind kind) override;
  void feature_map_backward(float* din, const float* dout, const float* in, int64_t count,
                            FeatureMapKind kind, bool accumulate) override;
  void gla_log_decay_forward(float* log_alpha, const float* z, const float* bias, int64_t rows, int64_t cols,
                             float temperature) override;
  void gla_log_decay_backward(float* dz, float* dbias, const float* dlog_alpha, const float* z,
                              const float* bias, int64_t rows, int64_t cols, float temperature) override;
  void linear_attention_forward(float* out, const float* q, const float* k, const float* v,
                                const float* log_alpha, const LinearAttentionShape& shape) override;
  void linear_attention_backward(float* dq, float* dk, float* dv, float* dlog_alpha, const float* dout,
                                 const float* q, const float* k, const float* v, const float* log_alpha,
                                 const LinearAttentionShape& shape, bool accumulate) override;
  void linear_attention_state_update(float* state, const float* k, const float* v, const float* log_alpha,
                                     const LinearAttentionShape& shape) override;
  void linear_attention_state_read(float* out, const float* q, const float* state,
                                   const LinearAttentionShape& shape) override;
  void differential_forward(float* out, const float* a1, const float* a2, const float* lambda,
                            float lambda_init, int64_t rows, int heads, int head_dim) override;
  void differential_backward(float* da1, float* da2, float* dlambda, const float* dout, const float* a2,
                             const float* lambda, float lambda_init, int64_t rows, int heads,
                             int head_dim) override;
  void gate_mix_forward(float* out, const float* y0, const float* y1, const float* gate, int64_t rows,
                        int64_t cols) override;
  void gate_mix_backward(float* dy0, float* dy1, float* dgate, const float* dout, const float* y0,
                         const float* y1, const float* gate, int64_t rows, int64_t cols) override;
  void moe_route(float* probs, int32_t* top_index, float* top_weight, ConstMatrix logits, int top_k) override;
  void moe_route_backward(Matrix dlogits, const float* dtop_weight, const float* probs,
                          const int32_t* top_index, const float* top_weight, const float* expert_fractions,
                          int top_k, float aux_weight) override;
  void moe_dispatch(int32_t* order, int32_t* position, int32_t* offsets, float* expert_fractions,
                    const int32_t* top_index, int64_t rows, int top_k, int experts) override;
  void moe_gather(Matrix xs, ConstMatrix x, const int32_t* order, int top_k) override;
  void moe_gather_backward(Matrix dx, ConstMatrix dxs, const int32_t* position, int top_k) override;
  void moe_combine(Matrix y, ConstMatrix ys, const float* top_weight, const int32_t* position,
                   int top_k) override;
  void moe_combine_backward(Matrix dys, float* dtop_weight, ConstMatrix dy, ConstMatrix ys,
                            const float* top_weight, const int32_t* position, int top_k) override;
  void moe_balance_loss(double* out, const float* expert_fractions, ConstMatrix probs,
                        float aux_weight) override;
  // The grouped products read the offsets directly (host memory) and run one
  // matmul per expert: the bits of the per-expert loop they replace.
  void grouped_matmul(Matrix y, ConstMatrix x, ConstMatrix w, ExpertRows rows, bool accumulate) override;
  void grouped_matmul_backward_input(Matrix dx, ConstMatrix dy, ConstMatrix w, ExpertRows rows,
                                     bool accumulate = true) override;
  void grouped_matmul_backward_weight(Matrix dw, ConstMatrix dy, ConstMatrix x, ExpertRows rows) override;
};

}  // namespace livs::evaluator
