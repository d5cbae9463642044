#pragma once
// The CUDA backend: every kernel of evaluator/backend.hpp on one CUDA stream.
// Storage is fp32 (the views of backend.hpp); the three matmuls run on
// tensor cores in bf16 with fp32 accumulation through cuBLAS, or in exact
// fp32 (GemmPrecision::fp32, or LIVSEARCH_CUDA_FP32=1) for debugging. All our
// own kernels compute in fp32; reductions are deterministic (fixed trees, no
// atomics), so a step gives the same bits on every run.
//
// Each kernel family lives in its own .cu file with a small launcher taking
// the stream (kernels.hpp). This header includes no CUDA header so that the
// rest of the evaluator compiles with the host compiler alone.
//
// The methods must be called from a thread whose current CUDA device is this
// backend's (the constructor makes it current).
#include <cstddef>
#include <utility>
#include <vector>

#include "evaluator/backend.hpp"

struct CUstream_st;
struct CUevent_st;
struct cublasContext;

namespace livs::evaluator {

namespace cuda {
int visible_device_count();           // 0 when there is no driver or no GPU
void set_current_device(int device);  // cudaSetDevice for the calling thread
}  // namespace cuda

enum class GemmPrecision {
  bf16,  // tensor cores, bf16 inputs, fp32 accumulation (CUBLAS_COMPUTE_32F_FAST_16BF)
  fp32,  // exact fp32 (CUBLAS_COMPUTE_32F)
};

// fp32 when the environment sets LIVSEARCH_CUDA_FP32=1, else bf16.
GemmPrecision gemm_precision_from_environment();
// False when the environment sets LIVSEARCH_CUDA_GRAPHS=0 (debugging, and the
// benchmark's comparison), else true.
bool cuda_graphs_from_environment();

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device = 0, GemmPrecision precision = gemm_precision_from_environment());
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  const char* name() const override { return "cuda"; }
  int device() const { return device_; }

  // A kernel that writes through a null pointer: cudaErrorIllegalAddress, a
  // sticky error after which every call on this device fails (tests only).
  void inject_device_fault() override;
  // After a failure: whether the device's context is broken (a sticky error).
  bool device_context_lost() override;
  GemmPrecision precision() const { return precision_; }

  void* allocate(std::size_t bytes) override;
  void free(void* pointer) override;
  void copy_to_device(void* device_dst, const void* host_src, std::size_t bytes) override;
  void copy_to_host(void* host_dst, const void* device_src, std::size_t bytes) override;
  void copy(float* dst, const float* src, int64_t count) override;
  void fill(float* dst, int64_t count, float value) override;
  void synchronize() override;

  void embedding_forward(Matrix out, ConstMatrix table, const int32_t* tokens) override;
  void embedding_backward(Matrix dtable, ConstMatrix dout, const int32_t* tokens) override;

  void rmsnorm_forward(Matrix out, float* rstd, ConstMatrix x, const float* gain, float eps,
                       void* out16 = nullptr) override;
  void add_rmsnorm_forward(float* sum, Matrix out, float* rstd, const float* a, const float* b,
                           const float* gain, float eps, void* out16 = nullptr) override;
  void rmsnorm_backward(Matrix dx, float* dgain, ConstMatrix dout, ConstMatrix x, const float* gain,
                        const float* rstd, void* dx16, bool accumulate_dx) override;

  void matmul(Matrix y, GemmOperand x, GemmOperand w, bool accumulate) override;
  void matmul_backward_input(Matrix dx, GemmOperand dy, GemmOperand w, bool accumulate = true) override;
  void matmul_backward_weight(Matrix dw, GemmOperand dy, GemmOperand x) override;
  void matmul_bf16_output(void* y16, GemmOperand x, GemmOperand w) override;
  void matmul_backward_input_bf16_output(void* dx16, GemmOperand dy, GemmOperand w) override;
  void linear_backward(Matrix dw, Matrix dx, GemmOperand dy, GemmOperand x, GemmOperand w,
                       bool accumulate_dx) override;
  bool wants_gemm_shadows() const override;  // bf16 mode with conversion on (cuda_matmul.cpp)
  void round_to_bf16(void* dst, const float* src, int64_t count) override;

  void rope_forward(float* out, const float* in, const float* cos, const float* sin,
                    const RopeShape& shape) override;
  void rope_backward_bf16(void* din16, const float* dout, const float* cos, const float* sin,
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
  void swiglu_forward_bf16(void* h16, const void* gate16, const void* up16, int64_t rows, int64_t cols,
                           int64_t ld) override;
  void swiglu_backward_bf16(void* dgate16, void* dup16, const void* dh16, const void* gate16,
                            const void* up16, int64_t rows, int64_t cols, int64_t ld) override;
  void swiglu_backward(float* dgate, float* dup, const float* dh, const float* gate, const float* up,
                       int64_t count, bool accumulate) override;

  void add(float* out, const float* a, const float* b, int64_t count) override;

  void cross_entropy_forward(float* losses, float* lse, ConstMatrix logits, const int32_t* targets) override;
  void cross_entropy_backward(Matrix dlogits, ConstMatrix logits, const float* lse, const int32_t* targets,
                              float scale) override;

  double sum_of_squares(const float* x, int64_t count) override;
  void adamw_update(float* params, const float* grads, float* m, float* v, int64_t count,
                    const AdamWStep& step) override;

  // The device-side training step, step graphs, memory and timing (cuda_backend_step.cpp).
  void mean_to_device(double* out, const float* x, int64_t count) override;
  void grad_clip_scale(float* scale_out, double* norm_out, const float* grads, int64_t count,
                       double max_norm) override;
  void adamw_update_device(float* params, const float* grads, float* m, float* v, int64_t count,
                           const AdamWStep& constants, const DeviceStepScalars* scalars) override;
  std::unique_ptr<StepRunner> make_step_runner(std::function<void()> step, bool allow_graph = true) override;
  double elapsed_ms(const std::function<void()>& run) override;  // CUDA events on the stream
  // Page-locked memory, copies and an event on the backend's stream
  // (cuda_host_staging.cpp).
  std::unique_ptr<HostStaging> make_host_staging(std::size_t bytes) override;
  std::optional<int64_t> device_bytes_in_use() override;  // cudaMemGetInfo: total - free
  // Step runners capture CUDA graphs unless this is off; the default is on
  // unless the environment sets LIVSEARCH_CUDA_GRAPHS=0.
  void set_graphs_enabled(bool on) { graphs_enabled_ = on; }
  bool graphs_enabled() const { return graphs_enabled_; }

  // Linear attention, mixing and MoE (cuda_backend_blocks.cpp).
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
  void moe_combine_halves(Matrix y, Matrix ys, ConstMatrix ys_second, const float* top_weight,
                          const int32_t* position, int top_k) override;
  void moe_combine_backward(Matrix dys, float* dtop_weight, ConstMatrix dy, ConstMatrix ys,
                            const float* top_weight, const int32_t* position, int top_k) override;
  void moe_balance_loss(double* out, const float* expert_fractions, ConstMatrix probs,
                        float aux_weight) override;
  void moe_route_and_gather(const MoeRouting& r, Matrix xs, GemmOperand x, GemmOperand router) override;
  void moe_combine_route_backward(const MoeRouting& r, Matrix dlogits, void* dlogits16, Matrix dys,
                                  float* dtop_weight, ConstMatrix dy, ConstMatrix ys,
                                  float aux_weight) override;
  void moe_gather_router_backward(const MoeRouting& r, Matrix dx, ConstMatrix dxs, GemmOperand dlogits,
                                  GemmOperand router, bool accumulate, ConstMatrix dxs_up = {}) override;

  // Grouped GEMMs (grouped_gemm.cu): tensor cores in bf16 mode, exact fp32 in fp32 mode.
  void grouped_matmul(Matrix y, ConstMatrix x, ConstMatrix w, ExpertRows rows, bool accumulate) override;
  bool splits_grouped_products(int64_t capacity, int64_t cols, int experts) const override;
  void grouped_matmul_halves(Matrix y, Matrix y_second, ConstMatrix x, ConstMatrix w,
                             ExpertRows rows) override;
  void grouped_matmul_backward_input(Matrix dx, ConstMatrix dy, ConstMatrix w, ExpertRows rows,
                                     bool accumulate = true) override;
  void grouped_matmul_backward_weight(Matrix dw, ConstMatrix dy, ConstMatrix x, ExpertRows rows) override;
  void grouped_swiglu_forward(Matrix h, Matrix gate, Matrix up, ConstMatrix x, ConstMatrix w_gate,
                              ConstMatrix w_up, ExpertRows rows) override;
  void grouped_swiglu_backward_input(Matrix dgate, Matrix dup, Matrix dh, ConstMatrix dy, ConstMatrix w_down,
                                     ConstMatrix gate, ConstMatrix up, ExpertRows rows) override;
  void grouped_matmul_backward_input_pair(Matrix dx, ConstMatrix dy0, ConstMatrix w0, ConstMatrix dy1,
                                          ConstMatrix w1, ExpertRows rows, bool accumulate) override;
  void grouped_matmul_backward_weight_pair(Matrix dw0, ConstMatrix dy0, Matrix dw1, ConstMatrix dy1,
                                           ConstMatrix x, ExpertRows rows) override;
  void grouped_swiglu_backward(Matrix dw_down, Matrix dgate, Matrix dup, Matrix dh, ConstMatrix dy,
                               ConstMatrix h, ConstMatrix w_down, ConstMatrix gate, ConstMatrix up,
                               ExpertRows rows) override;
  void grouped_gate_up_backward(Matrix dw_gate, Matrix dw_up, Matrix dx, ConstMatrix dgate, ConstMatrix dup,
                                ConstMatrix x, ConstMatrix w_gate, ConstMatrix w_up, ExpertRows rows,
                                bool accumulate, Matrix dx_up = {}) override;

  // Convolutions, scans and pointwise kernels of the gated blocks (cuda_backend_scans.cpp).
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
  void ssd_forward(float* y, float* checkpoints, const float* xbc, const float* dt, const float* a_log,
                   const float* D, float* state, const SsdShape& shape) override;
  void ssd_backward(float* dxbc, float* ddt, float* da_log, float* dD, float* partials, const float* dy,
                    const float* checkpoints, const float* xbc, const float* dt, const float* a_log,
                    const float* D, const SsdShape& shape) override;
  void selective_scan_backward(float* du, float* ddelta, float* da_log, float* dB, float* dC, float* dD,
                               float* partials, const float* dy, const float* h_all, const float* u,
                               const float* delta, const float* a_log, const float* B, const float* C,
                               const float* D, const ScanShape& shape) override;
  void activation_forward(float* out, const float* in, int64_t count, ActivationKind kind) override;
  void activation_backward(float* din, const float* dout, const float* in, int64_t count, ActivationKind kind,
                           bool accumulate) override;
  // deltanet (cuda_backend_deltanet.cpp, deltanet.cu).
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
  void multiply_forward(float* out, const float* a, const float* b, int64_t count) override;
  void multiply_backward(float* da, float* db, const float* dout, const float* a, const float* b,
                         int64_t count, bool accumulate) override;
  void add_bias(Matrix y, const float* bias) override;
  void bias_backward(float* dbias, ConstMatrix dy) override;
  // The LM head on bf16 logits in bf16 mode when they are large (cuda_lm_head.cpp).
  bool bf16_logits(int64_t rows, int64_t vocab) const;
  int64_t lm_head_logits_floats(int64_t rows, int64_t vocab) const override;
  void lm_head_forward(float* losses, float* lse, Matrix logits, GemmOperand x, GemmOperand table,
                       const int32_t* targets) override;
  void lm_head_backward(Matrix dx, Matrix dtable, Matrix logits, ConstMatrix x, ConstMatrix table,
                        const float* lse, const int32_t* targets, float scale) override;
  void halves_difference_forward(Matrix out, ConstMatrix in, const float* lambda, float lambda_init) override;
  void halves_difference_backward(Matrix din, float* dlambda, ConstMatrix dout, ConstMatrix in,
                                  const float* lambda, float lambda_init) override;

 protected:
  MemoryInfo query_memory_info() override;  // cudaMemGetInfo

 private:
  // A device buffer that grows on first use at a larger shape and is then
  // reused: after the first step at a shape, no kernel allocates.
  struct Scratch {
    void* data = nullptr;
    std::size_t bytes = 0;
  };
  // Page-locked host memory kept for the next HostStaging: cudaFreeHost
  // waits for the whole device, so with several candidates training at once
  // a block freed per candidate would stall every other one.
  struct PinnedBlock {
    std::byte* data = nullptr;
    std::size_t bytes = 0;
  };
  friend class PinnedStaging;
  PinnedBlock take_pinned(std::size_t bytes);
  void keep_pinned(PinnedBlock block) noexcept;
  // moe_dispatch's per-chunk counts and places (moe_dispatch_places_).
  int32_t* moe_dispatch_places(int64_t rows, int top_k, int experts);
  void* scratch(Scratch& s, std::size_t bytes);
  void release() noexcept;
  void* device_malloc(std::size_t bytes);  // stream-ordered unless async_alloc_ is off
  void device_free(void* pointer);
  void release_memory(void* pointer) noexcept;  // device_free without checks, for unwinding
  float* scratch_floats(Scratch& s, int64_t count) {
    return static_cast<float*>(scratch(s, std::size_t(count > 0 ? count : 1) * sizeof(float)));
  }
  // The grouped weight gradients' chunk count and partials (nullptr for one chunk), for `pairs` of dw's
  // shape.
  std::pair<int, float*> grouped_weight_partials(Matrix dw, int64_t capacity, int experts, int pairs);
  // bf16 x bf16 -> fp32 (or bf16 when bf16_output) through cuBLAS; a and b are bf16 device arrays.
  void gemm_bf16(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, const void* a,
                 int64_t lda, const void* b, int64_t ldb, void* c, int64_t ldc, float beta,
                 bool bf16_output = false);
  // An operand of gemm: fp32 values and their bf16 shadow, if any.
  struct Operand {
    const float* fp32;
    const void* bf16;
  };
  void gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, Operand a, int64_t lda,
            Operand b, int64_t ldb, float* c, int64_t ldc, float beta);
  // C = A B in bf16 with a bf16 C (written), inputs rounded where they have no shadow.
  void gemm_to_bf16(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, Operand a,
                    int64_t lda, Operand b, int64_t ldb, void* c, int64_t ldc);
  // The operand's shadow, or its `count` values rounded into `copy` (a Scratch).
  const void* bf16_operand(Operand operand, Scratch& copy, int64_t count);

  int device_ = 0;
  GemmPrecision precision_ = GemmPrecision::bf16;
  CUstream_st* stream_ = nullptr;
  cublasContext* cublas_ = nullptr;
  void* cublas_workspace_ = nullptr;
  double* reduce_partials_ = nullptr;  // sum_of_squares: fixed-size partials, then the result
  Scratch attention_delta_;            // attention backward: dout . out per query row
  Scratch column_partials_;            // rmsnorm backward: per-chunk column sums of dgain
  Scratch embedding_sort_;             // embedding backward: sorted (token, position) pairs and cub's storage
  Scratch column_sums_;                // bias, gate, lambda, conv-weight gradients (column_sums.cuh)
  Scratch scan_scratch_;               // rglru dlambda partials; selective scan carries and g*delta*u
  Scratch linear_attention_scratch_;   // linear attention backward: local dq (and states too big to share)
  bool graphs_enabled_ = true;
  bool async_alloc_ = true;               // LIVSEARCH_CUDA_ASYNC_ALLOC=0: cudaMalloc / cudaFree
  std::vector<PinnedBlock> idle_pinned_;  // take_pinned / keep_pinned
  CUevent_st* timer_start_ = nullptr;     // elapsed_ms
  CUevent_st* timer_stop_ = nullptr;
  Scratch gemm_a_bf16_, gemm_b_bf16_, gemm_dy_bf16_;  // bf16 copies of GEMM inputs (cuda_matmul.cpp)
  Scratch attention_decode_partials_;                 // per-split (max, sum, output) of the one-token decode
  Scratch moe_dispatch_places_;                       // moe_dispatch: per chunk of assignments and expert
  Scratch grouped_partials_;                          // grouped weight gradient: per-chunk partial dW
  Scratch lm_head_x_bf16_, lm_head_table_bf16_;       // the LM head's bf16 inputs, forward to backward
  const void* lm_head_x16_ = nullptr;                 // x's bf16 copy: the shadow or lm_head_x_bf16_
  const void* lm_head_table16_ = nullptr;  // the table's bf16 copy: the shadow or lm_head_table_bf16_
};

}  // namespace livs::evaluator
