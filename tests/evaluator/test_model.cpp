// The assembled model: the whole loss's gradient against finite differences,
// decode against the parallel forward, and the planned decode state's size.
#include <doctest/doctest.h>

#include <cmath>

#include "evaluator/cpu/cpu_backend.hpp"
#include "evaluator/model.hpp"
#include "tests/evaluator/gradient_check.hpp"
#include "tests/evaluator/mix_checks.hpp"
#include "tests/evaluator/spec_builders.hpp"

using namespace livs::evaluator;
using namespace livs::evaluator::testing;

namespace {

// The mean cross-entropy's gradient against finite differences for every
// weight of a 2-layer transformer (13 tokens, batch 2 x 6); `ignored` lists
// the targets set to -1.
void check_transformer_gradient(const std::vector<int>& ignored) {
  const int vocab = 13;
  auto spec = transformer_spec(16, 2, 4, 2, 24, vocab, 4, true);
  CpuBackend backend;
  Model model(spec, backend, {2, 6}, 7);
  randomize(model);
  auto inputs = random_tokens(12, vocab, 1), targets = random_tokens(12, vocab, 2);
  for (int i : ignored) targets[i] = -1;
  auto loss = [&] { return model.forward(inputs.data(), targets.data()); };
  const double mean = loss();
  double sum = 0;
  for (int i = 0; i < 12; ++i) {
    if (targets[i] < 0) CHECK(model.token_losses()[i] == 0.0f);
    sum += model.token_losses()[i];
  }
  CHECK(mean == doctest::Approx(sum / double(12 - ignored.size())));
  model.zero_grads();
  model.backward();
  for (const auto& e : model.parameters().entries()) {
    std::vector<float> g(model.grads() + e.offset, model.grads() + e.offset + e.numel);
    check_gradient(e.name, model.values() + e.offset, g, loss, {1e-2, 1e-2, 1e-3, 24});
  }
}

}  // namespace

TEST_CASE("model gradient of the mean cross-entropy against finite differences") {
  check_transformer_gradient({});
}

TEST_CASE("model with ignored targets: the mean over the others, and its gradient") {
  check_transformer_gradient({0, 3, 4, 9, 11});
}

TEST_CASE("model decode reproduces the forward's per-token losses and holds the analytic cache") {
  for (int window : {0, 4}) {
    CAPTURE(window);
    check_model_decode(transformer_spec(16, 2, 4, 2, 32, 32, window), 2, 10);
  }
}

TEST_CASE("parameter counts and the memory plan") {
  auto spec = transformer_spec(32, 2, 4, 4, 64);
  CpuBackend backend;
  Model model(spec, backend, {4, 16}, 1);
  CHECK(model.parameters().count() == spec.params_total());
  CHECK(model.parameters().decayed().count + model.parameters().not_decayed().count == spec.params_total());
  // Norm gains are the only weights without decay: one per slot and the final norm.
  CHECK(model.parameters().not_decayed().count == (4 + 1) * 32);
  CHECK(model.arena_bytes() >= int64_t(4 * spec.params_total() * sizeof(float)));
}

TEST_CASE("initialisation: seeded, N(0, 0.02) projections, scaled out-projections, unit gains") {
  auto spec = transformer_spec(64, 2, 4, 4, 128);
  CpuBackend backend;
  Model a(spec, backend, {1, 8}, 42), b(spec, backend, {1, 8}, 42), c(spec, backend, {1, 8}, 43);
  const int64_t P = a.parameters().count();
  CHECK(std::equal(a.values(), a.values() + P, b.values()));
  CHECK_FALSE(std::equal(a.values(), a.values() + P, c.values()));
  for (const auto& e : a.parameters().entries()) {
    CAPTURE(e.name);
    double sq = 0;
    for (int64_t i = 0; i < e.numel; ++i) sq += double(a.values()[e.offset + i]) * a.values()[e.offset + i];
    const double rms = std::sqrt(sq / double(e.numel));
    if (e.init == Init::ones) CHECK(rms == doctest::Approx(1.0));
    if (e.init == Init::normal) CHECK(rms == doctest::Approx(0.02).epsilon(0.1));
    if (e.init == Init::out_projection) CHECK(rms == doctest::Approx(0.02 / std::sqrt(8.0)).epsilon(0.1));
  }
}

TEST_CASE("featurizer sharing: one copy of the weights, gradients from every user") {
  const int vocab = 11;
  auto spec = transformer_spec(16, 2, 4, 2, 24, vocab);
  auto& sharer = spec.slots[2].ops[0];  // the second sa reuses the first one's projections
  for (const auto& w : sharer.weights) sharer.shared_weight_names.push_back(w.name);
  sharer.weights.clear();
  sharer.featurizer_source = {0, 0};
  CpuBackend backend;
  Model model(spec, backend, {2, 5}, 3);
  CHECK(model.parameters().count() == spec.params_total());
  randomize(model);
  auto inputs = random_tokens(10, vocab, 8), targets = random_tokens(10, vocab, 9);
  auto loss = [&] { return model.forward(inputs.data(), targets.data()); };
  loss();
  model.zero_grads();
  model.backward();
  for (const auto& e : model.parameters().entries()) {
    if (e.name.rfind("slot0.op0.", 0) != 0) continue;
    CHECK(e.users.size() == 2);
    std::vector<float> g(model.grads() + e.offset, model.grads() + e.offset + e.numel);
    check_gradient(e.name, model.values() + e.offset, g, loss, {1e-2, 1e-2, 1e-3, 24});
  }
}
