#pragma once
// The launchers of the CUDA kernels, one group per .cu file. Each takes the
// stream it runs on and the same arguments as its Backend method; each checks
// its launch. Arguments are device pointers.
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#ifdef __CUDACC__
// backend.hpp's MatrixView<const float> has a conversion to itself that is
// never used; nvcc says so (#554) for every instantiation.
#pragma nv_diag_suppress 554
#endif
#include "evaluator/backend.hpp"

namespace livs::evaluator::cuda {

// fault_kernel.cu: a sticky cudaErrorIllegalAddress, for the fault tests.
void launch_illegal_address_kernel(cudaStream_t stream);

// elementwise.cu
void fill(cudaStream_t stream, float* dst, int64_t count, float value);
void add(cudaStream_t stream, float* out, const float* a, const float* b, int64_t count);
// dst: count bf16 values (round to nearest even).
void to_bf16(cudaStream_t stream, void* dst, const float* src, int64_t count);

// swiglu.cu: fp32 in and out (the backward accumulating or writing), or
// bf16 in and out (outputs overwrite: GEMM shadows).
void swiglu_forward(cudaStream_t stream, float* h, const float* gate, const float* up, int64_t count);
void swiglu_backward(cudaStream_t stream, float* dgate, float* dup, const float* dh, const float* gate,
                     const float* up, int64_t count, bool accumulate);
void swiglu_forward_bf16(cudaStream_t stream, void* h16, const void* gate16, const void* up16, int64_t rows,
                         int64_t cols, int64_t ld);
void swiglu_backward_bf16(cudaStream_t stream, void* dgate16, void* dup16, const void* dh16,
                          const void* gate16, const void* up16, int64_t rows, int64_t cols, int64_t ld);

// embedding.cu. The backward sorts (token, position) pairs in `scratch`:
// embedding_backward_scratch_bytes(dout.rows, dtable.rows) bytes.
void embedding_forward(cudaStream_t stream, Matrix out, ConstMatrix table, const int32_t* tokens);
std::size_t embedding_backward_scratch_bytes(int64_t rows, int64_t vocab);
void embedding_backward(cudaStream_t stream, Matrix dtable, ConstMatrix dout, const int32_t* tokens,
                        void* scratch, std::size_t scratch_bytes);

// rmsnorm.cu. partials: rmsnorm_backward_scratch(rows, cols) floats. out16 /
// dx16: bf16 shadows of out / of dx, or nullptr. dx added into when
// accumulate_dx, else written.
int64_t rmsnorm_backward_scratch(int64_t rows, int64_t cols);
void rmsnorm_forward(cudaStream_t stream, Matrix out, float* rstd, ConstMatrix x, const float* gain,
                     float eps, void* out16 = nullptr);
// sum = a + b, then rmsnorm_forward of sum: one pass on the register path.
void add_rmsnorm_forward(cudaStream_t stream, float* sum, Matrix out, float* rstd, const float* a,
                         const float* b, const float* gain, float eps, void* out16 = nullptr);
void rmsnorm_backward(cudaStream_t stream, Matrix dx, float* dgain, ConstMatrix dout, ConstMatrix x,
                      const float* gain, const float* rstd, float* partials, void* dx16, bool accumulate_dx);

// rope.cu
void rope_forward(cudaStream_t stream, float* out, const float* in, const float* cos, const float* sin,
                  const RopeShape& shape);
void rope_backward_bf16(cudaStream_t stream, void* din16, const float* dout, const float* cos,
                        const float* sin, const RopeShape& shape);
void rope_backward(cudaStream_t stream, float* din, const float* dout, const float* cos, const float* sin,
                   const RopeShape& shape);

// attention.cu (forward and decode) and attention_backward.cu.
// The backward's scratch: attention_backward_scratch_bytes(shape,
// tensor_cores) bytes, 16-byte aligned (delta per query row; with tensor
// cores also bf16 copies of q, k, v, dout); it adds into dq, dk, dv when
// accumulate, else writes them, and dv's bf16 copy to dv16 if given. With tensor_cores, the forward
// and backward run the bf16 tensor-core kernels (attention_tc_*.cu) where
// they apply (head_dim 16, 32, 64, 128; 16-byte aligned views), else the
// exact fp32 SIMT kernels. out16 (or nullptr): the forward writes a bf16
// copy of out as well (a GEMM shadow).
void attention_forward(cudaStream_t stream, float* out, float* lse, const float* q, const float* k,
                       const float* v, const AttentionShape& shape, bool tensor_cores, void* out16);
void attention_backward(cudaStream_t stream, float* dq, float* dk, float* dv, const float* dout,
                        const float* q, const float* k, const float* v, const float* out, const float* lse,
                        void* scratch, const AttentionShape& shape, bool tensor_cores, bool accumulate,
                        void* dv16);
std::size_t attention_backward_scratch_bytes(const AttentionShape& shape, bool tensor_cores);
void kv_cache_write(cudaStream_t stream, float* k_cache, float* v_cache, const float* k, const float* v,
                    const AttentionShape& shape, int64_t capacity, int64_t position);
// partials: attention_decode_partial_floats(shape, capacity) floats of scratch.
int64_t attention_decode_partial_floats(const AttentionShape& shape, int64_t capacity);
void attention_decode(cudaStream_t stream, float* out, float* partials, const float* q, const float* k_cache,
                      const float* v_cache, const AttentionShape& shape, int64_t capacity, int64_t position);

// cross_entropy.cu
void cross_entropy_forward(cudaStream_t stream, float* losses, float* lse, ConstMatrix logits,
                           const int32_t* targets);
void cross_entropy_backward(cudaStream_t stream, Matrix dlogits, ConstMatrix logits, const float* lse,
                            const int32_t* targets, float scale);
// The same on bf16 logits (rows x vocab): the LM head's own storage in bf16
// mode (cuda_lm_head.cpp); the backward writes bf16 dlogits over the logits.
void cross_entropy_forward_bf16(cudaStream_t stream, float* losses, float* lse, const void* logits_bf16,
                                int64_t rows, int64_t vocab, const int32_t* targets);
void cross_entropy_backward_bf16_in_place(cudaStream_t stream, void* logits_bf16, int64_t rows, int64_t vocab,
                                          const float* lse, const int32_t* targets, float scale);

// reductions.cu. partials holds kSumOfSquaresBlocks + 1 doubles; the result
// lands in partials[kSumOfSquaresBlocks].
constexpr int kSumOfSquaresBlocks = 256;
void sum_of_squares(cudaStream_t stream, double* partials, const float* x, int64_t count);

// adamw.cu
void adamw_update(cudaStream_t stream, float* params, const float* grads, float* m, float* v, int64_t count,
                  const AdamWStep& step);

// Deterministic column sums (column_sums.cuh) split the rows into this many
// chunks (a thread per column and chunk: 64 left a 256-column sum over 16k
// rows with 4 warps an SM, waiting on its loads).
constexpr int64_t kColumnSumChunks = 256;
inline int64_t column_sum_chunks(int64_t rows) {
  return rows < 1 ? 1 : (rows < kColumnSumChunks ? rows : kColumnSumChunks);
}
// Floats of scratch a column sum over [rows, cols] needs.
inline int64_t column_sum_scratch(int64_t rows, int64_t cols) { return column_sum_chunks(rows) * cols; }

// pointwise.cu. partials: column_sum_scratch(rows, cols) floats (column_sums.cuh).
void activation_forward(cudaStream_t stream, float* out, const float* in, int64_t count, ActivationKind kind);
void activation_backward(cudaStream_t stream, float* din, const float* dout, const float* in, int64_t count,
                         ActivationKind kind, bool accumulate);
void multiply_forward(cudaStream_t stream, float* out, const float* a, const float* b, int64_t count);
void multiply_backward(cudaStream_t stream, float* da, float* db, const float* dout, const float* a,
                       const float* b, int64_t count, bool accumulate);
void add_bias(cudaStream_t stream, Matrix y, const float* bias);
void bias_backward(cudaStream_t stream, float* dbias, ConstMatrix dy, float* partials);
void feature_map_forward(cudaStream_t stream, float* out, const float* in, int64_t count,
                         FeatureMapKind kind);
void feature_map_backward(cudaStream_t stream, float* din, const float* dout, const float* in, int64_t count,
                          FeatureMapKind kind, bool accumulate);
void gla_log_decay_forward(cudaStream_t stream, float* log_alpha, const float* z, const float* bias,
                           int64_t rows, int64_t cols, float temperature);
void gla_log_decay_backward(cudaStream_t stream, float* dz, float* dbias, const float* dlog_alpha,
                            const float* z, const float* bias, int64_t rows, int64_t cols, float temperature,
                            float* partials);
// The differential halves of rec, ssm, gconv; partials: column_sum_scratch(rows, W).
void halves_difference_forward(cudaStream_t stream, Matrix out, ConstMatrix in, const float* lambda,
                               float lambda_init);
void halves_difference_backward(cudaStream_t stream, Matrix din, float* dlambda, ConstMatrix dout,
                                ConstMatrix in, const float* lambda, float lambda_init, float* partials);

// mixing.cu. differential_backward's partials: column_sum_scratch(rows, width) + width floats.
void differential_forward(cudaStream_t stream, float* out, const float* a1, const float* a2,
                          const float* lambda, float lambda_init, int64_t rows, int heads, int head_dim);
void differential_backward(cudaStream_t stream, float* da1, float* da2, float* dlambda, const float* dout,
                           const float* a2, const float* lambda, float lambda_init, int64_t rows, int heads,
                           int head_dim, float* partials);
void gate_mix_forward(cudaStream_t stream, float* out, const float* y0, const float* y1, const float* gate,
                      int64_t rows, int64_t cols);
void gate_mix_backward(cudaStream_t stream, float* dy0, float* dy1, float* dgate, const float* dout,
                       const float* y0, const float* y1, const float* gate, int64_t rows, int64_t cols,
                       float* partials);

// conv.cu. partials: column_sum_scratch(batch * seq, channels * kernel) floats.
void causal_conv_forward(cudaStream_t stream, float* y, const float* x, const float* w, const float* bias,
                         float* state, const ConvShape& shape);
void causal_conv_backward(cudaStream_t stream, float* dx, float* dw, float* dbias, const float* dy,
                          const float* x, const float* w, const ConvShape& shape, float* partials,
                          bool accumulate_dx);

// gated_conv.cu: gconv's out = c * conv(b * x~) on bcx = [b | c | x~].
// partials: gated_conv_scratch(shape) floats.
int64_t gated_conv_scratch(const ConvShape& shape);
void gated_conv_forward(cudaStream_t stream, float* out, const float* bcx, const float* w, float* state,
                        const ConvShape& shape);
void gated_conv_backward(cudaStream_t stream, float* dbcx, float* dw, const float* dout, const float* bcx,
                         const float* w, const ConvShape& shape, float* partials);

// scan.cu: chunked scans, time-parallel when batch x channels is small.
// scratch: rglru_scratch(shape) floats for the RG-LRU, and for the selective
// scan selective_scan_forward_scratch / selective_scan_backward_scratch (the
// backward keeps its per-chunk dA and dD partials there, so it takes no
// `partials` argument).
// Whether the scans of this shape run time-parallel (few sequences x channels, several chunks).
bool scan_splits_time(const ScanShape& shape);
int64_t rglru_scratch(const ScanShape& shape);
void rglru_forward(cudaStream_t stream, float* h, const float* u, const float* gate_a, const float* gate_i,
                   const float* lambda, float c, float* state, const ScanShape& shape, float* scratch);
void rglru_backward(cudaStream_t stream, float* du, float* dgate_a, float* dgate_i, float* dlambda,
                    const float* dh, const float* h, const float* u, const float* gate_a, const float* gate_i,
                    const float* lambda, float c, const ScanShape& shape, float* scratch);
int64_t selective_scan_forward_scratch(const ScanShape& shape);
void selective_scan_forward(cudaStream_t stream, float* y, float* checkpoints, const float* u,
                            const float* delta, const float* a_log, const float* B, const float* C,
                            const float* D, float* state, const ScanShape& shape, float* scratch);
int64_t selective_scan_backward_scratch(const ScanShape& shape);
void selective_scan_backward(cudaStream_t stream, float* du, float* ddelta, float* da_log, float* dB,
                             float* dC, float* dD, const float* dy, const float* checkpoints, const float* u,
                             const float* delta, const float* a_log, const float* B, const float* C,
                             const float* D, const ScanShape& shape, float* scratch);

// linear_attention_chunked.cu: the ungated form in chunks (see there); the
// launchers below take it when linear_attention_chunked says so.
bool linear_attention_chunked(const LinearAttentionShape& shape, bool gated);
int64_t linear_attention_chunked_scratch(const LinearAttentionShape& shape);
// tensor_cores: the chunk products in bf16 on the tensor cores
// (linear_attention_tc.cu) where linear_attention_tensor_cores_fit, else fp32.
// The backward adds into dq, dk, dv when accumulate, else writes them (every
// row has one writer block).
void linear_attention_chunked_forward(cudaStream_t stream, float* out, const float* q, const float* k,
                                      const float* v, const LinearAttentionShape& shape, float* scratch,
                                      bool tensor_cores);
void linear_attention_chunked_backward(cudaStream_t stream, float* dq, float* dk, float* dv,
                                       const float* dout, const float* q, const float* k, const float* v,
                                       const LinearAttentionShape& shape, float* scratch, bool tensor_cores,
                                       bool accumulate);
// linear_attention_tc.cu: the same chunks on the tensor cores, with the same
// scratch (the chunk states, K^T V then Q^T dO).
bool linear_attention_tensor_cores_fit(const LinearAttentionShape& shape);
void linear_attention_tc_forward(cudaStream_t stream, float* out, const float* q, const float* k,
                                 const float* v, const LinearAttentionShape& shape, float* kv_states);
void linear_attention_tc_backward(cudaStream_t stream, float* dq, float* dk, float* dv, const float* dout,
                                  const float* q, const float* k, const float* v,
                                  const LinearAttentionShape& shape, float* kv_states, float* qdo_states,
                                  bool accumulate);

// ssd.cu: Mamba-2's SSD scan in its chunked form (decode: the recurrence).
// scratch: ssd_forward_scratch / ssd_backward_scratch floats (the backward
// keeps its per-head dB, dC and per-block dA, dD partials there, so it takes
// no `partials` argument). tensor_cores: the chunk products in bf16 on the
// tensor cores (ssd_tc.cu) where the shape fits, else exact fp32.
int64_t ssd_forward_scratch(const SsdShape& shape);
void ssd_forward(cudaStream_t stream, float* y, float* checkpoints, const float* xbc, const float* dt,
                 const float* a_log, const float* D, float* state, const SsdShape& shape, float* scratch,
                 bool tensor_cores);
int64_t ssd_backward_scratch(const SsdShape& shape);
void ssd_backward(cudaStream_t stream, float* dxbc, float* ddt, float* da_log, float* dD, const float* dy,
                  const float* checkpoints, const float* xbc, const float* dt, const float* a_log,
                  const float* D, const SsdShape& shape, float* scratch, bool tensor_cores);

// deltanet.cu: the delta rule, one block per (sequence, head), the state in
// shared memory; Gated DeltaNet's decay.
void delta_rule_forward(cudaStream_t stream, float* o, float* checkpoints, const float* q, const float* k,
                        const float* v, const float* log_alpha, const float* beta, float* state,
                        const DeltaRuleShape& shape);
void delta_rule_backward(cudaStream_t stream, float* dq, float* dk, float* dv, float* dlog_alpha,
                         float* dbeta, float* scratch, const float* dout, const float* checkpoints,
                         const float* q, const float* k, const float* v, const float* log_alpha,
                         const float* beta, const DeltaRuleShape& shape);
void gdn_decay_forward(cudaStream_t stream, float* log_alpha, const float* z, const float* a_log,
                       const float* dt_bias, int64_t rows, int heads);
// deltanet_chunked_forward.cu, deltanet_chunked_backward.cu: the chunked (WY / UT) form for training,
// head_dim up to 64; delta_rule_forward/backward take it when it fits and checkpoints are kept.
bool delta_rule_chunked_fits(const DeltaRuleShape& shape);
void delta_rule_chunked_forward(cudaStream_t stream, float* o, float* checkpoints, const float* q,
                                const float* k, const float* v, const float* log_alpha, const float* beta,
                                float* state, const DeltaRuleShape& shape);
void delta_rule_chunked_backward(cudaStream_t stream, float* dq, float* dk, float* dv, float* dlog_alpha,
                                 float* dbeta, float* scratch, const float* dout, const float* checkpoints,
                                 const float* q, const float* k, const float* v, const float* log_alpha,
                                 const float* beta, const DeltaRuleShape& shape);
void gdn_decay_backward(cudaStream_t stream, float* dz, float* da_log, float* ddt_bias,
                        const float* dlog_alpha, const float* z, const float* a_log, const float* dt_bias,
                        int64_t rows, int heads);

// linear_attention.cu. scratch: linear_attention_scratch(shape) floats.
int64_t linear_attention_scratch(const LinearAttentionShape& shape);
// tensor_cores: as linear_attention_chunked_forward's.
void linear_attention_forward(cudaStream_t stream, float* out, const float* q, const float* k, const float* v,
                              const float* log_alpha, const LinearAttentionShape& shape, float* scratch,
                              bool tensor_cores);
void linear_attention_backward(cudaStream_t stream, float* dq, float* dk, float* dv, float* dlog_alpha,
                               const float* dout, const float* q, const float* k, const float* v,
                               const float* log_alpha, const LinearAttentionShape& shape, float* scratch,
                               bool tensor_cores, bool accumulate);
void linear_attention_state_update(cudaStream_t stream, float* state, const float* k, const float* v,
                                   const float* log_alpha, const LinearAttentionShape& shape);
void linear_attention_state_read(cudaStream_t stream, float* out, const float* q, const float* state,
                                 const LinearAttentionShape& shape);

// moe.cu
void moe_route(cudaStream_t stream, float* probs, int32_t* top_index, float* top_weight, ConstMatrix logits,
               int top_k);
void moe_route_backward(cudaStream_t stream, Matrix dlogits, const float* dtop_weight, const float* probs,
                        const int32_t* top_index, const float* top_weight, const float* expert_fractions,
                        int top_k, float aux_weight);
// chunk_places: moe_dispatch_scratch(rows, top_k) * experts integers of
// scratch (each chunk of assignments' count, then first place, per expert).
int64_t moe_dispatch_scratch(int64_t rows, int top_k);
void moe_dispatch(cudaStream_t stream, int32_t* order, int32_t* position, int32_t* offsets, float* fractions,
                  int32_t* chunk_places, const int32_t* top_index, int64_t rows, int top_k, int experts);
void moe_gather(cudaStream_t stream, Matrix xs, ConstMatrix x, const int32_t* order, int top_k);
void moe_gather_backward(cudaStream_t stream, Matrix dx, ConstMatrix dxs, const int32_t* position, int top_k);
void moe_combine(cudaStream_t stream, Matrix y, ConstMatrix ys, const float* top_weight,
                 const int32_t* position, int top_k);
// ys += ys_second, written back, and y combined from the sums: one launch.
void moe_combine_halves(cudaStream_t stream, Matrix y, Matrix ys, ConstMatrix ys_second,
                        const float* top_weight, const int32_t* position, int top_k);
void moe_combine_backward(cudaStream_t stream, Matrix dys, float* dtop_weight, ConstMatrix dy, ConstMatrix ys,
                          const float* top_weight, const int32_t* position, int top_k);
// means: probs.cols floats of scratch (P_e).
void moe_balance_loss(cudaStream_t stream, double* out, float* means, const float* fractions,
                      ConstMatrix probs, float aux_weight);
// The fused forms of Backend's composite MoE calls (up to 32 experts, the
// lanes of a warp). Each returns false, having launched nothing, where its
// form does not apply. moe_route_and_gather computes the router's logits in
// fp32 inside the routing kernel (r.logits is not written); chunk_places as
// moe_dispatch's.
bool moe_route_and_gather(cudaStream_t stream, const MoeRouting& r, int32_t* chunk_places, Matrix xs,
                          ConstMatrix x, ConstMatrix router);
bool moe_combine_route_backward(cudaStream_t stream, const MoeRouting& r, Matrix dlogits, void* dlogits16,
                                Matrix dys, ConstMatrix dy, ConstMatrix ys, float aux_weight);
bool moe_gather_router_backward(cudaStream_t stream, const MoeRouting& r, Matrix dx, ConstMatrix dxs,
                                ConstMatrix dxs_up, ConstMatrix dlogits, ConstMatrix router, bool accumulate);

// grouped_gemm.cu: the experts' products with their row ranges read from the
// device offsets (sizes never reach the host, so a step can be captured);
// tensor_cores: bf16 inputs on tensor cores with fp32 accumulation, else
// exact fp32.
void grouped_matmul(cudaStream_t stream, Matrix y, ConstMatrix x, ConstMatrix w, ExpertRows rows,
                    bool accumulate, bool tensor_cores);
// y + y_second = x W_e^T: the reduction cut near its middle, the halves side by side.
void grouped_matmul_halves(cudaStream_t stream, Matrix y, Matrix y_second, ConstMatrix x, ConstMatrix w,
                           ExpertRows rows, bool tensor_cores);
void grouped_matmul_backward_input(cudaStream_t stream, Matrix dx, ConstMatrix dy, ConstMatrix w,
                                   ExpertRows rows, bool accumulate, bool tensor_cores);
// The pairs and SwiGLU layers of Backend::grouped_*_pair and grouped_swiglu_*, each in one launch
// (the weight gradients' partials hold both: 2 * splits * experts * n * k).
void grouped_swiglu_forward(cudaStream_t stream, Matrix h, Matrix gate, Matrix up, ConstMatrix x,
                            ConstMatrix w_gate, ConstMatrix w_up, ExpertRows rows, bool tensor_cores);
void grouped_swiglu_backward_input(cudaStream_t stream, Matrix dgate, Matrix dup, ConstMatrix dy,
                                   ConstMatrix w_down, ConstMatrix gate, ConstMatrix up, ExpertRows rows,
                                   bool tensor_cores);
void grouped_matmul_backward_input_pair(cudaStream_t stream, Matrix dx, ConstMatrix dy0, ConstMatrix w0,
                                        ConstMatrix dy1, ConstMatrix w1, ExpertRows rows, bool accumulate,
                                        bool tensor_cores);
// Whether a rows product over `capacity` dispatched rows with n outputs
// leaves room for twice its blocks in one wave of the device (then its
// reduction is cut in two halves side by side: Backend::splits_grouped_products).
bool grouped_split_fits_one_wave(int64_t capacity, int64_t n, int experts);
// How many chunks the weight gradient cuts each expert's rows into (1: none);
// with more than one it needs partials of splits * experts * n * k floats.
int grouped_weight_splits(int64_t capacity, int64_t n, int64_t k, int experts);
void grouped_matmul_backward_weight(cudaStream_t stream, Matrix dw, ConstMatrix dy, ConstMatrix x,
                                    ExpertRows rows, bool tensor_cores, float* partials, int splits);
void grouped_matmul_backward_weight_pair(cudaStream_t stream, Matrix dw0, ConstMatrix dy0, Matrix dw1,
                                         ConstMatrix dy1, ConstMatrix x, ExpertRows rows, bool tensor_cores,
                                         float* partials, int splits);
// MoE's backward products two at a time, one launch each (then the weight
// gradient's chunk sums), with the results of the separate calls:
// grouped_matmul_backward_weight(dw_down, dy, h) with
// grouped_swiglu_backward_input, and the gate/up weight pair with the input pair
// (or, with dx_up given, the two input products side by side: dx (+)= dgate
// W_gate and dx_up = dup W_up).
void grouped_swiglu_backward(cudaStream_t stream, Matrix dw_down, Matrix dgate, Matrix dup, ConstMatrix dy,
                             ConstMatrix h, ConstMatrix w_down, ConstMatrix gate, ConstMatrix up,
                             ExpertRows rows, bool tensor_cores, float* partials, int splits);
void grouped_gate_up_backward(cudaStream_t stream, Matrix dw_gate, Matrix dw_up, Matrix dx, Matrix dx_up,
                              ConstMatrix dgate, ConstMatrix dup, ConstMatrix x, ConstMatrix w_gate,
                              ConstMatrix w_up, ExpertRows rows, bool accumulate, bool tensor_cores,
                              float* partials, int splits);

}  // namespace livs::evaluator::cuda
