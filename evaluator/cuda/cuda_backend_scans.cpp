// CudaBackend's convolution, scan and pointwise methods (rec, ssm, gconv):
// each forwards to its launcher on the stream, with scratch sized for the call.
#include "evaluator/cuda/cuda_backend.hpp"
#include "evaluator/cuda/kernels.hpp"

namespace livs::evaluator {

void CudaBackend::causal_conv_forward(float* y, const float* x, const float* w, const float* bias,
                                      float* state, const ConvShape& shape) {
  cuda::causal_conv_forward(stream_, y, x, w, bias, state, shape);
}
void CudaBackend::causal_conv_backward(float* dx, float* dw, float* dbias, const float* dy, const float* x,
                                       const float* w, const ConvShape& shape, bool accumulate_dx) {
  const int64_t rows = int64_t(shape.batch) * shape.seq;
  float* partials =
      scratch_floats(column_sums_, cuda::column_sum_scratch(rows, int64_t(shape.channels) * shape.kernel));
  cuda::causal_conv_backward(stream_, dx, dw, dbias, dy, x, w, shape, partials, accumulate_dx);
}
void CudaBackend::gated_conv_forward(float* out, const float* bcx, const float* w, float* state,
                                     const ConvShape& shape) {
  cuda::gated_conv_forward(stream_, out, bcx, w, state, shape);
}
void CudaBackend::gated_conv_backward(float* dbcx, float* dw, const float* dout, const float* bcx,
                                      const float* w, const ConvShape& shape) {
  float* partials = scratch_floats(column_sums_, cuda::gated_conv_scratch(shape));
  cuda::gated_conv_backward(stream_, dbcx, dw, dout, bcx, w, shape, partials);
}

void CudaBackend::rglru_forward(float* h, const float* u, const float* gate_a, const float* gate_i,
                                const float* lambda, float c, float* state, const ScanShape& shape) {
  float* scratch = scratch_floats(scan_scratch_, cuda::rglru_scratch(shape));
  cuda::rglru_forward(stream_, h, u, gate_a, gate_i, lambda, c, state, shape, scratch);
}
void CudaBackend::rglru_backward(float* du, float* dgate_a, float* dgate_i, float* dlambda, const float* dh,
                                 const float* h, const float* u, const float* gate_a, const float* gate_i,
                                 const float* lambda, float c, const ScanShape& shape) {
  float* scratch = scratch_floats(scan_scratch_, cuda::rglru_scratch(shape));
  cuda::rglru_backward(stream_, du, dgate_a, dgate_i, dlambda, dh, h, u, gate_a, gate_i, lambda, c, shape,
                       scratch);
}

void CudaBackend::selective_scan_forward(float* y, float* checkpoints, const float* u, const float* delta,
                                         const float* a_log, const float* B, const float* C, const float* D,
                                         float* state, const ScanShape& shape) {
  float* scratch = scratch_floats(scan_scratch_, cuda::selective_scan_forward_scratch(shape));
  cuda::selective_scan_forward(stream_, y, checkpoints, u, delta, a_log, B, C, D, state, shape, scratch);
}
// `partials` is not needed here: the per-chunk partials live in the scan scratch.
void CudaBackend::selective_scan_backward(float* du, float* ddelta, float* da_log, float* dB, float* dC,
                                          float* dD, float*, const float* dy, const float* checkpoints,
                                          const float* u, const float* delta, const float* a_log,
                                          const float* B, const float* C, const float* D,
                                          const ScanShape& shape) {
  float* scratch = scratch_floats(scan_scratch_, cuda::selective_scan_backward_scratch(shape));
  cuda::selective_scan_backward(stream_, du, ddelta, da_log, dB, dC, dD, dy, checkpoints, u, delta, a_log, B,
                                C, D, shape, scratch);
}

void CudaBackend::ssd_forward(float* y, float* checkpoints, const float* xbc, const float* dt,
                              const float* a_log, const float* D, float* state, const SsdShape& shape) {
  float* scratch = scratch_floats(scan_scratch_, cuda::ssd_forward_scratch(shape));
  cuda::ssd_forward(stream_, y, checkpoints, xbc, dt, a_log, D, state, shape, scratch,
                    precision_ == GemmPrecision::bf16);
}
// As the selective scan: the partials live in the scan scratch.
void CudaBackend::ssd_backward(float* dxbc, float* ddt, float* da_log, float* dD, float*, const float* dy,
                               const float* checkpoints, const float* xbc, const float* dt,
                               const float* a_log, const float* D, const SsdShape& shape) {
  float* scratch = scratch_floats(scan_scratch_, cuda::ssd_backward_scratch(shape));
  cuda::ssd_backward(stream_, dxbc, ddt, da_log, dD, dy, checkpoints, xbc, dt, a_log, D, shape, scratch,
                     precision_ == GemmPrecision::bf16);
}

void CudaBackend::activation_forward(float* out, const float* in, int64_t count, ActivationKind kind) {
  cuda::activation_forward(stream_, out, in, count, kind);
}
void CudaBackend::activation_backward(float* din, const float* dout, const float* in, int64_t count,
                                      ActivationKind kind, bool accumulate) {
  cuda::activation_backward(stream_, din, dout, in, count, kind, accumulate);
}
void CudaBackend::multiply_forward(float* out, const float* a, const float* b, int64_t count) {
  cuda::multiply_forward(stream_, out, a, b, count);
}
void CudaBackend::multiply_backward(float* da, float* db, const float* dout, const float* a, const float* b,
                                    int64_t count, bool accumulate) {
  cuda::multiply_backward(stream_, da, db, dout, a, b, count, accumulate);
}
void CudaBackend::add_bias(Matrix y, const float* bias) { cuda::add_bias(stream_, y, bias); }
void CudaBackend::bias_backward(float* dbias, ConstMatrix dy) {
  float* partials = scratch_floats(column_sums_, cuda::column_sum_scratch(dy.rows, dy.cols));
  cuda::bias_backward(stream_, dbias, dy, partials);
}

void CudaBackend::halves_difference_forward(Matrix out, ConstMatrix in, const float* lambda,
                                            float lambda_init) {
  cuda::halves_difference_forward(stream_, out, in, lambda, lambda_init);
}
void CudaBackend::halves_difference_backward(Matrix din, float* dlambda, ConstMatrix dout, ConstMatrix in,
                                             const float* lambda, float lambda_init) {
  float* partials = scratch_floats(column_sums_, cuda::column_sum_scratch(dout.rows, dout.cols));
  cuda::halves_difference_backward(stream_, din, dlambda, dout, in, lambda, lambda_init, partials);
}

}  // namespace livs::evaluator
