// The differential form (y = y1 - lambda * y2 from two feature groups) of sa
// and linattn: backward against finite differences, decode equals forward,
// and the decode state holds both groups (sa: K twice and V once).
#include <doctest/doctest.h>

#include "tests/evaluator/mix_checks.hpp"

using namespace livs::evaluator;
using namespace livs::evaluator::testing;
namespace genome = livs::genome;

TEST_CASE("differential sa backward against finite differences: MHA") {
  check_op_gradients(op_spec(8, sa_gene(2, 2, 0, false, true)), 8, 2, 5);
}

TEST_CASE("differential sa backward against finite differences: GQA, window, qk-norm") {
  check_op_gradients(op_spec(16, sa_gene(4, 2, 3, true, true)), 16, 1, 7);
}

TEST_CASE("differential sa decode equals the forward, the cache holds K1, K2 and V") {
  for (int window : {0, 4}) {
    CAPTURE(window);
    const auto spec = op_spec(16, sa_gene(4, 2, window, false, true));
    CHECK(spec.state.per_token_elements == 3 * 2 * 4);
    check_op_decode(spec, 16, 2, 9);
  }
}

TEST_CASE("differential linattn backward against finite differences: ungated and GLA-gated") {
  check_op_gradients(op_spec(8, linattn_gene(2, genome::FeatureMap::elu_plus_one, false, true)), 8, 2, 5);
  check_op_gradients(op_spec(16, linattn_gene(2, genome::FeatureMap::elu_plus_one, true, true)), 16, 1, 6);
}

TEST_CASE("differential linattn decode equals the forward and holds two states") {
  const auto spec = op_spec(16, linattn_gene(2, genome::FeatureMap::elu_plus_one, true, true));
  CHECK(spec.state.fixed_elements == 2 * 2 * 8 * 8);
  check_op_decode(spec, 16, 2, 8);
}

TEST_CASE("differential: lambda starts at 0.8 (its stored offset is 0)") {
  auto spec = decode_slots(16, {striped(sa_gene(2, 2, 0, false, true))});
  CpuBackend backend;
  Model model(spec, backend, {1, 4}, 1);
  bool found = false;
  for (const auto& e : model.parameters().entries())
    if (e.name == "slot0.op0.lambda") {
      found = true;
      for (int64_t i = 0; i < e.numel; ++i) CHECK(model.values()[e.offset + i] == 0.0f);
    }
  CHECK(found);
}
