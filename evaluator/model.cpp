#include "evaluator/model.hpp"

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
    if (slot.ops.size() != 1 || slot.fusion != genome::FusionKind::none)
      throw std::invalid_argument(owner + ": fusion slots are not implemented by the evaluator yet");
    check_weight(slot.weights, owner, "norm", {D});
    params_.declare("slot" + std::to_string(s) + ".norm", {D}, Init::ones, false, &slots_[s].norm);
    OpContext context(slot.ops[0], s, 0, d_, n_slots, spec.norm_eps, params_);
    slots_[s].op = make_operator(context);
  }
  params_.declare("final_norm", {D}, Init::ones, false, &final_norm_);

  // The memory plan: parameters x4, then the training and decode buffers.
  const int64_t P = params_.count();
  for (float** block : {&values_, &grads_, &adam_m_, &adam_v_}) arena_.reserve(block, P);
  const int64_t N = shape_.tokens();
  if (N > 0) {
    arena_.reserve_tokens(&inputs_, N);
    arena_.reserve_tokens(&targets_, N);
    for (auto& slot : slots_) {
      arena_.reserve(&slot.x, N * D);
      arena_.reserve(&slot.normed, N * D);
      arena_.reserve(&slot.rstd, N);
    }
    for (float** b : {&x_out_, &y_, &final_, &dres_, &dnormed_}) arena_.reserve(b, N * D);
    arena_.reserve(&final_rstd_, N);
    arena_.reserve(&logits_, N * V);
    arena_.reserve(&lse_, N);
    arena_.reserve(&losses_, N);
    host_losses_.resize(static_cast<std::size_t>(N));
  }
  const int64_t B = shape_.decode_batch;
  if (B > 0) {
    if (shape_.decode_context <= 0) throw std::invalid_argument("decode planned without a context length");
    arena_.reserve_tokens(&dec_tokens_, B);
    for (float** b : {&dec_x_, &dec_normed_, &dec_y_}) arena_.reserve(b, B * D);
    arena_.reserve(&dec_rstd_, B);
    arena_.reserve(&dec_logits_, B * V);
  }
  for (auto& slot : slots_) slot.op->plan(arena_, shape_);
  arena_.allocate();
  params_.bind(values_, grads_);
  params_.initialize(backend_, init_seed, n_slots);
}

Model::~Model() = default;

double Model::forward(const int32_t* inputs, const int32_t* targets) {
  const int64_t N = shape_.tokens(), D = d_, V = vocab_;
  if (N == 0) throw std::logic_error("Model::forward: no training shape planned");
  backend_.copy_to_device(inputs_, inputs, N * sizeof(int32_t));
  backend_.copy_to_device(targets_, targets, N * sizeof(int32_t));
  backend_.embedding_forward({slots_[0].x, N, D}, {embedding_.value, V, D}, inputs_);
  for (std::size_t s = 0; s < slots_.size(); ++s) {
    Slot& slot = slots_[s];
    float* next = s + 1 < slots_.size() ? slots_[s + 1].x : x_out_;
    backend_.rmsnorm_forward({slot.normed, N, D}, slot.rstd, {slot.x, N, D}, slot.norm.value, eps_);
    slot.op->forward(backend_, slot.normed, y_);
    backend_.add(next, slot.x, y_, N * D);
  }
  backend_.rmsnorm_forward({final_, N, D}, final_rstd_, {x_out_, N, D}, final_norm_.value, eps_);
  backend_.matmul({logits_, N, V}, {final_, N, D}, {embedding_.value, V, D});
  backend_.cross_entropy_forward(losses_, lse_, {logits_, N, V}, targets_);
  backend_.copy_to_host(host_losses_.data(), losses_, N * sizeof(float));
  double sum = 0.0;  // in token order: deterministic
  for (float l : host_losses_) sum += l;
  return sum / double(N);
}

void Model::zero_grads() { backend_.fill(grads_, params_.count(), 0.0f); }

void Model::backward() {
  const int64_t N = shape_.tokens(), D = d_, V = vocab_;
  // dlogits overwrites the logits (they are not needed any more).
  backend_.cross_entropy_backward({logits_, N, V}, {logits_, N, V}, lse_, targets_, float(1.0 / double(N)));
  backend_.matmul_backward_weight({embedding_.grad, V, D}, {logits_, N, V}, {final_, N, D});
  backend_.fill(dnormed_, N * D, 0.0f);
  backend_.matmul_backward_input({dnormed_, N, D}, {logits_, N, V}, {embedding_.value, V, D});
  backend_.fill(dres_, N * D, 0.0f);
  backend_.rmsnorm_backward({dres_, N, D}, final_norm_.grad, {dnormed_, N, D}, {x_out_, N, D},
                            final_norm_.value, final_rstd_);
  // dres is the gradient of the residual stream; each slot adds its branch.
  for (std::size_t s = slots_.size(); s-- > 0;) {
    Slot& slot = slots_[s];
    backend_.fill(dnormed_, N * D, 0.0f);
    slot.op->backward(backend_, slot.normed, dres_, dnormed_);
    backend_.rmsnorm_backward({dres_, N, D}, slot.norm.grad, {dnormed_, N, D}, {slot.x, N, D},
                              slot.norm.value, slot.rstd);
  }
  backend_.embedding_backward({embedding_.grad, V, D}, {dres_, N, D}, inputs_);
}

void Model::reset_decode() { arena_.reset_state(); }

void Model::decode_step(const int32_t* tokens, int64_t position, float* logits) {
  const int64_t B = shape_.decode_batch, D = d_, V = vocab_;
  if (B == 0) throw std::logic_error("Model::decode_step: no decode shape planned");
  backend_.copy_to_device(dec_tokens_, tokens, B * sizeof(int32_t));
  backend_.embedding_forward({dec_x_, B, D}, {embedding_.value, V, D}, dec_tokens_);
  for (auto& slot : slots_) {
    backend_.rmsnorm_forward({dec_normed_, B, D}, dec_rstd_, {dec_x_, B, D}, slot.norm.value, eps_);
    slot.op->decode_step(backend_, dec_normed_, dec_y_, position);
    backend_.add(dec_x_, dec_x_, dec_y_, B * D);
  }
  backend_.rmsnorm_forward({dec_normed_, B, D}, dec_rstd_, {dec_x_, B, D}, final_norm_.value, eps_);
  backend_.matmul({dec_logits_, B, V}, {dec_normed_, B, D}, {embedding_.value, V, D});
  if (logits) backend_.copy_to_host(logits, dec_logits_, B * V * sizeof(float));
}

int64_t Model::decode_state_elements(int64_t context) const {
  int64_t n = 0;
  for (const auto& slot : slots_) n += slot.op->decode_state().elements(context);
  return n;
}

}  // namespace livs::evaluator
