#pragma once
// A model built from a genome::ModelSpec on a Backend:
//   embedding -> slots (x = x + op(rmsnorm(x))) -> final RMSNorm -> tied LM head -> cross-entropy.
// Everything it needs (parameters, gradients, AdamW moments, activations,
// decode state) is planned at construction and allocated once in one Arena;
// forward, backward and decode allocate nothing on the device.
#include <cstdint>
#include <memory>
#include <vector>

#include "evaluator/arena.hpp"
#include "evaluator/backend.hpp"
#include "evaluator/operator.hpp"
#include "evaluator/parameters.hpp"
#include "genome/model_spec.hpp"

namespace livs::evaluator {

class Model {
 public:
  // Throws std::invalid_argument when the spec is inconsistent or uses what the
  // evaluator does not implement yet, std::bad_alloc when memory runs out.
  Model(const genome::ModelSpec& spec, Backend& backend, const PlanShape& shape, uint64_t init_seed);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const PlanShape& shape() const { return shape_; }
  Backend& backend() { return backend_; }
  int vocab() const { return vocab_; }
  int d_model() const { return d_; }

  // Training / evaluation on batch x seq tokens (host arrays, row-major
  // [batch, seq]; targets are the next tokens). Returns the mean cross-entropy
  // over the targets that are not ignored (a negative target is ignored, as
  // PyTorch's ignore_index: no loss, no gradient; backward() then averages
  // over the others); the per-token values are in token_losses() afterwards.
  // = set_batch + forward_on_device + reading the per-token losses back.
  double forward(const int32_t* inputs, const int32_t* targets);

  // The same forward split for the device-side training step (a CUDA graph
  // replays it): set_batch copies inputs and targets into their fixed device
  // buffers (one copy); forward_on_device reads nothing from the host and
  // leaves the mean cross-entropy in step_scalars()->out.loss (over all
  // positions: the device step expects no ignored target, as the trainer's).
  void set_batch(const int32_t* inputs, const int32_t* targets);
  // set_batch without the host waiting: the batch is already in `staging` at
  // `offset` (inputs then targets, batch_tokens() each) and is queued from
  // there; the staging must not be rewritten until a mark after it passed.
  void send_batch(HostStaging& staging, std::size_t offset);
  int64_t batch_tokens() const { return shape_.tokens(); }
  void forward_on_device();
  // The logits [rows * seq, vocab] of the first `rows` sequences of the last
  // forward, in fp32: the final norm's output times the tied table, computed
  // again into a temporary buffer (the LM head's own logits storage belongs
  // to the backend and may be bf16). For checks against other frameworks.
  std::vector<float> logits_of_last_forward(int rows);
  // The step's scalars in device memory (see backend.hpp): the trainer writes
  // `in` before each step and reads `out` after it.
  DeviceStepScalars* step_scalars() { return step_scalars_; }
  const std::vector<float>& token_losses() const { return host_losses_; }
  // The operators' auxiliary losses of the last forward (MoE load balancing),
  // not part of forward()'s cross-entropy; backward() includes their gradient,
  // so the training objective is cross-entropy + auxiliary_loss(). The
  // operators keep them in device memory: this reads them back (a host
  // round trip), so call it outside a step, never inside forward_on_device.
  double auxiliary_loss() const;
  // Gradients of the mean loss of the last forward, accumulated into the
  // parameter gradients (zero them first with zero_grads()).
  void backward();
  void zero_grads();

  // Decode: after reset_decode(), call decode_step with positions 0, 1, 2, ...
  // tokens: [decode_batch]; logits (may be null): [decode_batch, vocab].
  void reset_decode();
  void decode_step(const int32_t* tokens, int64_t position, float* logits);
  // decode_step in three parts, so the middle one can be replayed as a graph
  // (at a fixed position): tokens into their device buffer, the step, the
  // logits [decode_batch, vocab] back to the host.
  void set_decode_tokens(const int32_t* tokens);
  void decode_on_device(int64_t position);
  void read_decode_logits(float* logits);
  // Analytic decode-state elements per sequence at this context length.
  int64_t decode_state_elements(int64_t context) const;
  // Decode-state elements the arena actually holds for decode_batch sequences.
  int64_t planned_state_elements() const { return arena_.state_elements(); }

  // Parameters: values, gradients and AdamW moments, each parameters().count()
  // elements with the same layout.
  ParameterStore& parameters() { return params_; }
  float* values() { return values_; }
  float* grads() { return grads_; }
  float* adam_m() { return adam_m_; }
  float* adam_v() { return adam_v_; }
  int64_t arena_bytes() const { return arena_.bytes(); }
  Operator& op(int slot, int index = 0) { return *slots_[slot].ops[index]; }

 private:
  // A slot: one operator, or two token mixers on the same normed input
  // combined by sum, mean (s = 1/2) or a learned gate (s = sigmoid(gate) per
  // channel): y = s * y0 + (1 - s) * y1.
  struct Slot {
    std::vector<std::unique_ptr<Operator>> ops;
    genome::FusionKind fusion = genome::FusionKind::none;
    Param norm, gate;
    float *x = nullptr, *normed = nullptr, *rstd = nullptr;  // x: the residual stream entering the slot
    void* normed16 = nullptr;                                // normed's bf16 GEMM shadow (or none)
    float *y0 = nullptr, *y1 = nullptr, *dy0 = nullptr, *dy1 = nullptr;  // fusion: each mixer's output
    float *dec_y0 = nullptr, *dec_y1 = nullptr;
    float *mix_gate = nullptr, *dmix_gate = nullptr;  // the gate's value and gradient (mean: constant 0)
    // normed's fp32 values as the norm writes them and the operators read
    // them: nullptr where it has a shadow and no operator reads the values
    // (the norm then writes the shadow alone: a [tokens, d_model] fp32 store
    // less a slot, at DRAM bandwidth on large shapes).
    float* normed_values() const {
      if (!normed16) return normed;
      for (const auto& op : ops)
        if (op->reads_input_values()) return normed;
      return nullptr;
    }
  };
  void mix(Slot& slot, float* y, const float* y0, const float* y1, int64_t rows);  // fusion only
  void slot_backward(Slot& slot);

  Backend& backend_;
  PlanShape shape_;
  int vocab_, d_;
  float eps_;
  ParameterStore params_;
  Arena arena_;
  std::vector<Slot> slots_;
  Param embedding_, final_norm_;
  float *values_ = nullptr, *grads_ = nullptr, *adam_m_ = nullptr, *adam_v_ = nullptr;
  void* values16_ = nullptr;  // the weights' bf16 GEMM shadows (backends that want them)
  // Training buffers.
  int32_t *inputs_ = nullptr, *targets_ = nullptr;
  float *x_out_ = nullptr, *y_ = nullptr, *final_ = nullptr, *final_rstd_ = nullptr, *logits_ = nullptr,
        *lse_ = nullptr, *losses_ = nullptr, *dres_ = nullptr, *dnormed_ = nullptr;
  void* dres16_ = nullptr;
  void* final16_ = nullptr;  // the final norm's bf16 shadow, the LM head's x  // dres's bf16 GEMM shadow,
                             // written by the RMSNorm backward that completes it
  std::vector<float> host_losses_;
  int64_t scored_targets_ = 0;        // targets of the last set_batch that are not ignored
  std::vector<int32_t> host_tokens_;  // staging for set_batch: inputs then targets, one copy
  DeviceStepScalars* step_scalars_ = nullptr;
  // Decode buffers.
  int32_t* dec_tokens_ = nullptr;
  float *dec_x_ = nullptr, *dec_normed_ = nullptr, *dec_rstd_ = nullptr, *dec_y_ = nullptr,
        *dec_logits_ = nullptr;
};

}  // namespace livs::evaluator
