#pragma once
// Checks shared by the linattn, moe, differential, fusion and sharing tests:
// specs decoded from genomes (so the genome's weight lists and decode-state
// formulas are exercised too), operator- and model-level gradients against
// finite differences, and decode token by token against the parallel forward.
#include <doctest/doctest.h>

#include <cmath>
#include <memory>
#include <vector>

#include "evaluator/cpu/cpu_backend.hpp"
#include "evaluator/model.hpp"
#include "evaluator/operator.hpp"
#include "genome/decode.hpp"
#include "genome/genome.hpp"
#include "tests/evaluator/gradient_check.hpp"

namespace livs::evaluator::testing {

inline genome::OpGene linattn_gene(int heads, genome::FeatureMap map, bool gated, bool differential = false) {
  genome::OpGene op;
  op.cls = genome::LivClass::linattn;
  op.linattn = {heads, map, gated};
  op.differential = differential;
  return op;
}

inline genome::OpGene sa_gene(int heads, int kv_heads, int window = 0, bool qk_norm = false,
                              bool differential = false) {
  genome::OpGene op;
  op.cls = genome::LivClass::sa;
  op.sa = {heads, kv_heads, window, qk_norm, true};
  op.differential = differential;
  return op;
}

inline genome::OpGene moe_gene(int experts, int top_k, int hidden) {
  genome::OpGene op;
  op.cls = genome::LivClass::moe;
  op.moe = {experts, top_k, hidden};
  return op;
}

inline genome::OpGene swiglu_gene(int hidden) {
  genome::OpGene op;
  op.cls = genome::LivClass::swiglu;
  op.swiglu.hidden = hidden;
  return op;
}

inline genome::Slot striped(genome::OpGene op) { return {genome::FusionKind::none, {std::move(op)}}; }
inline genome::Slot fused(genome::FusionKind kind, genome::OpGene a, genome::OpGene b) {
  return {kind, {std::move(a), std::move(b)}};
}

inline genome::ModelSpec decode_slots(int d_model, std::vector<genome::Slot> slots) {
  genome::Genome g;
  g.d_model = d_model;
  g.vocab = 256;
  g.slots = std::move(slots);
  return genome::decode(g);
}

// The spec of one operator (the first of the genome's only slot).
// Short convolutions and gates (sa's, linattn's, deltanet's) make the loss
// strongly curved at the tests' large weights: their finite differences take
// a smaller step than the default 1e-2.
constexpr double kGatedConvFdStep = 3e-3;

// A spec with a small vocabulary (embedding rows cut to match), so that
// finite differences over whole models stay cheap.
inline genome::ModelSpec small_vocab(genome::ModelSpec spec, int vocab = 13) {
  spec.vocab = vocab;
  spec.weights[0].shape[0] = vocab;
  return spec;
}

inline genome::OpSpec op_spec(int d_model, const genome::OpGene& op) {
  return decode_slots(d_model, {striped(op)}).slots[0].ops[0];
}

// One operator with its own parameters and arena, weights drawn larger than
// the training initialisation so that every term of the backward matters.
struct MixOpHarness {
  CpuBackend backend;
  ParameterStore params;
  Arena arena{backend};
  std::unique_ptr<Operator> op;
  float *values = nullptr, *grads = nullptr;

  MixOpHarness(const genome::OpSpec& spec, int d, const PlanShape& shape, double weight_scale = 0.4) {
    OpContext context(spec, 0, 0, d, 2, 1e-5, params);
    op = make_operator(context);
    arena.reserve(&values, params.count());
    arena.reserve(&grads, params.count());
    op->plan(arena, shape);
    arena.allocate();
    params.bind(values, grads);
    auto w = random_vector(params.count(), 99, weight_scale);
    for (const auto& e : params.entries())
      for (int64_t i = 0; i < e.numel; ++i)
        values[e.offset + i] = e.init == Init::ones ? 1.0f + 0.2f * w[e.offset + i] : w[e.offset + i];
  }
};

// d(sum r . y + auxiliary loss) for the input and every weight.
inline void check_op_gradients(const genome::OpSpec& spec, int d, int batch, int seq,
                               const GradientCheck& c = {}, double weight_scale = 0.4) {
  MixOpHarness h(spec, d, {batch, seq}, weight_scale);
  const int64_t n = int64_t(batch) * seq * d;
  auto x = random_vector(n, 31), r = random_vector(n, 32);
  std::vector<float> y(n), dx(n, 0.0f);
  auto loss = [&] {
    h.op->forward(h.backend, x.data(), y.data());
    return weighted_sum(y.data(), r) + h.op->auxiliary_loss();
  };
  loss();
  std::fill(h.grads, h.grads + h.params.count(), 0.0f);
  h.op->backward(h.backend, x.data(), r.data(), dx.data());
  check_gradient("dx", x.data(), dx, loss, c);
  for (const auto& e : h.params.entries()) {
    std::vector<float> g(h.grads + e.offset, h.grads + e.offset + e.numel);
    check_gradient(e.name, h.values + e.offset, g, loss, c);
  }
}

// Decode token by token gives what the parallel forward gives, and the state
// held is the analytic one, which is the ModelSpec's.
inline void check_op_decode(const genome::OpSpec& spec, int d, int batch, int seq) {
  MixOpHarness h(spec, d, {batch, seq, batch, seq});
  const int64_t n = int64_t(batch) * seq * d;
  auto x = random_vector(n, 41);
  std::vector<float> y(n), xt(batch * d), yt(batch * d);
  h.op->forward(h.backend, x.data(), y.data());
  h.arena.reset_state();
  for (int t = 0; t < seq; ++t) {
    for (int b = 0; b < batch; ++b)
      std::copy_n(x.data() + (int64_t(b) * seq + t) * d, d, xt.data() + int64_t(b) * d);
    h.op->decode_step(h.backend, xt.data(), yt.data(), t);
    for (int b = 0; b < batch; ++b)
      for (int i = 0; i < d; ++i)
        REQUIRE(yt[b * d + i] ==
                doctest::Approx(y[(int64_t(b) * seq + t) * d + i]).epsilon(1e-4).scale(1e-3));
  }
  CHECK(h.arena.state_elements() == batch * h.op->decode_state().elements(seq));
  CHECK(h.op->decode_state().elements(seq) == spec.state.elements(seq));
}

inline std::vector<int32_t> random_tokens(std::size_t n, int vocab, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = int32_t(rng.integer(0, vocab - 1));
  return t;
}

// Larger weights than the training initialisation, so gradients are far from zero.
inline void randomize(Model& model, double scale = 0.3) {
  auto w = random_vector(model.parameters().count(), 5, scale);
  for (const auto& e : model.parameters().entries())
    for (int64_t i = 0; i < e.numel; ++i)
      model.values()[e.offset + i] = e.init == Init::ones ? 1.0f + scale * w[e.offset + i] : w[e.offset + i];
}

// The whole training objective (cross-entropy + auxiliary losses) against
// finite differences for every weight of the model.
inline void check_model_gradients(const genome::ModelSpec& spec, int batch, int seq,
                                  const GradientCheck& c = {}) {
  CpuBackend backend;
  Model model(spec, backend, {batch, seq}, 7);
  randomize(model);
  auto inputs = random_tokens(batch * seq, spec.vocab, 1),
       targets = random_tokens(batch * seq, spec.vocab, 2);
  auto loss = [&] { return model.forward(inputs.data(), targets.data()) + model.auxiliary_loss(); };
  loss();
  model.zero_grads();
  model.backward();
  // The absolute tolerance follows the largest gradient of the whole model:
  // a weight whose gradient is tiny everywhere (a GLA gate) is otherwise
  // judged against fp32 rounding noise of the loss.
  double global = 0.0;
  for (int64_t i = 0; i < model.parameters().count(); ++i)
    global = std::max(global, double(std::fabs(model.grads()[i])));
  for (const auto& e : model.parameters().entries()) {
    std::vector<float> g(model.grads() + e.offset, model.grads() + e.offset + e.numel);
    double local = 0.0;
    for (float x : g) local = std::max(local, double(std::fabs(x)));
    GradientCheck tensor = c;
    if (local > 0.0) tensor.atol = c.atol * std::max(1.0, 0.1 * global / local);
    check_gradient(e.name, model.values() + e.offset, g, loss, tensor);
  }
}

// Model decode reproduces the forward's per-token losses, and the state the
// arena holds is the analytic state of the ModelSpec.
inline void check_model_decode(const genome::ModelSpec& spec, int batch, int seq) {
  CpuBackend backend;
  Model model(spec, backend, {batch, seq, batch, seq}, 11);
  randomize(model);
  const int vocab = spec.vocab;
  auto inputs = random_tokens(batch * seq, vocab, 3), targets = random_tokens(batch * seq, vocab, 4);
  model.forward(inputs.data(), targets.data());
  const auto losses = model.token_losses();
  model.reset_decode();
  std::vector<float> logits(std::size_t(batch) * vocab);
  std::vector<int32_t> tokens(batch);
  for (int t = 0; t < seq; ++t) {
    for (int b = 0; b < batch; ++b) tokens[b] = inputs[b * seq + t];
    model.decode_step(tokens.data(), t, logits.data());
    for (int b = 0; b < batch; ++b) {
      double mx = -1e30, sum = 0;
      for (int v = 0; v < vocab; ++v) mx = std::max(mx, double(logits[b * vocab + v]));
      for (int v = 0; v < vocab; ++v) sum += std::exp(logits[b * vocab + v] - mx);
      const double ce = mx + std::log(sum) - logits[b * vocab + targets[b * seq + t]];
      REQUIRE(ce == doctest::Approx(losses[b * seq + t]).epsilon(1e-4));
    }
  }
  CHECK(model.planned_state_elements() == batch * model.decode_state_elements(seq));
  CHECK(model.decode_state_elements(seq) == spec.decode_state_elements(seq));
}

}  // namespace livs::evaluator::testing
