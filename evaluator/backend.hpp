#pragma once
// The kernel interface (llm.c / ggml style). Operators are written once
// against it; every backend (cpu/ now, cuda/ later) implements each kernel
// once. Kernels take plain views: a pointer into backend memory plus a shape,
// fp32, row-major, contiguous.
//
// Conventions every backend keeps:
// - Forward kernels overwrite their outputs.
// - Backward kernels ACCUMULATE into every gradient they produce (dx += ...,
//   dW += ...). Residual streams, tied embeddings and shared weights then
//   need no special case; the caller zeroes gradients once per step.
// - Results are deterministic: each output element and each partial sum is
//   computed in a fixed order and partials are combined in a fixed order, so
//   the bits do not depend on the number of threads.
// - Nothing allocates inside a kernel: the training step allocates nothing.
#include <cstddef>
#include <cstdint>

namespace livs::evaluator {

// A row-major matrix view [rows, cols] in backend memory.
template <class T>
struct MatrixView {
  T* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t numel() const { return rows * cols; }
  operator MatrixView<const T>() const { return {data, rows, cols}; }
};
using Matrix = MatrixView<float>;
using ConstMatrix = MatrixView<const float>;

// Attention over activations laid out [batch, seq, heads, head_dim] for q and
// the output, [batch, seq, kv_heads, head_dim] for k and v (the layout a
// projection x W^T produces). Query head h reads kv head h / (heads / kv_heads).
struct AttentionShape {
  int batch = 1;
  int seq = 1;
  int heads = 1;
  int kv_heads = 1;  // divides heads
  int head_dim = 1;
  int window = 0;      // 0: every earlier key; else the last `window` keys, the query's own included
  float scale = 1.0f;  // multiplies q.k, usually 1/sqrt(head_dim)
};

// Rotary position embedding on [batch, seq, heads, head_dim] rows; the token
// at sequence index t has position position_offset + t. Pairs are
// (i, i + head_dim/2) (the "rotate half" convention of GPT-NeoX and HF Llama).
// cos/sin are tables [max_position, head_dim/2].
struct RopeShape {
  int batch = 1;
  int seq = 1;
  int heads = 1;
  int head_dim = 2;  // even
  int64_t position_offset = 0;
};

// One AdamW step on a contiguous group of parameters. Gradients are first
// multiplied by grad_scale (global-norm clipping).
struct AdamWStep {
  float learning_rate = 0.0f;
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;  // decoupled: p -= lr * weight_decay * p
  float grad_scale = 1.0f;
  int step = 1;  // 1-based, for bias correction
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;

  // Memory.
  virtual void* allocate(std::size_t bytes) = 0;  // zero-filled; throws std::bad_alloc
  virtual void free(void* pointer) = 0;
  virtual void copy_to_device(void* device_dst, const void* host_src, std::size_t bytes) = 0;
  virtual void copy_to_host(void* host_dst, const void* device_src, std::size_t bytes) = 0;
  virtual void copy(float* dst, const float* src, int64_t count) = 0;  // within the device
  virtual void fill(float* dst, int64_t count, float value) = 0;
  virtual void synchronize() = 0;  // wait for queued kernels (no-op on the CPU)

  // Embedding: out[n] = table[tokens[n]]; backward: dtable[tokens[n]] += dout[n].
  virtual void embedding_forward(Matrix out, ConstMatrix table, const int32_t* tokens) = 0;
  virtual void embedding_backward(Matrix dtable, ConstMatrix dout, const int32_t* tokens) = 0;

  // RMSNorm over rows: out = x * rstd * gain, rstd = 1/sqrt(mean(x^2) + eps), saved per row.
  virtual void rmsnorm_forward(Matrix out, float* rstd, ConstMatrix x, const float* gain, float eps) = 0;
  virtual void rmsnorm_backward(Matrix dx, float* dgain, ConstMatrix dout, ConstMatrix x, const float* gain,
                                const float* rstd) = 0;

  // Linear layer, weights [out, in]: y = x W^T (y += x W^T when accumulate).
  virtual void matmul(Matrix y, ConstMatrix x, ConstMatrix w, bool accumulate = false) = 0;
  virtual void matmul_backward_input(Matrix dx, ConstMatrix dy, ConstMatrix w) = 0;   // dx += dy W
  virtual void matmul_backward_weight(Matrix dw, ConstMatrix dy, ConstMatrix x) = 0;  // dW += dy^T x

  // Rotary embedding; out may alias in. Backward applies the inverse rotation
  // and accumulates: din += R^T dout.
  virtual void rope_forward(float* out, const float* in, const float* cos, const float* sin,
                            const RopeShape& shape) = 0;
  virtual void rope_backward(float* din, const float* dout, const float* cos, const float* sin,
                             const RopeShape& shape) = 0;

  // Causal softmax attention. Saves the log-sum-exp of every score row
  // (lse: [batch, heads, seq]) so backward recomputes probabilities instead of
  // storing a seq x seq matrix.
  virtual void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                                 const AttentionShape& shape) = 0;
  virtual void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q,
                                  const float* k, const float* v, const float* out, const float* lse,
                                  const AttentionShape& shape) = 0;
  // One decode step for `batch` sequences: q [batch, heads, head_dim] at
  // `position` attends to the cached keys of positions
  // max(0, position - window + 1) .. position. Caches are
  // [batch, kv_heads, capacity, head_dim], position p in slot p % capacity
  // (a ring buffer when the window is smaller than the context).
  virtual void kv_cache_write(float* k_cache, float* v_cache, const float* k, const float* v,
                              const AttentionShape& shape, int64_t capacity, int64_t position) = 0;
  virtual void attention_decode(float* out, const float* q, const float* k_cache, const float* v_cache,
                                const AttentionShape& shape, int64_t capacity, int64_t position) = 0;

  // SwiGLU: h = silu(gate) * up, elementwise.
  virtual void swiglu_forward(float* h, const float* gate, const float* up, int64_t count) = 0;
  virtual void swiglu_backward(float* dgate, float* dup, const float* dh, const float* gate, const float* up,
                               int64_t count) = 0;

  // out = a + b (out may alias a or b).
  virtual void add(float* out, const float* a, const float* b, int64_t count) = 0;

  // Softmax cross-entropy over rows of logits [N, V]: losses[n] = lse[n] - logits[n, targets[n]].
  // Backward WRITES dlogits = scale * (softmax(logits) - onehot(target)); dlogits may alias logits.
  virtual void cross_entropy_forward(float* losses, float* lse, ConstMatrix logits,
                                     const int32_t* targets) = 0;
  virtual void cross_entropy_backward(Matrix dlogits, ConstMatrix logits, const float* lse,
                                      const int32_t* targets, float scale) = 0;

  // Optimiser.
  virtual double sum_of_squares(const float* x, int64_t count) = 0;  // in double, deterministic order
  virtual void adamw_update(float* params, const float* grads, float* m, float* v, int64_t count,
                            const AdamWStep& step) = 0;
};

}  // namespace livs::evaluator
