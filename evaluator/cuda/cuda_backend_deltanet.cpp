// CudaBackend's deltanet methods: each forwards to its launcher in deltanet.cu on the stream.
#include "evaluator/cuda/cuda_backend.hpp"
#include "evaluator/cuda/kernels.hpp"

namespace livs::evaluator {

void CudaBackend::delta_rule_forward(float* o, float* checkpoints, const float* q, const float* k,
                                     const float* v, const float* log_alpha, const float* beta, float* state,
                                     const DeltaRuleShape& shape) {
  cuda::delta_rule_forward(stream_, o, checkpoints, q, k, v, log_alpha, beta, state, shape);
}
void CudaBackend::delta_rule_backward(float* dq, float* dk, float* dv, float* dlog_alpha, float* dbeta,
                                      float* scratch, const float* dout, const float* checkpoints,
                                      const float* q, const float* k, const float* v, const float* log_alpha,
                                      const float* beta, const DeltaRuleShape& shape) {
  cuda::delta_rule_backward(stream_, dq, dk, dv, dlog_alpha, dbeta, scratch, dout, checkpoints, q, k, v,
                            log_alpha, beta, shape);
}
void CudaBackend::gdn_decay_forward(float* log_alpha, const float* z, const float* a_log,
                                    const float* dt_bias, int64_t rows, int heads) {
  cuda::gdn_decay_forward(stream_, log_alpha, z, a_log, dt_bias, rows, heads);
}
void CudaBackend::gdn_decay_backward(float* dz, float* da_log, float* ddt_bias, const float* dlog_alpha,
                                     const float* z, const float* a_log, const float* dt_bias, int64_t rows,
                                     int heads) {
  cuda::gdn_decay_backward(stream_, dz, da_log, ddt_bias, dlog_alpha, z, a_log, dt_bias, rows, heads);
}

}  // namespace livs::evaluator
