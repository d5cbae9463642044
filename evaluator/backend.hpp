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
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

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

// A GEMM operand: fp32 values (row-major) and, optionally, a bf16 "shadow":
// the same values rounded by Backend::round_to_bf16, laid out the same way.
// A backend that multiplies in bf16 reads the shadow instead of rounding the
// operand itself before every product; the others read the fp32 values.
// Operators keep shadows of activations that feed several products (x feeds
// q, k and v, and every input feeds a forward and a weight-gradient product)
// when the backend asks for them (Backend::wants_gemm_shadows()).
//
// A producer that writes only the shadow (SwiGLU's bf16 variants) passes
// values == nullptr: such operands exist only on backends that want shadows.
struct GemmOperand {
  GemmOperand(const float* values, int64_t rows_, int64_t cols_, const void* shadow = nullptr)
      : data(values), rows(rows_), cols(cols_), bf16(shadow) {}
  GemmOperand(ConstMatrix m, const void* shadow = nullptr) : GemmOperand(m.data, m.rows, m.cols, shadow) {}
  GemmOperand(Matrix m) : GemmOperand(m.data, m.rows, m.cols) {}
  ConstMatrix matrix() const { return {data, rows, cols}; }
  const float* data;
  int64_t rows, cols;
  const void* bf16;  // nullptr: no shadow
};

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
  // Elements between the token rows of attention_backward's dv16: 0 for
  // kv_heads * head_dim; wider where dv16 is v's part of one [tokens,
  // q + k + v width] gradient.
  int64_t dv16_ld = 0;
  constexpr int64_t dv16_stride() const { return dv16_ld > 0 ? dv16_ld : int64_t(kv_heads) * head_dim; }
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
  // Elements between a token's row of the input and of the output: 0 for
  // heads * head_dim (contiguous); wider where q and k are the parts of one
  // projection's [tokens, q width + k width] output or gradient.
  int64_t src_ld = 0, dst_ld = 0;
  constexpr int64_t width() const { return int64_t(heads) * head_dim; }
  constexpr int64_t src_stride() const { return src_ld > 0 ? src_ld : width(); }
  constexpr int64_t dst_stride() const { return dst_ld > 0 ? dst_ld : width(); }
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

// Per-step scalars of a training step, in device memory. The host writes
// `in` with one copy before the step; the step's kernels write `out`; the
// host reads `out` with one copy after it.
struct StepScalarInputs {
  float learning_rate = 0.0f;
  float bias_correction1 = 1.0f;  // 1 - beta1^step, as adamw_update computes it
  float bias_correction2 = 1.0f;  // 1 - beta2^step
  int32_t step = 1;
};
struct StepScalarOutputs {
  double loss = 0.0;       // mean cross-entropy of the batch (Model::forward_on_device)
  double grad_norm = 0.0;  // global gradient norm before clipping (grad_clip_scale)
  float grad_scale = 1.0f;
  float unused = 0.0f;
};
struct DeviceStepScalars {
  StepScalarInputs in;
  StepScalarOutputs out;
};
// The bias corrections in double, then rounded: the arithmetic of adamw_update.
inline StepScalarInputs step_scalar_inputs(float learning_rate, float beta1, float beta2, int step) {
  StepScalarInputs in;
  in.learning_rate = learning_rate;
  in.bias_correction1 = 1.0f - float(std::pow(double(beta1), step));
  in.bias_correction2 = 1.0f - float(std::pow(double(beta2), step));
  in.step = step;
  return in;
}

// A step (a fixed sequence of kernel calls) run as one replayable unit.
class StepRunner {
 public:
  virtual ~StepRunner() = default;
  virtual void run() = 0;
  virtual bool replays_graph() const { return false; }  // true once a CUDA graph replays the step
};
class EagerStepRunner final : public StepRunner {
 public:
  explicit EagerStepRunner(std::function<void()> step) : step_(std::move(step)) {}
  void run() override { step_(); }

 private:
  std::function<void()> step_;
};

// Host memory that the training loop fills for a step and reads a step's
// scalars from while the device is still working (CUDA: page-locked memory,
// stream-ordered copies, an event; the default: plain memory and the
// backend's own synchronous copies). The loop feeds step k + 1 before it
// waits for step k, so the device never idles between steps for the host.
class HostStaging {
 public:
  virtual ~HostStaging() = default;  // waits for the copies it queued
  virtual std::byte* data() = 0;     // the buffer's host memory
  // Queue a copy of `bytes` at data() + offset to device memory, or from
  // device memory into data() + offset, after the work queued so far.
  virtual void to_device(void* device_dst, std::size_t offset, std::size_t bytes) = 0;
  virtual void from_device(std::size_t offset, const void* device_src, std::size_t bytes) = 0;
  // Marks the end of the work queued so far; wait() returns once it is done:
  // from then on the buffer may be rewritten, and what from_device brought
  // may be read.
  virtual void mark() {}
  virtual void wait() {}
};

struct MemoryInfo {
  int64_t free_bytes = 0;
  int64_t total_bytes = 0;
};

// The row groups of a mixture of experts' dispatched activations: expert e
// owns rows [offsets[e], offsets[e + 1]); offsets holds experts + 1 int32 in
// backend memory (moe_dispatch writes them).
struct ExpertRows {
  const int32_t* offsets = nullptr;
  int experts = 0;
};

// One MoE layer's routing state in backend memory, for the composite calls
// (moe_route_and_gather and its backwards): the buffers of moe_route and
// moe_dispatch, over `rows` tokens and `experts` experts with top_k each.
struct MoeRouting {
  float* logits = nullptr;  // [rows, experts]; scratch a backend may leave unwritten
  float* probs = nullptr;   // [rows, experts]
  int32_t* top_index = nullptr;
  float* top_weight = nullptr;        // [rows, top_k]
  float* expert_fractions = nullptr;  // [experts]: f_e (moe_dispatch)
  int32_t* order = nullptr;
  int32_t* position = nullptr;  // [rows * top_k]
  int32_t* offsets = nullptr;   // [experts + 1]
  int64_t rows = 0;
  int experts = 0, top_k = 0;
};

// Linear attention over q, k, v laid out [batch, seq, heads, head_dim]
// (d_k = d_v = head_dim), q and k already feature-mapped.
struct LinearAttentionShape {
  int batch = 1;
  int seq = 1;
  int heads = 1;
  int head_dim = 1;
};

// Elementwise positive feature maps of linear attention.
enum class FeatureMapKind { elu_plus_one, relu, identity };

// Convolutions and scans (rec, ssm, gconv): activations [batch, seq, channels].
struct ConvShape {
  int batch = 1;
  int seq = 1;
  int channels = 1;
  int kernel = 1;
};
// A diagonal scan over [batch, seq, channels] with `state` values per channel
// (RG-LRU: 1; selective scan: d_state).
struct ScanShape {
  int batch = 1;
  int seq = 1;
  int channels = 1;
  int state = 1;
};
// The selective scan keeps its state only at chunk boundaries for backward
// (Mamba's kernel recomputes the states inside a chunk rather than storing
// them); the time-parallel scans split time into chunks of the same length.
constexpr int kScanChunk = 64;  // a power of two
inline int64_t scan_chunks(int seq) { return (int64_t(seq) + kScanChunk - 1) / kScanChunk; }
// Floats of selective_scan_forward's `checkpoints`: [batch, chunks, channels, state].
inline int64_t selective_scan_checkpoint_floats(const ScanShape& s) {
  return int64_t(s.batch) * scan_chunks(s.seq) * s.channels * s.state;
}
// Mamba-2's state-space duality (SSD) scan (ssm form mamba2): `heads` heads of
// head_dim channels, each with a scalar decay, reading one B and one C of
// `state` values per token shared by all heads (ngroups 1). Its input is the
// short convolution's output for x, B and C side by side: rows of
// ssd_xbc_width = heads * head_dim + 2 * state floats (x, then B, then C).
struct SsdShape {
  int batch = 1;
  int seq = 1;
  int heads = 1;
  int head_dim = 1;
  int state = 1;
  int64_t inner() const { return int64_t(heads) * head_dim; }
  int64_t xbc_width() const { return inner() + 2 * int64_t(state); }
};
// Floats of ssd_forward's `checkpoints`: [batch, chunks, heads, head_dim,
// state], the state entering each chunk of kScanChunk steps.
inline int64_t ssd_checkpoint_floats(const SsdShape& s) {
  return int64_t(s.batch) * scan_chunks(s.seq) * s.inner() * s.state;
}
// Floats of ssd_backward's `partials`: per sequence and head dA and dD.
inline int64_t ssd_partial_floats(const SsdShape& s) { return int64_t(s.batch) * 2 * s.heads; }
enum class ActivationKind { silu, gelu_tanh, softplus, sigmoid };

// The (gated) delta rule of deltanet over q, k, v laid out [batch, seq,
// heads, head_dim] (d_k = d_v = head_dim; q and k already L2-normalised and
// scaled by the caller) and log_alpha, beta [batch, seq, heads]. Per sequence
// and head the state S is [d_k, d_v] and, in order over t,
//   S' = alpha_t S_{t-1},  u_t = S'^T k_t,  w_t = beta_t (v_t - u_t),
//   S_t = S' + k_t w_t^T,  o_t = S_t^T q_t,
// which is S_t^T = alpha_t S_{t-1}^T (I - beta_t k_t k_t^T) + beta_t v_t k_t^T
// (Yang et al. 2024, "Gated Delta Networks"). log_alpha null: alpha = 1 (DeltaNet).
struct DeltaRuleShape {
  int batch = 1;
  int seq = 1;
  int heads = 1;
  int head_dim = 1;
};
// Floats of delta_rule_forward's `checkpoints`: the state entering each chunk
// of kScanChunk steps, [batch, heads, chunks, d_k, d_v] (as the selective
// scan), then three [batch, heads, chunks, kScanChunk, d_k] regions that the
// CUDA backend's chunked form keeps for its backward (U, Wk and W of
// cuda/deltanet_chunked.cuh; the CPU backend leaves them unused).
inline int64_t delta_rule_checkpoint_floats(const DeltaRuleShape& s) {
  return int64_t(s.batch) * s.heads * scan_chunks(s.seq) * s.head_dim * (s.head_dim + 3 * kScanChunk);
}
// Floats of delta_rule_backward's `scratch`: one chunk of states per sequence
// and head, [batch, heads, kScanChunk, d_k, d_v], recomputed from a checkpoint
// (the recurrent form), or the chunked form's dS_end per chunk and dW
// ([batch, heads, chunks] x (d_k d_v + kScanChunk d_v)), whichever is larger.
inline int64_t delta_rule_scratch_floats(const DeltaRuleShape& s) {
  const int64_t n = s.head_dim;
  return int64_t(s.batch) * s.heads *
         std::max(kScanChunk * n * n, scan_chunks(s.seq) * (n * n + kScanChunk * n));
}

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;

  // Faults. A test's injected device fault (common/fault_injection.hpp):
  // CUDA launches a kernel that traps, a sticky error that breaks the
  // context; the CPU, which has no context to break, plays one (it throws,
  // and its device counts as lost for the rest of the process), so that the
  // search's restart after a lost device is tested without a GPU.
  virtual void inject_device_fault() { throw std::runtime_error("injected device fault"); }
  // After an evaluation failed: true when the device can no longer be used
  // by any backend in this process (a sticky CUDA error);
  // evaluator/backend_pool.cpp then marks the device lost.
  virtual bool device_context_lost() { return false; }

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
  // out16 / dx16 (backends that want GEMM shadows, else nullptr): also write
  // the bf16 shadow of out, or of dx; with out16, out.data may be nullptr
  // (only the shadow is written, for inputs that only GEMMs read). The
  // backward adds into dx when accumulate_dx (the residual stream), else
  // writes it; dgain is added into.
  virtual void rmsnorm_forward(Matrix out, float* rstd, ConstMatrix x, const float* gain, float eps,
                               void* out16 = nullptr) = 0;
  virtual void rmsnorm_backward(Matrix dx, float* dgain, ConstMatrix dout, ConstMatrix x, const float* gain,
                                const float* rstd, void* dx16, bool accumulate_dx) = 0;
  // The residual stream's next value and its norm: sum = a + b, then
  // rmsnorm_forward(out, rstd, sum, ...). The default composes add and
  // rmsnorm_forward; the CUDA backend does both in one pass.
  virtual void add_rmsnorm_forward(float* sum, Matrix out, float* rstd, const float* a, const float* b,
                                   const float* gain, float eps, void* out16 = nullptr) {
    add(sum, a, b, out.rows * out.cols);
    rmsnorm_forward(out, rstd, {sum, out.rows, out.cols}, gain, eps, out16);
  }

  // Linear layer, weights [out, in]: y = x W^T (y += x W^T when accumulate).
  virtual void matmul(Matrix y, GemmOperand x, GemmOperand w, bool accumulate = false) = 0;
  // dx += dy W (dx = dy W when !accumulate).
  virtual void matmul_backward_input(Matrix dx, GemmOperand dy, GemmOperand w, bool accumulate = true) = 0;
  virtual void matmul_backward_weight(Matrix dw, GemmOperand dy, GemmOperand x) = 0;  // dW += dy^T x
  // Both: dW += dy^T x, then dx += dy W (dx = dy W when !accumulate_dx). A
  // backend that rounds GEMM inputs to bf16 rounds dy once for the two
  // products, not once for each.
  virtual void linear_backward(Matrix dw, Matrix dx, GemmOperand dy, GemmOperand x, GemmOperand w,
                               bool accumulate_dx = true) {
    matmul_backward_weight(dw, dy, x);
    matmul_backward_input(dx, dy, w, accumulate_dx);
  }
  // The products with a bf16 output and nothing in fp32 (backends that want
  // shadows): y16 = bf16(x W^T) and dx16 = bf16(dy W), written. For
  // activations whose only readers take bf16 (SwiGLU's gate, up and dh).
  virtual void matmul_bf16_output(void* y16, GemmOperand x, GemmOperand w) {
    unsupported("matmul_bf16_output", y16, x, w);
  }
  virtual void matmul_backward_input_bf16_output(void* dx16, GemmOperand dy, GemmOperand w) {
    unsupported("matmul_backward_input_bf16_output", dx16, dy, w);
  }
  // Whether GEMM operands with bf16 shadows save this backend work (the
  // CUDA backend in bf16 mode); Arena::reserve_gemm_shadow plans none otherwise.
  virtual bool wants_gemm_shadows() const { return false; }
  // dst: count bf16 values, src rounded to nearest even (a GemmOperand shadow).
  virtual void round_to_bf16(void* dst, const float* src, int64_t count) {
    unsupported("round_to_bf16", dst, src, count);
  }

  // Rotary embedding; out may alias in. Backward applies the inverse rotation
  // and WRITES din = R^T dout (din may alias dout).
  virtual void rope_forward(float* out, const float* in, const float* cos, const float* sin,
                            const RopeShape& shape) = 0;
  virtual void rope_backward(float* din, const float* dout, const float* cos, const float* sin,
                             const RopeShape& shape) = 0;
  // The backward whose din feeds GEMMs only, written straight to a bf16
  // GemmOperand shadow (backends that want shadows; no fp32 din exists):
  // din16 = bf16(R^T dout).
  virtual void rope_backward_bf16(void* din16, const float* dout, const float* cos, const float* sin,
                                  const RopeShape& shape) {
    unsupported("rope_backward_bf16", din16, dout, cos, sin, shape);
  }

  // Causal softmax attention. Saves the log-sum-exp of every score row
  // (lse: [batch, heads, seq]) so backward recomputes probabilities instead of
  // storing a seq x seq matrix. The backward adds into dq, dk, dv when
  // accumulate, else writes them; dv16 (backends that want GEMM shadows, else
  // nullptr; only when writing): also write the bf16 shadow of dv.
  // out16 (backends that want GEMM shadows, else nullptr): also write the
  // bf16 shadow of out.
  virtual void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                                 const AttentionShape& shape, void* out16 = nullptr) = 0;
  virtual void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q,
                                  const float* k, const float* v, const float* out, const float* lse,
                                  const AttentionShape& shape, bool accumulate, void* dv16 = nullptr) = 0;
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
  // Backward: dgate, dup (+)= the gradients (added when accumulate, else written).
  virtual void swiglu_backward(float* dgate, float* dup, const float* dh, const float* gate, const float* up,
                               int64_t count, bool accumulate) = 0;

  // out = a + b (out may alias a or b).
  // SwiGLU between GEMMs in bf16 (backends that want shadows): gate16, up16
  // and dh16 come from GEMMs with bf16 outputs (matmul_bf16_output,
  // matmul_backward_input_bf16_output), and h16 = bf16(silu(gate) * up),
  // dgate16 and dup16 (OVERWRITTEN) are GEMM shadows with no fp32 copy.
  // h16 and dh16 are [rows, cols]; gate16, up16, dgate16 and dup16 have
  // rows `ld` elements apart (ld = 2 cols: the halves of one [rows, 2 cols]
  // product, gate | up on every row).
  virtual void swiglu_forward_bf16(void* h16, const void* gate16, const void* up16, int64_t rows,
                                   int64_t cols, int64_t ld) {
    unsupported("swiglu_forward_bf16", h16, gate16, up16, rows, cols, ld);
  }
  virtual void swiglu_backward_bf16(void* dgate16, void* dup16, const void* dh16, const void* gate16,
                                    const void* up16, int64_t rows, int64_t cols, int64_t ld) {
    unsupported("swiglu_backward_bf16", dgate16, dup16, dh16, gate16, up16, rows, cols, ld);
  }

  virtual void add(float* out, const float* a, const float* b, int64_t count) = 0;

  // Softmax cross-entropy over rows of logits [N, V]: losses[n] = lse[n] - logits[n, targets[n]].
  // Backward WRITES dlogits = scale * (softmax(logits) - onehot(target)); dlogits may alias logits.
  // A negative target is ignored (PyTorch's ignore_index): loss 0, a zero dlogits row.
  virtual void cross_entropy_forward(float* losses, float* lse, ConstMatrix logits,
                                     const int32_t* targets) = 0;
  virtual void cross_entropy_backward(Matrix dlogits, ConstMatrix logits, const float* lse,
                                      const int32_t* targets, float scale) = 0;

  // Optimiser.
  virtual double sum_of_squares(const float* x, int64_t count) = 0;  // in double, deterministic order
  virtual void adamw_update(float* params, const float* grads, float* m, float* v, int64_t count,
                            const AdamWStep& step) = 0;

  // ---- The training step on the device, step graphs, memory and timing ----
  // (trainer, proxies/latency). Per-step values travel through
  // DeviceStepScalars, so a step is a fixed sequence of kernel calls with no
  // host read and no allocation: replayable as a CUDA graph.
  //
  // out[0] = sum(x) / count in double, summed in a fixed order (the loss).
  virtual void mean_to_device(double* out, const float* x, int64_t count) {
    unsupported("mean_to_device", out, x, count);
  }
  // Global-norm clipping without a host round trip: *norm_out = sqrt(sum of
  // squares) (in double, the order of sum_of_squares), *scale_out =
  // max_norm / norm when max_norm > 0 and norm > max_norm, else 1.
  virtual void grad_clip_scale(float* scale_out, double* norm_out, const float* grads, int64_t count,
                               double max_norm) {
    unsupported("grad_clip_scale", scale_out, norm_out, grads, count, max_norm);
  }
  // adamw_update with the learning rate, bias corrections and grad scale read
  // from device memory (scalars->in, scalars->out.grad_scale); beta1, beta2,
  // eps and weight_decay from `constants`. Same arithmetic, same bits.
  virtual void adamw_update_device(float* params, const float* grads, float* m, float* v, int64_t count,
                                   const AdamWStep& constants, const DeviceStepScalars* scalars) {
    unsupported("adamw_update_device", params, grads, m, v, count, constants, scalars);
  }
  // Runs `step` as one replayable unit. The default (CPU) calls it each
  // time. CUDA: the first run is eager (it sizes every scratch buffer), the
  // second is captured as a CUDA graph and launched, later runs replay the
  // graph; a capture that fails (an operator that reads the device from the
  // host) falls back to eager with a warning on stderr. `step` must read
  // per-run values from device memory only.
  virtual std::unique_ptr<StepRunner> make_step_runner(std::function<void()> step, bool allow_graph = true) {
    (void)allow_graph;
    return std::make_unique<EagerStepRunner>(std::move(step));
  }
  // A HostStaging of `bytes`; by default plain memory whose copies are the
  // backend's synchronous copy_to_device / copy_to_host.
  virtual std::unique_ptr<HostStaging> make_host_staging(std::size_t bytes);
  // Milliseconds the device spends on run(): CUDA events around it on the
  // GPU; by default a steady clock between two synchronize() calls.
  virtual double elapsed_ms(const std::function<void()>& run) {
    synchronize();
    const auto start = std::chrono::steady_clock::now();
    run();
    synchronize();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  }
  // Free and total memory of the device (CPU: MemAvailable and MemTotal),
  // with free capped by set_memory_limit (0: no limit), so a test can run the
  // real out-of-memory check against a small, real limit.
  MemoryInfo memory_info() {
    MemoryInfo info = query_memory_info();
    if (memory_limit_bytes_ > 0) info.free_bytes = std::min(info.free_bytes, memory_limit_bytes_);
    return info;
  }
  void set_memory_limit(int64_t bytes) { memory_limit_bytes_ = bytes; }
  // Bytes in use on the device as the device reports them (CUDA: total - free
  // from cudaMemGetInfo); empty where that is not measured (CPU).
  virtual std::optional<int64_t> device_bytes_in_use() { return std::nullopt; }

  // Linear attention and MoE. These have default bodies that throw, so a
  // backend that does not implement them yet still builds; the operators that
  // need them then fail with the kernel's name (the trainer reports it).
  //
  // phi(x) elementwise; backward din (+)= dout * phi'(in) (added when
  // accumulate, else written).
  virtual void feature_map_forward(float* out, const float* in, int64_t count, FeatureMapKind kind) {
    unsupported("feature_map_forward", out, in, count, kind);
  }
  virtual void feature_map_backward(float* din, const float* dout, const float* in, int64_t count,
                                    FeatureMapKind kind, bool accumulate) {
    unsupported("feature_map_backward", din, dout, in, count, kind, accumulate);
  }
  // GLA's low-temperature decay over rows of [rows, cols]:
  // log_alpha = log(sigmoid(z + bias[c])) / temperature; backward accumulates
  // dz += dlog_alpha * (1 - sigmoid(z + bias)) / temperature and dbias (rows summed in order).
  virtual void gla_log_decay_forward(float* log_alpha, const float* z, const float* bias, int64_t rows,
                                     int64_t cols, float temperature) {
    unsupported("gla_log_decay_forward", log_alpha, z, bias, rows, cols, temperature);
  }
  virtual void gla_log_decay_backward(float* dz, float* dbias, const float* dlog_alpha, const float* z,
                                      const float* bias, int64_t rows, int64_t cols, float temperature) {
    unsupported("gla_log_decay_backward", dz, dbias, dlog_alpha, z, bias, rows, cols, temperature);
  }
  // Causal (gated) linear attention, per head:
  //   S_t = diag(alpha_t) S_{t-1} + k_t v_t^T,  out_t = S_t^T q_t,
  // alpha_t = exp(log_alpha_t) per key channel ([batch, seq, heads, head_dim]);
  // log_alpha null means alpha = 1 (ungated). Backward adds into dq, dk, dv
  // and dlog_alpha when accumulate, else writes them (dlog_alpha may be null
  // when log_alpha is).
  virtual void linear_attention_forward(float* out, const float* q, const float* k, const float* v,
                                        const float* log_alpha, const LinearAttentionShape& shape) {
    unsupported("linear_attention_forward", out, q, k, v, log_alpha, shape);
  }
  virtual void linear_attention_backward(float* dq, float* dk, float* dv, float* dlog_alpha,
                                         const float* dout, const float* q, const float* k, const float* v,
                                         const float* log_alpha, const LinearAttentionShape& shape,
                                         bool accumulate) {
    unsupported("linear_attention_backward", dq, dk, dv, dlog_alpha, dout, q, k, v, log_alpha, shape,
                accumulate);
  }
  // Decode, shape.seq == 1: state [batch, heads, head_dim (key), head_dim (value)]
  // gets S = diag(alpha) S + k v^T; the read writes out = S^T q.
  virtual void linear_attention_state_update(float* state, const float* k, const float* v,
                                             const float* log_alpha, const LinearAttentionShape& shape) {
    unsupported("linear_attention_state_update", state, k, v, log_alpha, shape);
  }
  virtual void linear_attention_state_read(float* out, const float* q, const float* state,
                                           const LinearAttentionShape& shape) {
    unsupported("linear_attention_state_read", out, q, state, shape);
  }
  // The differential combination of two feature groups over rows of
  // [heads, head_dim]: out = a1 - (lambda_init + lambda[h]) * a2. Backward
  // accumulates da1, da2 and dlambda (summed over rows in order).
  virtual void differential_forward(float* out, const float* a1, const float* a2, const float* lambda,
                                    float lambda_init, int64_t rows, int heads, int head_dim) {
    unsupported("differential_forward", out, a1, a2, lambda, lambda_init, rows, heads, head_dim);
  }
  virtual void differential_backward(float* da1, float* da2, float* dlambda, const float* dout,
                                     const float* a2, const float* lambda, float lambda_init, int64_t rows,
                                     int heads, int head_dim) {
    unsupported("differential_backward", da1, da2, dlambda, dout, a2, lambda, lambda_init, rows, heads,
                head_dim);
  }
  // Fusion of two mixers, columns of [rows, cols]: s = sigmoid(gate[c]),
  // out = s * y0 + (1 - s) * y1. Backward accumulates dy0, dy1 and dgate.
  virtual void gate_mix_forward(float* out, const float* y0, const float* y1, const float* gate, int64_t rows,
                                int64_t cols) {
    unsupported("gate_mix_forward", out, y0, y1, gate, rows, cols);
  }
  virtual void gate_mix_backward(float* dy0, float* dy1, float* dgate, const float* dout, const float* y0,
                                 const float* y1, const float* gate, int64_t rows, int64_t cols) {
    unsupported("gate_mix_backward", dy0, dy1, dgate, dout, y0, y1, gate, rows, cols);
  }
  // MoE router: probs = softmax(logits) per row [rows, experts]; the top_k
  // experts by probability (ties: the lower index) in top_index [rows, top_k],
  // their renormalised probabilities in top_weight.
  virtual void moe_route(float* probs, int32_t* top_index, float* top_weight, ConstMatrix logits, int top_k) {
    unsupported("moe_route", probs, top_index, top_weight, logits.data, top_k);
  }
  // dlogits = the gradient through softmax of dtop_weight (through the
  // renormalisation) plus that of the load-balancing loss
  // aux = aux_weight * experts * sum_e f_e P_e (f_e, moe_dispatch's
  // expert_fractions, held constant); written, not added.
  virtual void moe_route_backward(Matrix dlogits, const float* dtop_weight, const float* probs,
                                  const int32_t* top_index, const float* top_weight,
                                  const float* expert_fractions, int top_k, float aux_weight) {
    unsupported("moe_route_backward", dlogits.data, dtop_weight, probs, top_index, top_weight,
                expert_fractions, top_k, aux_weight);
  }
  // Deterministic dispatch: the rows * top_k assignments sorted by expert,
  // stably (token order inside an expert). order[r] = the assignment
  // (row * top_k + j) at dispatched position r; position[a] = its inverse;
  // offsets [experts + 1] the first position of each expert;
  // expert_fractions [experts] f_e, the fraction of the assignments routed to e.
  virtual void moe_dispatch(int32_t* order, int32_t* position, int32_t* offsets, float* expert_fractions,
                            const int32_t* top_index, int64_t rows, int top_k, int experts) {
    unsupported("moe_dispatch", order, position, offsets, expert_fractions, top_index, rows, top_k, experts);
  }
  // xs[r] = x[order[r] / top_k] (rows of cols); backward: dx[n] += sum_j dxs[position[n * top_k + j]].
  virtual void moe_gather(Matrix xs, ConstMatrix x, const int32_t* order, int top_k) {
    unsupported("moe_gather", xs.data, x.data, order, top_k);
  }
  virtual void moe_gather_backward(Matrix dx, ConstMatrix dxs, const int32_t* position, int top_k) {
    unsupported("moe_gather_backward", dx.data, dxs.data, position, top_k);
  }
  // y[n] = sum_j top_weight[n, j] * ys[position[n * top_k + j]] (overwrites y).
  // Backward WRITES dys[position[a]] = top_weight[a] * dy[n] and dtop_weight[a] = dy[n] . ys[position[a]]
  // (each dispatched row and each assignment has one writer: no zeroing first).
  virtual void moe_combine(Matrix y, ConstMatrix ys, const float* top_weight, const int32_t* position,
                           int top_k) {
    unsupported("moe_combine", y.data, ys.data, top_weight, position, top_k);
  }
  // The down projection's two halves (grouped_matmul_halves) combined: ys
  // += ys_second first (ys then holds the rows' outputs, which the backward
  // reads), then moe_combine.
  virtual void moe_combine_halves(Matrix y, Matrix ys, ConstMatrix ys_second, const float* top_weight,
                                  const int32_t* position, int top_k) {
    add(ys.data, ys.data, ys_second.data, ys.numel());
    moe_combine(y, ys, top_weight, position, top_k);
  }
  virtual void moe_combine_backward(Matrix dys, float* dtop_weight, ConstMatrix dy, ConstMatrix ys,
                                    const float* top_weight, const int32_t* position, int top_k) {
    unsupported("moe_combine_backward", dys.data, dtop_weight, dy.data, ys.data, top_weight, position, top_k);
  }
  // A MoE layer's routing as one call, with the results of the calls it
  // stands for (a backend may fuse them): logits = x Router^T (router:
  // [experts, d]), moe_route, moe_dispatch, then xs = moe_gather(x).
  virtual void moe_route_and_gather(const MoeRouting& r, Matrix xs, GemmOperand x, GemmOperand router) {
    matmul({r.logits, r.rows, r.experts}, x, router);
    moe_route(r.probs, r.top_index, r.top_weight, {r.logits, r.rows, r.experts}, r.top_k);
    moe_dispatch(r.order, r.position, r.offsets, r.expert_fractions, r.top_index, r.rows, r.top_k, r.experts);
    moe_gather(xs, x.matrix(), r.order, r.top_k);
  }
  // moe_combine_backward (dtop_weight: [rows, top_k] scratch), then
  // moe_route_backward into dlogits; dlogits16, when not null, gets dlogits'
  // bf16 copy (a GemmOperand shadow for the router's weight gradient).
  virtual void moe_combine_route_backward(const MoeRouting& r, Matrix dlogits, void* dlogits16, Matrix dys,
                                          float* dtop_weight, ConstMatrix dy, ConstMatrix ys,
                                          float aux_weight) {
    moe_combine_backward(dys, dtop_weight, dy, ys, r.top_weight, r.position, r.top_k);
    moe_route_backward(dlogits, dtop_weight, r.probs, r.top_index, r.top_weight, r.expert_fractions, r.top_k,
                       aux_weight);
    if (dlogits16) round_to_bf16(dlogits16, dlogits.data, dlogits.numel());
  }
  // dx (+)= dlogits Router (dx = ... when !accumulate), then dx += the
  // experts' rows (moe_gather_backward of dxs, then of dxs_up when given:
  // the up projection's part that grouped_gate_up_backward left apart).
  virtual void moe_gather_router_backward(const MoeRouting& r, Matrix dx, ConstMatrix dxs,
                                          GemmOperand dlogits, GemmOperand router, bool accumulate,
                                          ConstMatrix dxs_up = {}) {
    matmul_backward_input(dx, dlogits, router, accumulate);
    moe_gather_backward(dx, dxs, r.position, r.top_k);
    if (dxs_up.data) moe_gather_backward(dx, dxs_up, r.position, r.top_k);
  }
  // The load-balancing loss, in double, in backend memory (so nothing is
  // read on the host): out[0] = aux_weight * experts * sum_e f_e P_e, summed
  // over e in order, with f_e from moe_dispatch and P_e the mean of probs'
  // column e over its rows (computed here: a training step, which needs only
  // f_e for the gradient, spends nothing on it).
  virtual void moe_balance_loss(double* out, const float* expert_fractions, ConstMatrix probs,
                                float aux_weight) {
    unsupported("moe_balance_loss", out, expert_fractions, probs.data, aux_weight);
  }
  // The experts' products as grouped GEMMs whose sizes stay in backend
  // memory (dropless: every expert takes all its rows). The dispatched rows
  // are grouped by expert: expert e owns rows [offsets[e], offsets[e + 1]) of
  // the activation views (ExpertRows: moe_dispatch's offsets, experts + 1
  // int32; rows from offsets[experts] on are not touched). The views' rows
  // are the capacity (rows * top_k), which bounds the work: the host never
  // reads the offsets (the CPU backend may, its memory being the host's).
  // The weights are stacked: `w` is expert 0's [out, in] matrix, followed in
  // memory by the other experts' ([experts, out, in], row-major), each used
  // as matmul uses its W.
  //
  // y_rows = x_rows W_e^T (y_rows += ... when accumulate).
  virtual void grouped_matmul(Matrix y, ConstMatrix x, ConstMatrix w, ExpertRows rows,
                              bool accumulate = false) {
    unsupported("grouped_matmul", y.data, x.data, w.data, rows.offsets, accumulate);
  }
  // Whether MoE's products over `capacity` dispatched rows with `cols`
  // outputs should run as two products side by side (grouped_matmul_halves
  // for the down projection, grouped_gate_up_backward's dx_up for the input
  // gradients): yes where one product would leave the device mostly idle.
  // Only the order of the sums changes.
  virtual bool splits_grouped_products(int64_t capacity, int64_t cols, int experts) const {
    (void)capacity, (void)cols, (void)experts;
    return false;
  }
  // y + y_second = x_rows W_e^T (both written): a backend may cut the
  // reduction in two and run the halves side by side (the CPU computes the
  // product into y and zeros y_second); moe_combine_halves adds them.
  virtual void grouped_matmul_halves(Matrix y, Matrix y_second, ConstMatrix x, ConstMatrix w,
                                     ExpertRows rows) {
    grouped_matmul(y, x, w, rows, false);
    fill(y_second.data, y_second.numel(), 0.0f);
  }
  // dx_rows += dy_rows W_e (dx_rows = ... when !accumulate).
  virtual void grouped_matmul_backward_input(Matrix dx, ConstMatrix dy, ConstMatrix w, ExpertRows rows,
                                             bool accumulate = true) {
    unsupported("grouped_matmul_backward_input", dx.data, dy.data, w.data, rows.offsets, accumulate);
  }
  // dW_e += dy_e^T x_e, summed over expert e's rows (dw stacked as w); an
  // expert without rows keeps its dW.
  virtual void grouped_matmul_backward_weight(Matrix dw, ConstMatrix dy, ConstMatrix x, ExpertRows rows) {
    unsupported("grouped_matmul_backward_weight", dw.data, dy.data, x.data, rows.offsets);
  }
  // Pairs of the products (an MoE's gate and up projections), with the
  // results of the calls they stand for, in their order; a backend may run
  // each pair as one launch. dx (+)= dy0 W0_e, then dx += dy1 W1_e;
  // dW0_e += dy0_e^T x_e and dW1_e += dy1_e^T x_e.
  virtual void grouped_matmul_backward_input_pair(Matrix dx, ConstMatrix dy0, ConstMatrix w0, ConstMatrix dy1,
                                                  ConstMatrix w1, ExpertRows rows, bool accumulate) {
    grouped_matmul_backward_input(dx, dy0, w0, rows, accumulate);
    grouped_matmul_backward_input(dx, dy1, w1, rows, true);
  }
  virtual void grouped_matmul_backward_weight_pair(Matrix dw0, ConstMatrix dy0, Matrix dw1, ConstMatrix dy1,
                                                   ConstMatrix x, ExpertRows rows) {
    grouped_matmul_backward_weight(dw0, dy0, x, rows);
    grouped_matmul_backward_weight(dw1, dy1, x, rows);
  }
  // The experts' SwiGLU hidden layer, with the results of the calls it
  // stands for: gate = x W_gate_e^T, up = x W_up_e^T (written), then
  // h = silu(gate) * up (swiglu_forward) over the dispatched rows.
  virtual void grouped_swiglu_forward(Matrix h, Matrix gate, Matrix up, ConstMatrix x, ConstMatrix w_gate,
                                      ConstMatrix w_up, ExpertRows rows) {
    grouped_matmul(gate, x, w_gate, rows, false);
    grouped_matmul(up, x, w_up, rows, false);
    swiglu_forward(h.data, gate.data, up.data, h.numel());
  }
  // Its gradient through the down projection's input: dh = dy W_down_e,
  // then dgate and dup written from dh, gate and up (swiglu_backward). dh is
  // scratch that a backend may leave unwritten.
  virtual void grouped_swiglu_backward_input(Matrix dgate, Matrix dup, Matrix dh, ConstMatrix dy,
                                             ConstMatrix w_down, ConstMatrix gate, ConstMatrix up,
                                             ExpertRows rows) {
    grouped_matmul_backward_input(dh, dy, w_down, rows, false);
    swiglu_backward(dgate.data, dup.data, dh.data, gate.data, up.data, dh.numel(), false);
  }

  // MoE's backward products two at a time, with the results of the calls
  // they stand for, in their order (a backend may run each as one launch:
  // their outputs are independent). The down projection's: dW_down += dy^T h
  // (grouped_matmul_backward_weight), then grouped_swiglu_backward_input.
  virtual void grouped_swiglu_backward(Matrix dw_down, Matrix dgate, Matrix dup, Matrix dh, ConstMatrix dy,
                                       ConstMatrix h, ConstMatrix w_down, ConstMatrix gate, ConstMatrix up,
                                       ExpertRows rows) {
    grouped_matmul_backward_weight(dw_down, dy, h, rows);
    grouped_swiglu_backward_input(dgate, dup, dh, dy, w_down, gate, up, rows);
  }
  // The gate and up projections': grouped_matmul_backward_weight_pair, then
  // grouped_matmul_backward_input_pair into dx. With dx_up given, the two
  // input products stay apart: dx (+)= dgate W_gate_e and dx_up = dup W_up_e
  // (written), which a backend may run side by side instead of one after the
  // other; moe_gather_router_backward adds dx_up's rows.
  virtual void grouped_gate_up_backward(Matrix dw_gate, Matrix dw_up, Matrix dx, ConstMatrix dgate,
                                        ConstMatrix dup, ConstMatrix x, ConstMatrix w_gate, ConstMatrix w_up,
                                        ExpertRows rows, bool accumulate, Matrix dx_up = {}) {
    grouped_matmul_backward_weight_pair(dw_gate, dgate, dw_up, dup, x, rows);
    if (dx_up.data) {
      grouped_matmul_backward_input(dx, dgate, w_gate, rows, accumulate);
      grouped_matmul_backward_input(dx_up, dup, w_up, rows, false);
    } else {
      grouped_matmul_backward_input_pair(dx, dgate, w_gate, dup, w_up, rows, accumulate);
    }
  }

  // Convolutions and scans (rec, ssm, gconv). Default bodies throw, as above.
  //
  // Depthwise causal convolution, weights w [channels, kernel], bias may be null:
  //   y[b,t,c] = bias[c] + sum_j w[c,j] * x[b, t-(kernel-1)+j, c]
  // (PyTorch's Conv1d with padding kernel-1, cut to the first seq outputs).
  // Inputs before t = 0 come from `state` [batch, kernel-1, channels] (oldest
  // first) when it is not null, else they are zero; with a state the last
  // kernel-1 inputs are written back, so decode is this call with seq = 1.
  // Backward accumulates dx, dw and dbias (may be null), zero history.
  virtual void causal_conv_forward(float* y, const float* x, const float* w, const float* bias, float* state,
                                   const ConvShape& shape) {
    unsupported("causal_conv_forward", y, x, w, bias, state, shape);
  }
  // Backward: dx (+)= the input gradient (added when accumulate_dx, else
  // written), dw and dbias (when given) +=.
  virtual void causal_conv_backward(float* dx, float* dw, float* dbias, const float* dy, const float* x,
                                    const float* w, const ConvShape& shape, bool accumulate_dx) {
    unsupported("causal_conv_backward", dx, dw, dbias, dy, x, w, shape, accumulate_dx);
  }
  // gconv's gated short convolution in one call, on the input projection's
  // output bcx [batch * seq, 3 * channels] (blocks b, c and x~ of `channels`
  // columns each, in that order):
  //   out[t, ch] = c[t, ch] * conv(b * x~)[t, ch]
  // with conv as causal_conv_forward without a bias, so b * x~ is what the
  // decode state [batch, kernel-1, channels] keeps. One call instead of two
  // products and a convolution, and nothing between them in memory.
  // Backward (zero history) writes dbcx (every element; no accumulation, so
  // no fill first) and accumulates dw; conv(b * x~) is recomputed.
  virtual void gated_conv_forward(float* out, const float* bcx, const float* w, float* state,
                                  const ConvShape& shape) {
    unsupported("gated_conv_forward", out, bcx, w, state, shape);
  }
  virtual void gated_conv_backward(float* dbcx, float* dw, const float* dout, const float* bcx,
                                   const float* w, const ConvShape& shape) {
    unsupported("gated_conv_backward", dbcx, dw, dout, bcx, w, shape);
  }
  // Griffin's RG-LRU, per channel, in fp32 (shape.state == 1):
  //   r = sigmoid(gate_a), i = sigmoid(gate_i), log a = -c * r * softplus(lambda[ch]),
  //   h_t = a * h_{t-1} + sqrt(1 - a^2) * (i * u),  sqrt(1 - a^2) = sqrt(-expm1(2 log a)).
  // h0 from `state` [batch, channels] when not null (and h_last written back), else 0.
  // Backward (zero h0) accumulates du, dgate_a, dgate_i and dlambda; the
  // derivative of the square root is bounded (at most 1000, as Griffin's code does).
  virtual void rglru_forward(float* h, const float* u, const float* gate_a, const float* gate_i,
                             const float* lambda, float c, float* state, const ScanShape& shape) {
    unsupported("rglru_forward", h, u, gate_a, gate_i, lambda, c, state, shape);
  }
  virtual void rglru_backward(float* du, float* dgate_a, float* dgate_i, float* dlambda, const float* dh,
                              const float* h, const float* u, const float* gate_a, const float* gate_i,
                              const float* lambda, float c, const ScanShape& shape) {
    unsupported("rglru_backward", du, dgate_a, dgate_i, dlambda, dh, h, u, gate_a, gate_i, lambda, c, shape);
  }
  // Mamba's selective scan, per channel ch and state n, in fp32:
  //   A = -exp(a_log[ch,n]), h_t[n] = exp(delta_t A) h_{t-1}[n] + delta_t B_t[n] u_t,
  //   y_t = sum_n C_t[n] h_t[n] + D[ch] u_t.
  // u, delta, y: [batch, seq, channels]; B, C: [batch, seq, state];
  // `state` [batch, channels, state] as in rglru_forward.
  // `checkpoints` (null in decode): [batch, chunks, channels, state]
  // (selective_scan_checkpoint_floats), the state entering each chunk of
  // kScanChunk steps (chunk 0: h0), kept for backward instead of every h_t.
  // Backward (zero h0) recomputes each chunk's states from its checkpoint and
  // accumulates du, ddelta, da_log, dB, dC and dD; `partials` is scratch of
  // batch * channels * (state + 1) floats (per-sequence dA and dD, summed over
  // the batch in order afterwards).
  virtual void selective_scan_forward(float* y, float* checkpoints, const float* u, const float* delta,
                                      const float* a_log, const float* B, const float* C, const float* D,
                                      float* state, const ScanShape& shape) {
    unsupported("selective_scan_forward", y, checkpoints, u, delta, a_log, B, C, D, state, shape);
  }
  virtual void selective_scan_backward(float* du, float* ddelta, float* da_log, float* dB, float* dC,
                                       float* dD, float* partials, const float* dy, const float* checkpoints,
                                       const float* u, const float* delta, const float* a_log, const float* B,
                                       const float* C, const float* D, const ScanShape& shape) {
    unsupported("selective_scan_backward", du, ddelta, da_log, dB, dC, dD, partials, dy, checkpoints, u,
                delta, a_log, B, C, D, shape);
  }
  // Mamba-2's SSD scan, per head h (A_h = -exp(a_log[h]), scalar), channel p
  // and state n, in fp32:
  //   H_t[p,n] = exp(dt_t[h] A_h) H_{t-1}[p,n] + dt_t[h] x_t[h,p] B_t[n],
  //   y_t[h,p] = sum_n C_t[n] H_t[p,n] + D[h] x_t[h,p].
  // xbc [batch, seq, xbc_width] (x, B, C), dt [batch, seq, heads] (after the
  // softplus), y [batch, seq, heads * head_dim]; `state` [batch, heads,
  // head_dim, state] as in selective_scan_forward (decode: seq 1, the state
  // read and written); `checkpoints` (null in decode) as
  // ssd_checkpoint_floats. Backends may compute it chunk-wise (the SSD
  // matrix form); the result is the recurrence's.
  // Backward (zero H_0) WRITES dxbc (x, B and C parts) and ddt, and
  // accumulates da_log and dD; `partials` is scratch of ssd_partial_floats.
  virtual void ssd_forward(float* y, float* checkpoints, const float* xbc, const float* dt,
                           const float* a_log, const float* D, float* state, const SsdShape& shape) {
    unsupported("ssd_forward", y, checkpoints, xbc, dt, a_log, D, state, shape);
  }
  virtual void ssd_backward(float* dxbc, float* ddt, float* da_log, float* dD, float* partials,
                            const float* dy, const float* checkpoints, const float* xbc, const float* dt,
                            const float* a_log, const float* D, const SsdShape& shape) {
    unsupported("ssd_backward", dxbc, ddt, da_log, dD, partials, dy, checkpoints, xbc, dt, a_log, D, shape);
  }
  // The delta rule (DeltaRuleShape). `state` [batch, heads, d_k, d_v] (decode)
  // as in rglru_forward: S_0 from it and S_T written back when not null;
  // `checkpoints` null in decode. Backward (zero S_0) recomputes each chunk's
  // states from its checkpoint into `scratch` and accumulates dq, dk, dv,
  // dbeta and dlog_alpha (null when log_alpha is).
  virtual void delta_rule_forward(float* o, float* checkpoints, const float* q, const float* k,
                                  const float* v, const float* log_alpha, const float* beta, float* state,
                                  const DeltaRuleShape& shape) {
    unsupported("delta_rule_forward", o, checkpoints, q, k, v, log_alpha, beta, state, shape);
  }
  virtual void delta_rule_backward(float* dq, float* dk, float* dv, float* dlog_alpha, float* dbeta,
                                   float* scratch, const float* dout, const float* checkpoints,
                                   const float* q, const float* k, const float* v, const float* log_alpha,
                                   const float* beta, const DeltaRuleShape& shape) {
    unsupported("delta_rule_backward", dq, dk, dv, dlog_alpha, dbeta, scratch, dout, checkpoints, q, k, v,
                log_alpha, beta, shape);
  }
  // Gated DeltaNet's decay per row and head (Mamba-2's parametrisation):
  //   log_alpha[n, h] = -exp(a_log[h]) * softplus(z[n, h] + dt_bias[h]).
  // Backward accumulates dz, and da_log, ddt_bias summed over rows in order.
  virtual void gdn_decay_forward(float* log_alpha, const float* z, const float* a_log, const float* dt_bias,
                                 int64_t rows, int heads) {
    unsupported("gdn_decay_forward", log_alpha, z, a_log, dt_bias, rows, heads);
  }
  virtual void gdn_decay_backward(float* dz, float* da_log, float* ddt_bias, const float* dlog_alpha,
                                  const float* z, const float* a_log, const float* dt_bias, int64_t rows,
                                  int heads) {
    unsupported("gdn_decay_backward", dz, da_log, ddt_bias, dlog_alpha, z, a_log, dt_bias, rows, heads);
  }
  // out = act(in) elementwise (gelu_tanh: the tanh approximation);
  // backward din (+)= dout * act'(in) (added when accumulate, else written).
  virtual void activation_forward(float* out, const float* in, int64_t count, ActivationKind kind) {
    unsupported("activation_forward", out, in, count, kind);
  }
  virtual void activation_backward(float* din, const float* dout, const float* in, int64_t count,
                                   ActivationKind kind, bool accumulate) {
    unsupported("activation_backward", din, dout, in, count, kind, accumulate);
  }
  // out = a * b elementwise; backward da (+)= dout * b, db (+)= dout * a
  // (added when accumulate, else written).
  virtual void multiply_forward(float* out, const float* a, const float* b, int64_t count) {
    unsupported("multiply_forward", out, a, b, count);
  }
  virtual void multiply_backward(float* da, float* db, const float* dout, const float* a, const float* b,
                                 int64_t count, bool accumulate) {
    unsupported("multiply_backward", da, db, dout, a, b, count, accumulate);
  }
  // The differential form of rec, ssm and gconv, whose inner channels come in
  // two halves: in [rows, 2W] -> out [rows, W],
  //   out[n, c] = in[n, c] - (lambda_init + lambda[c]) * in[n, W + c].
  // Backward accumulates din and dlambda (summed over rows in order).
  virtual void halves_difference_forward(Matrix out, ConstMatrix in, const float* lambda, float lambda_init) {
    unsupported("halves_difference_forward", out.data, in.data, lambda, lambda_init);
  }
  virtual void halves_difference_backward(Matrix din, float* dlambda, ConstMatrix dout, ConstMatrix in,
                                          const float* lambda, float lambda_init) {
    unsupported("halves_difference_backward", din.data, dlambda, dout.data, in.data, lambda, lambda_init);
  }
  // y[n, :] += bias; backward: dbias[c] += sum_n dy[n, c] (rows in order).
  // The tied LM head. Forward: logits = x table^T, then each row's
  // cross-entropy against its target (losses and lse as
  // cross_entropy_forward). `logits` is rows x vocab in shape but its
  // storage, lm_head_logits_floats(rows, vocab) floats, belongs to the
  // backend between this forward and lm_head_backward: the default keeps
  // fp32 logits there; the CUDA backend in bf16 mode keeps bf16 logits (half
  // the bytes of the step's largest tensor, as PyTorch's autocast does) and
  // the bf16 x and table for the backward.
  virtual int64_t lm_head_logits_floats(int64_t rows, int64_t vocab) const { return rows * vocab; }
  virtual void lm_head_forward(float* losses, float* lse, Matrix logits, GemmOperand x, GemmOperand table,
                               const int32_t* targets) {
    matmul(logits, x, table);
    cross_entropy_forward(losses, lse, logits, targets);
  }
  // The backward of the last lm_head_forward (same arguments):
  // dlogits = scale * (softmax(logits) - onehot(target)) in place of the
  // logits, then dx += dlogits table and dtable += dlogits^T x.
  virtual void lm_head_backward(Matrix dx, Matrix dtable, Matrix logits, ConstMatrix x, ConstMatrix table,
                                const float* lse, const int32_t* targets, float scale) {
    cross_entropy_backward(logits, logits, lse, targets, scale);
    matmul_backward_weight(dtable, logits, x);
    matmul_backward_input(dx, logits, table);
  }
  virtual void add_bias(Matrix y, const float* bias) { unsupported("add_bias", y.data, bias); }
  virtual void bias_backward(float* dbias, ConstMatrix dy) { unsupported("bias_backward", dbias, dy.data); }

 protected:
  // Unknown by default: every plan fits (no check).
  virtual MemoryInfo query_memory_info() {
    return {std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::max()};
  }
  int64_t memory_limit_bytes_ = 0;

 protected:
  template <class... Ignored>
  [[noreturn]] void unsupported(const char* kernel, const Ignored&...) const {
    throw std::logic_error(std::string(kernel) + ": not implemented by the " + name() + " backend");
  }
};

}  // namespace livs::evaluator
