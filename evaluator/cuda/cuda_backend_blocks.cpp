// CudaBackend's linear-attention, mixing and MoE methods: each forwards to
// its launcher on the stream, with scratch sized for the call.
#include "evaluator/cuda/cuda_backend.hpp"
#include "evaluator/cuda/kernels.hpp"

namespace livs::evaluator {

void CudaBackend::feature_map_forward(float* out, const float* in, int64_t count, FeatureMapKind kind) {
  cuda::feature_map_forward(stream_, out, in, count, kind);
}
void CudaBackend::feature_map_backward(float* din, const float* dout, const float* in, int64_t count,
                                       FeatureMapKind kind, bool accumulate) {
  cuda::feature_map_backward(stream_, din, dout, in, count, kind, accumulate);
}
void CudaBackend::gla_log_decay_forward(float* log_alpha, const float* z, const float* bias, int64_t rows,
                                        int64_t cols, float temperature) {
  cuda::gla_log_decay_forward(stream_, log_alpha, z, bias, rows, cols, temperature);
}
void CudaBackend::gla_log_decay_backward(float* dz, float* dbias, const float* dlog_alpha, const float* z,
                                         const float* bias, int64_t rows, int64_t cols, float temperature) {
  float* partials = scratch_floats(column_sums_, cuda::column_sum_scratch(rows, cols));
  cuda::gla_log_decay_backward(stream_, dz, dbias, dlog_alpha, z, bias, rows, cols, temperature, partials);
}

void CudaBackend::linear_attention_forward(float* out, const float* q, const float* k, const float* v,
                                           const float* log_alpha, const LinearAttentionShape& shape) {
  float* scratch = scratch_floats(linear_attention_scratch_, cuda::linear_attention_scratch(shape));
  cuda::linear_attention_forward(stream_, out, q, k, v, log_alpha, shape, scratch,
                                 precision_ == GemmPrecision::bf16);
}
void CudaBackend::linear_attention_backward(float* dq, float* dk, float* dv, float* dlog_alpha,
                                            const float* dout, const float* q, const float* k, const float* v,
                                            const float* log_alpha, const LinearAttentionShape& shape,
                                            bool accumulate) {
  float* scratch = scratch_floats(linear_attention_scratch_, cuda::linear_attention_scratch(shape));
  cuda::linear_attention_backward(stream_, dq, dk, dv, dlog_alpha, dout, q, k, v, log_alpha, shape, scratch,
                                  precision_ == GemmPrecision::bf16, accumulate);
}
void CudaBackend::linear_attention_state_update(float* state, const float* k, const float* v,
                                                const float* log_alpha, const LinearAttentionShape& shape) {
  cuda::linear_attention_state_update(stream_, state, k, v, log_alpha, shape);
}
void CudaBackend::linear_attention_state_read(float* out, const float* q, const float* state,
                                              const LinearAttentionShape& shape) {
  cuda::linear_attention_state_read(stream_, out, q, state, shape);
}

void CudaBackend::differential_forward(float* out, const float* a1, const float* a2, const float* lambda,
                                       float lambda_init, int64_t rows, int heads, int head_dim) {
  cuda::differential_forward(stream_, out, a1, a2, lambda, lambda_init, rows, heads, head_dim);
}
void CudaBackend::differential_backward(float* da1, float* da2, float* dlambda, const float* dout,
                                        const float* a2, const float* lambda, float lambda_init, int64_t rows,
                                        int heads, int head_dim) {
  const int64_t width = int64_t(heads) * head_dim;
  float* partials = scratch_floats(column_sums_, cuda::column_sum_scratch(rows, width) + width);
  cuda::differential_backward(stream_, da1, da2, dlambda, dout, a2, lambda, lambda_init, rows, heads,
                              head_dim, partials);
}
void CudaBackend::gate_mix_forward(float* out, const float* y0, const float* y1, const float* gate,
                                   int64_t rows, int64_t cols) {
  cuda::gate_mix_forward(stream_, out, y0, y1, gate, rows, cols);
}
void CudaBackend::gate_mix_backward(float* dy0, float* dy1, float* dgate, const float* dout, const float* y0,
                                    const float* y1, const float* gate, int64_t rows, int64_t cols) {
  float* partials = scratch_floats(column_sums_, cuda::column_sum_scratch(rows, cols));
  cuda::gate_mix_backward(stream_, dy0, dy1, dgate, dout, y0, y1, gate, rows, cols, partials);
}

void CudaBackend::moe_route(float* probs, int32_t* top_index, float* top_weight, ConstMatrix logits,
                            int top_k) {
  cuda::moe_route(stream_, probs, top_index, top_weight, logits, top_k);
}
void CudaBackend::moe_route_backward(Matrix dlogits, const float* dtop_weight, const float* probs,
                                     const int32_t* top_index, const float* top_weight,
                                     const float* expert_fractions, int top_k, float aux_weight) {
  cuda::moe_route_backward(stream_, dlogits, dtop_weight, probs, top_index, top_weight, expert_fractions,
                           top_k, aux_weight);
}
int32_t* CudaBackend::moe_dispatch_places(int64_t rows, int top_k, int experts) {
  const auto places =
      std::size_t(cuda::moe_dispatch_scratch(rows, top_k)) * std::size_t(std::max(experts, 1));
  return static_cast<int32_t*>(scratch(moe_dispatch_places_, sizeof(int32_t) * places));
}
void CudaBackend::moe_dispatch(int32_t* order, int32_t* position, int32_t* offsets, float* expert_fractions,
                               const int32_t* top_index, int64_t rows, int top_k, int experts) {
  cuda::moe_dispatch(stream_, order, position, offsets, expert_fractions,
                     moe_dispatch_places(rows, top_k, experts), top_index, rows, top_k, experts);
}
void CudaBackend::moe_route_and_gather(const MoeRouting& r, Matrix xs, GemmOperand x, GemmOperand router) {
  if (!cuda::moe_route_and_gather(stream_, r, moe_dispatch_places(r.rows, r.top_k, r.experts), xs, x.matrix(),
                                  router.matrix()))
    Backend::moe_route_and_gather(r, xs, x, router);
}
void CudaBackend::moe_combine_route_backward(const MoeRouting& r, Matrix dlogits, void* dlogits16, Matrix dys,
                                             float* dtop_weight, ConstMatrix dy, ConstMatrix ys,
                                             float aux_weight) {
  if (!cuda::moe_combine_route_backward(stream_, r, dlogits, dlogits16, dys, dy, ys, aux_weight))
    Backend::moe_combine_route_backward(r, dlogits, dlogits16, dys, dtop_weight, dy, ys, aux_weight);
}
void CudaBackend::moe_gather_router_backward(const MoeRouting& r, Matrix dx, ConstMatrix dxs,
                                             GemmOperand dlogits, GemmOperand router, bool accumulate,
                                             ConstMatrix dxs_up) {
  if (!cuda::moe_gather_router_backward(stream_, r, dx, dxs, dxs_up, dlogits.matrix(), router.matrix(),
                                        accumulate))
    Backend::moe_gather_router_backward(r, dx, dxs, dlogits, router, accumulate, dxs_up);
}
void CudaBackend::moe_gather(Matrix xs, ConstMatrix x, const int32_t* order, int top_k) {
  cuda::moe_gather(stream_, xs, x, order, top_k);
}
void CudaBackend::moe_gather_backward(Matrix dx, ConstMatrix dxs, const int32_t* position, int top_k) {
  cuda::moe_gather_backward(stream_, dx, dxs, position, top_k);
}
void CudaBackend::moe_combine(Matrix y, ConstMatrix ys, const float* top_weight, const int32_t* position,
                              int top_k) {
  cuda::moe_combine(stream_, y, ys, top_weight, position, top_k);
}
void CudaBackend::moe_combine_halves(Matrix y, Matrix ys, ConstMatrix ys_second, const float* top_weight,
                                     const int32_t* position, int top_k) {
  cuda::moe_combine_halves(stream_, y, ys, ys_second, top_weight, position, top_k);
}
void CudaBackend::moe_combine_backward(Matrix dys, float* dtop_weight, ConstMatrix dy, ConstMatrix ys,
                                       const float* top_weight, const int32_t* position, int top_k) {
  cuda::moe_combine_backward(stream_, dys, dtop_weight, dy, ys, top_weight, position, top_k);
}
void CudaBackend::moe_balance_loss(double* out, const float* expert_fractions, ConstMatrix probs,
                                   float aux_weight) {
  cuda::moe_balance_loss(stream_, out, scratch_floats(column_sums_, probs.cols), expert_fractions, probs,
                         aux_weight);
}

void CudaBackend::grouped_matmul(Matrix y, ConstMatrix x, ConstMatrix w, ExpertRows rows, bool accumulate) {
  cuda::grouped_matmul(stream_, y, x, w, rows, accumulate, precision_ == GemmPrecision::bf16);
}
bool CudaBackend::splits_grouped_products(int64_t capacity, int64_t cols, int experts) const {
  return cuda::grouped_split_fits_one_wave(capacity, cols, experts);
}
void CudaBackend::grouped_matmul_halves(Matrix y, Matrix y_second, ConstMatrix x, ConstMatrix w,
                                        ExpertRows rows) {
  cuda::grouped_matmul_halves(stream_, y, y_second, x, w, rows, precision_ == GemmPrecision::bf16);
}
void CudaBackend::grouped_matmul_backward_input(Matrix dx, ConstMatrix dy, ConstMatrix w, ExpertRows rows,
                                                bool accumulate) {
  cuda::grouped_matmul_backward_input(stream_, dx, dy, w, rows, accumulate,
                                      precision_ == GemmPrecision::bf16);
}
// The weight gradients' chunk count and partials (for `pairs` gradients of dw's shape).
std::pair<int, float*> CudaBackend::grouped_weight_partials(Matrix dw, int64_t capacity, int experts,
                                                            int pairs) {
  const int splits = cuda::grouped_weight_splits(capacity, dw.rows, dw.cols, experts);
  if (splits == 1) return {1, nullptr};
  const std::size_t bytes = sizeof(float) * std::size_t(pairs) * std::size_t(splits) * std::size_t(experts) *
                            std::size_t(dw.numel());
  return {splits, static_cast<float*>(scratch(grouped_partials_, bytes))};
}

void CudaBackend::grouped_matmul_backward_weight(Matrix dw, ConstMatrix dy, ConstMatrix x, ExpertRows rows) {
  const auto [splits, partials] = grouped_weight_partials(dw, dy.rows, rows.experts, 1);
  cuda::grouped_matmul_backward_weight(stream_, dw, dy, x, rows, precision_ == GemmPrecision::bf16, partials,
                                       splits);
}

void CudaBackend::grouped_swiglu_forward(Matrix h, Matrix gate, Matrix up, ConstMatrix x, ConstMatrix w_gate,
                                         ConstMatrix w_up, ExpertRows rows) {
  cuda::grouped_swiglu_forward(stream_, h, gate, up, x, w_gate, w_up, rows,
                               precision_ == GemmPrecision::bf16);
}
void CudaBackend::grouped_swiglu_backward_input(Matrix dgate, Matrix dup, Matrix, ConstMatrix dy,
                                                ConstMatrix w_down, ConstMatrix gate, ConstMatrix up,
                                                ExpertRows rows) {
  cuda::grouped_swiglu_backward_input(stream_, dgate, dup, dy, w_down, gate, up, rows,
                                      precision_ == GemmPrecision::bf16);
}
void CudaBackend::grouped_matmul_backward_input_pair(Matrix dx, ConstMatrix dy0, ConstMatrix w0,
                                                     ConstMatrix dy1, ConstMatrix w1, ExpertRows rows,
                                                     bool accumulate) {
  cuda::grouped_matmul_backward_input_pair(stream_, dx, dy0, w0, dy1, w1, rows, accumulate,
                                           precision_ == GemmPrecision::bf16);
}
void CudaBackend::grouped_matmul_backward_weight_pair(Matrix dw0, ConstMatrix dy0, Matrix dw1,
                                                      ConstMatrix dy1, ConstMatrix x, ExpertRows rows) {
  const auto [splits, partials] = grouped_weight_partials(dw0, dy0.rows, rows.experts, 2);
  cuda::grouped_matmul_backward_weight_pair(stream_, dw0, dy0, dw1, dy1, x, rows,
                                            precision_ == GemmPrecision::bf16, partials, splits);
}
void CudaBackend::grouped_swiglu_backward(Matrix dw_down, Matrix dgate, Matrix dup, Matrix, ConstMatrix dy,
                                          ConstMatrix h, ConstMatrix w_down, ConstMatrix gate, ConstMatrix up,
                                          ExpertRows rows) {
  const auto [splits, partials] = grouped_weight_partials(dw_down, dy.rows, rows.experts, 1);
  cuda::grouped_swiglu_backward(stream_, dw_down, dgate, dup, dy, h, w_down, gate, up, rows,
                                precision_ == GemmPrecision::bf16, partials, splits);
}
void CudaBackend::grouped_gate_up_backward(Matrix dw_gate, Matrix dw_up, Matrix dx, ConstMatrix dgate,
                                           ConstMatrix dup, ConstMatrix x, ConstMatrix w_gate,
                                           ConstMatrix w_up, ExpertRows rows, bool accumulate, Matrix dx_up) {
  const auto [splits, partials] = grouped_weight_partials(dw_gate, dgate.rows, rows.experts, 2);
  cuda::grouped_gate_up_backward(stream_, dw_gate, dw_up, dx, dx_up, dgate, dup, x, w_gate, w_up, rows,
                                 accumulate, precision_ == GemmPrecision::bf16, partials, splits);
}

}  // namespace livs::evaluator
