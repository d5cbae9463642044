#include "evaluator/model.hpp"

#include <algorithm>
#include <stdexcept>

namespace livs::evaluator {

namespace {

// The model- or slot-level weight `name` must be listed with `shape`.
void check_weight(const std::vector<genome::WeightSpec>& weights, const std::string& owner,
                  const std::string& name, const std::vector<int64_t>& shape) {
  for (const auto& w : weights)
    if (w.name == name) {
      if (w.shape != shape)
        throw std::invalid_argument(owner + ": weight \"" + name + "\" has shape " +
                                    shape_to_string(w.shape) + " in the ModelSpec, the model needs " +
                                    shape_to_string(shape));
      return;
    }
  throw std::invalid_argument(owner + ": the ModelSpec lists no weight \"" + name + "\"");
}

}  // namespace

Model::Model(const genome::ModelSpec& spec, Backend& backend, const PlanShape& shape, uint64_t init_seed)
    : backend_(backend),
      shape_(shape),
      vocab_(spec.vocab),
      d_(spec.d_model),
      eps_(float(spec.norm_eps)),
      arena_(backend) {
  if (vocab_ <= 0 || d_ <= 0 || spec.slots.empty())
    throw std::invalid_argument("ModelSpec: needs vocab > 0, d_model > 0 and at least one slot");
  const int64_t V = vocab_, D = d_;
  check_weight(spec.weights, "model", "embedding", {V, D});
  check_weight(spec.weights, "model", "final_norm", {D});
  params_.declare("embedding", {V, D}, Init::normal, true, &embedding_);
  const int n_slots = int(spec.slots.size());
  slots_.resize(spec.slots.size());
  for (int s = 0; s < n_slots; ++s) {
    const auto& slot = spec.slots[s];
    const std::string owner = "slot " + std::to_string(s);
    const bool fused = slot.fusion != genome::FusionKind::none;
    if (slot.ops.size() != (fused ? 2u : 1u))
      throw std::invalid_argument(owner + ": a " + (fused ? "fusion" : "striped") + " slot needs " +
                                  (fused ? "two operators" : "one operator") + ", the ModelSpec has " +
                                  std::to_string(slot.ops.size()));
    Slot& built = slots_[s];
    built.fusion = slot.fusion;
    check_weight(slot.weights, owner, "norm", {D});
    params_.declare(parameter_name(s, "norm"), {D}, Init::ones, false, &built.norm);
    if (slot.fusion == genome::FusionKind::gate) {
      check_weight(slot.weights, owner, "gate", {D});
      params_.declare(parameter_name(s, "gate"), {D}, Init::zeros, false, &built.gate);
    }
    for (int o = 0; o < int(slot.ops.size()); ++o) {
      OpContext context(slot.ops[o], s, o, d_, n_slots, spec.norm_eps, params_);
      built.ops.push_back(make_operator(context));
      const genome::OpRef& src = slot.ops[o].feature_source;
      if (!src.valid()) continue;
      if (src.slot >= s || src.op < 0 || src.op >= int(slots_[src.slot].ops.size()))
        throw std::invalid_argument(context.describe() + ": feature source slot " + std::to_string(src.slot) +
                                    " op " + std::to_string(src.op) + " is not an earlier operator");
      built.ops.back()->share_features_from(*slots_[src.slot].ops[src.op]);
    }
  }
  params_.declare("final_norm", {D}, Init::ones, false, &final_norm_);

  // The memory plan: parameters x4, then the training and decode buffers.
  const int64_t P = params_.count();
  for (float** block : {&values_, &grads_, &adam_m_, &adam_v_}) arena_.reserve(block, P);
  arena_.reserve_gemm_shadow(&values16_, P);  // bf16 weights for the GEMMs, refreshed by every forward
  const int64_t N = shape_.tokens();
  if (N > 0) {
    arena_.reserve_tokens(&inputs_, 2 * N);  // targets follow the inputs: one copy per batch
    for (auto& slot : slots_) {
      arena_.reserve(&slot.x, N * D);
      arena_.reserve(&slot.normed, N * D);
      arena_.reserve(&slot.rstd, N);
      arena_.reserve_gemm_shadow(&slot.normed16, N * D);
      if (slot.fusion != genome::FusionKind::none)
        for (float** b : {&slot.y0, &slot.y1, &slot.dy0, &slot.dy1}) arena_.reserve(b, N * D);
    }
    for (float** b : {&x_out_, &y_, &final_, &dres_, &dnormed_}) arena_.reserve(b, N * D);
    arena_.reserve_gemm_shadow(&dres16_, N * D);
    arena_.reserve_gemm_shadow(&final16_, N * D);
    arena_.reserve(&final_rstd_, N);
    arena_.reserve(&logits_, backend_.lm_head_logits_floats(N, V));
    arena_.reserve(&lse_, N);
    arena_.reserve(&losses_, N);
    host_losses_.resize(static_cast<std::size_t>(N));
    host_tokens_.resize(static_cast<std::size_t>(2 * N));
    arena_.reserve_bytes(reinterpret_cast<void**>(&step_scalars_), sizeof(DeviceStepScalars));
  }
  const int64_t B = shape_.decode_batch;
  if (B > 0) {
    if (shape_.decode_context <= 0) throw std::invalid_argument("decode planned without a context length");
    arena_.reserve_tokens(&dec_tokens_, B);
    for (float** b : {&dec_x_, &dec_normed_, &dec_y_}) arena_.reserve(b, B * D);
    arena_.reserve(&dec_rstd_, B);
    arena_.reserve(&dec_logits_, B * V);
    for (auto& slot : slots_)
      if (slot.fusion != genome::FusionKind::none)
        for (float** b : {&slot.dec_y0, &slot.dec_y1}) arena_.reserve(b, B * D);
  }
  for (auto& slot : slots_) {
    if (slot.fusion == genome::FusionKind::mean) {
      arena_.reserve_constant(&slot.mix_gate, std::vector<float>(std::size_t(D), 0.0f));  // sigmoid(0) = 1/2
      arena_.reserve(&slot.dmix_gate, D);  // a constant's gradient, discarded
    }
    for (auto& op : slot.ops) op->plan(arena_, shape_);
  }
  arena_.allocate();
  if (inputs_) targets_ = inputs_ + N;
  params_.bind(values_, grads_, values16_);
  params_.initialize(backend_, init_seed, n_slots);
  for (auto& slot : slots_)
    if (slot.fusion == genome::FusionKind::gate) {
      slot.mix_gate = slot.gate.value;
      slot.dmix_gate = slot.gate.grad;
    }
}

void Model::mix(Slot& slot, float* y, const float* y0, const float* y1, int64_t rows) {
  const int64_t D = d_;
  if (slot.fusion == genome::FusionKind::sum)
    backend_.add(y, y0, y1, rows * D);
  else
    backend_.gate_mix_forward(y, y0, y1, slot.mix_gate, rows, D);
}

// dres is the gradient of the slot's output. The first operator writes
// dnormed (it holds the previous slot's values), a second one adds into it.
void Model::slot_backward(Slot& slot) {
  const int64_t N = shape_.tokens(), D = d_;
  const OpInput normed(slot.normed_values(), slot.normed16), dres(dres_, dres16_);
  if (slot.fusion == genome::FusionKind::none) {
    slot.ops[0]->backward(backend_, normed, dres, dnormed_, /*accumulate_dx=*/false);
    return;
  }
  OpInput d0 = dres, d1 = dres;  // the gated fusions' own gradients have no shadow
  if (slot.fusion != genome::FusionKind::sum) {
    backend_.fill(slot.dy0, N * D, 0.0f);
    backend_.fill(slot.dy1, N * D, 0.0f);
    if (slot.fusion == genome::FusionKind::mean) backend_.fill(slot.dmix_gate, D, 0.0f);
    backend_.gate_mix_backward(slot.dy0, slot.dy1, slot.dmix_gate, dres_, slot.y0, slot.y1, slot.mix_gate, N,
                               D);
    d0 = slot.dy0;
    d1 = slot.dy1;
  }
  slot.ops[0]->backward(backend_, normed, d0, dnormed_, /*accumulate_dx=*/false);
  slot.ops[1]->backward(backend_, normed, d1, dnormed_, /*accumulate_dx=*/true);
}

Model::~Model() = default;

double Model::forward(const int32_t* inputs, const int32_t* targets) {
  const int64_t N = shape_.tokens();
  set_batch(inputs, targets);
  forward_on_device();
  backend_.copy_to_host(host_losses_.data(), losses_, N * sizeof(float));
  double sum = 0.0;                       // in token order: deterministic
  for (float l : host_losses_) sum += l;  // ignored targets add 0
  return scored_targets_ > 0 ? sum / double(scored_targets_) : 0.0;
}

void Model::set_batch(const int32_t* inputs, const int32_t* targets) {
  const int64_t N = shape_.tokens();
  if (N == 0) throw std::logic_error("Model::set_batch: no training shape planned");
  std::copy(inputs, inputs + N, host_tokens_.begin());
  std::copy(targets, targets + N, host_tokens_.begin() + N);
  scored_targets_ = std::count_if(targets, targets + N, [](int32_t t) { return t >= 0; });
  backend_.copy_to_device(inputs_, host_tokens_.data(), host_tokens_.size() * sizeof(int32_t));
}

void Model::send_batch(HostStaging& staging, std::size_t offset) {
  const int64_t N = shape_.tokens();
  if (N == 0) throw std::logic_error("Model::send_batch: no training shape planned");
  const auto* targets = reinterpret_cast<const int32_t*>(staging.data() + offset) + N;
  scored_targets_ = std::count_if(targets, targets + N, [](int32_t t) { return t >= 0; });
  staging.to_device(inputs_, offset, std::size_t(2 * N) * sizeof(int32_t));
}

void Model::forward_on_device() {
  const int64_t N = shape_.tokens(), D = d_, V = vocab_;
  if (N == 0) throw std::logic_error("Model::forward: no training shape planned");
  // The weights' bf16 shadows follow the fp32 master weights: whatever changed
  // them since (AdamW, a test, a checkpoint), this forward and its backward read
  // this rounding.
  if (values16_) backend_.round_to_bf16(values16_, values_, params_.count());
  backend_.embedding_forward({slots_[0].x, N, D}, {embedding_.value, V, D}, inputs_);
  backend_.rmsnorm_forward({slots_[0].normed_values(), N, D}, slots_[0].rstd, {slots_[0].x, N, D},
                           slots_[0].norm.value, eps_, slots_[0].normed16);
  for (std::size_t s = 0; s < slots_.size(); ++s) {
    Slot& slot = slots_[s];
    const OpInput normed(slot.normed_values(), slot.normed16);
    if (slot.fusion == genome::FusionKind::none) {
      slot.ops[0]->forward(backend_, normed, y_);
    } else {
      slot.ops[0]->forward(backend_, normed, slot.y0);
      slot.ops[1]->forward(backend_, normed, slot.y1);
      mix(slot, y_, slot.y0, slot.y1, N);
    }
    // The residual add and the next norm (the next slot's, or the final one) in one call.
    if (s + 1 < slots_.size()) {
      Slot& next = slots_[s + 1];
      backend_.add_rmsnorm_forward(next.x, {next.normed_values(), N, D}, next.rstd, slot.x, y_,
                                   next.norm.value, eps_, next.normed16);
    } else {
      backend_.add_rmsnorm_forward(x_out_, {final_, N, D}, final_rstd_, slot.x, y_, final_norm_.value, eps_,
                                   final16_);
    }
  }
  backend_.lm_head_forward(losses_, lse_, {logits_, N, V}, {final_, N, D, final16_}, embedding_.operand(V, D),
                           targets_);
  backend_.mean_to_device(&step_scalars_->out.loss, losses_, N);
}

double Model::auxiliary_loss() const {
  double sum = 0.0;
  for (const auto& slot : slots_)
    for (const auto& op : slot.ops) sum += op->auxiliary_loss();
  return sum;
}

std::vector<float> Model::logits_of_last_forward(int rows) {
  if (rows < 0 || rows > shape_.batch)
    throw std::invalid_argument("Model::logits_of_last_forward: " + std::to_string(rows) +
                                " rows, the model is planned for " + std::to_string(shape_.batch));
  const int64_t n = int64_t(rows) * shape_.seq, D = d_, V = vocab_;
  std::vector<float> out(static_cast<std::size_t>(n * V));
  if (n == 0) return out;
  const std::size_t bytes = out.size() * sizeof(float);
  auto* logits = static_cast<float*>(backend_.allocate(bytes));
  try {
    backend_.matmul({logits, n, V}, {final_, n, D}, {embedding_.value, V, D});
    backend_.copy_to_host(out.data(), logits, bytes);
  } catch (...) {
    backend_.free(logits);
    throw;
  }
  backend_.free(logits);
  return out;
}

void Model::zero_grads() { backend_.fill(grads_, params_.count(), 0.0f); }

void Model::backward() {
  const int64_t N = shape_.tokens(), D = d_, V = vocab_;
  // dlogits overwrites the logits (they are not needed any more).
  backend_.fill(dnormed_, N * D, 0.0f);
  backend_.lm_head_backward({dnormed_, N, D}, {embedding_.grad, V, D}, {logits_, N, V}, {final_, N, D},
                            {embedding_.value, V, D}, lse_, targets_,
                            scored_targets_ > 0 ? float(1.0 / double(scored_targets_)) : 0.0f);
  backend_.rmsnorm_backward({dres_, N, D}, final_norm_.grad, {dnormed_, N, D}, {x_out_, N, D},
                            final_norm_.value, final_rstd_, dres16_, /*accumulate_dx=*/false);
  // dres is the gradient of the residual stream; each slot adds its branch.
  for (std::size_t s = slots_.size(); s-- > 0;) {
    Slot& slot = slots_[s];
    slot_backward(slot);
    backend_.rmsnorm_backward({dres_, N, D}, slot.norm.grad, {dnormed_, N, D}, {slot.x, N, D},
                              slot.norm.value, slot.rstd, s > 0 ? dres16_ : nullptr, /*accumulate_dx=*/true);
  }
  backend_.embedding_backward({embedding_.grad, V, D}, {dres_, N, D}, inputs_);
}

void Model::reset_decode() { arena_.reset_state(); }

void Model::decode_step(const int32_t* tokens, int64_t position, float* logits) {
  set_decode_tokens(tokens);
  decode_on_device(position);
  if (logits) read_decode_logits(logits);
}

void Model::set_decode_tokens(const int32_t* tokens) {
  const int64_t B = shape_.decode_batch;
  if (B == 0) throw std::logic_error("Model::decode_step: no decode shape planned");
  backend_.copy_to_device(dec_tokens_, tokens, B * sizeof(int32_t));
}

void Model::read_decode_logits(float* logits) {
  backend_.copy_to_host(logits, dec_logits_, shape_.decode_batch * int64_t(vocab_) * sizeof(float));
}

void Model::decode_on_device(int64_t position) {
  const int64_t B = shape_.decode_batch, D = d_, V = vocab_;
  if (B == 0) throw std::logic_error("Model::decode_step: no decode shape planned");
  backend_.embedding_forward({dec_x_, B, D}, {embedding_.value, V, D}, dec_tokens_);
  for (auto& slot : slots_) {
    backend_.rmsnorm_forward({dec_normed_, B, D}, dec_rstd_, {dec_x_, B, D}, slot.norm.value, eps_);
    if (slot.fusion == genome::FusionKind::none) {
      slot.ops[0]->decode_step(backend_, dec_normed_, dec_y_, position);
    } else {
      slot.ops[0]->decode_step(backend_, dec_normed_, slot.dec_y0, position);
      slot.ops[1]->decode_step(backend_, dec_normed_, slot.dec_y1, position);
      mix(slot, dec_y_, slot.dec_y0, slot.dec_y1, B);
    }
    backend_.add(dec_x_, dec_x_, dec_y_, B * D);
  }
  backend_.rmsnorm_forward({dec_normed_, B, D}, dec_rstd_, {dec_x_, B, D}, final_norm_.value, eps_);
  backend_.matmul({dec_logits_, B, V}, {dec_normed_, B, D}, {embedding_.value, V, D});
}

int64_t Model::decode_state_elements(int64_t context) const {
  int64_t n = 0;
  for (const auto& slot : slots_)
    for (const auto& op : slot.ops) n += op->decode_state().elements(context);
  return n;
}

}  // namespace livs::evaluator
