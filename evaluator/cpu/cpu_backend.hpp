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

  void* allocate(std::size_t bytes) override;
  void free(void* pointer) override;
  void copy_to_device(void* device_dst, const void* host_src, std::size_t bytes) override;
  void copy_to_host(void* host_dst, const void* device_src, std::size_t bytes) override;
  void copy(float* dst, const float* src, int64_t count) override;
  void fill(float* dst, int64_t count, float value) override;
  void synchronize() override {}

  void embedding_forward(Matrix out, ConstMatrix table, const int32_t* tokens) override;
  void embedding_backward(Matrix dtable, ConstMatrix dout, const int32_t* tokens) override;

  void rmsnorm_forward(Matrix out, float* rstd, ConstMatrix x, const float* gain, float eps) override;
  void rmsnorm_backward(Matrix dx, float* dgain, ConstMatrix dout, ConstMatrix x, const float* gain,
                        const float* rstd) override;

  void matmul(Matrix y, ConstMatrix x, ConstMatrix w, bool accumulate) override;
  void matmul_backward_input(Matrix dx, ConstMatrix dy, ConstMatrix w) override;
  void matmul_backward_weight(Matrix dw, ConstMatrix dy, ConstMatrix x) override;

  void rope_forward(float* out, const float* in, const float* cos, const float* sin,
                    const RopeShape& shape) override;
  void rope_backward(float* din, const float* dout, const float* cos, const float* sin,
                     const RopeShape& shape) override;

  void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                         const AttentionShape& shape) override;
  void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                          const float* v, const float* out, const float* lse,
                          const AttentionShape& shape) override;
  void kv_cache_write(float* k_cache, float* v_cache, const float* k, const float* v,
                      const AttentionShape& shape, int64_t capacity, int64_t position) override;
  void attention_decode(float* out, const float* q, const float* k_cache, const float* v_cache,
                        const AttentionShape& shape, int64_t capacity, int64_t position) override;

  void swiglu_forward(float* h, const float* gate, const float* up, int64_t count) override;
  void swiglu_backward(float* dgate, float* dup, const float* dh, const float* gate, const float* up,
                       int64_t count) override;

  void add(float* out, const float* a, const float* b, int64_t count) override;

  void cross_entropy_forward(float* losses, float* lse, ConstMatrix logits, const int32_t* targets) override;
  void cross_entropy_backward(Matrix dlogits, ConstMatrix logits, const float* lse, const int32_t* targets,
                              float scale) override;

  double sum_of_squares(const float* x, int64_t count) override;
  void adamw_update(float* params, const float* grads, float* m, float* v, int64_t count,
                    const AdamWStep& step) override;
};

}  // namespace livs::evaluator
