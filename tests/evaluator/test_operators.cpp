// Operators (sa, swiglu) through the Operator interface: backward against
// finite differences for the input and every weight, decode step by step
// against the parallel forward, and the decode state's size.
#include <doctest/doctest.h>

#include "evaluator/cpu/cpu_backend.hpp"
#include "evaluator/operator.hpp"
#include "tests/evaluator/gradient_check.hpp"
#include "tests/evaluator/mix_checks.hpp"
#include "tests/evaluator/spec_builders.hpp"

using namespace livs::evaluator;
using namespace livs::evaluator::testing;
namespace genome = livs::genome;

TEST_CASE("sa backward against finite differences: MHA") { check_op_gradients(sa_op(8, 2, 2), 8, 2, 6); }

TEST_CASE("sa backward against finite differences: GQA with a sliding window") {
  check_op_gradients(sa_op(16, 4, 2, 3), 16, 2, 7);
}

TEST_CASE("sa backward against finite differences: MQA with qk-norm") {
  check_op_gradients(sa_op(16, 4, 1, 0, true), 16, 2, 5);
}

TEST_CASE("sa backward against finite differences: no RoPE") {
  check_op_gradients(sa_op(8, 2, 1, 0, false, false), 8, 1, 6);
}

TEST_CASE("swiglu backward against finite differences") { check_op_gradients(swiglu_op(8, 12), 8, 2, 3); }

TEST_CASE("sa decode equals the parallel forward: global, GQA and qk-norm") {
  check_op_decode(sa_op(16, 4, 2, 0, true), 16, 2, 11);
}

TEST_CASE("sa decode equals the parallel forward: sliding window in a ring buffer") {
  check_op_decode(sa_op(16, 4, 1, 4), 16, 3, 13);
}

TEST_CASE("swiglu decode equals the forward and holds no state") {
  check_op_decode(swiglu_op(8, 16), 8, 2, 4);
}

TEST_CASE("weights missing from the ModelSpec or of the wrong shape are refused") {
  ParameterStore params;
  auto spec = sa_op(16, 4, 2);
  spec.weights[1].shape = {16, 16};  // wk should be [8, 16] with 2 kv heads
  OpContext context(spec, 3, 0, 16, 4, 1e-5, params);
  CHECK_THROWS_WITH_AS(make_operator(context),
                       doctest::Contains("slot 3 op 0 (sa): weight \"wk\" has shape [16, 16]"),
                       std::invalid_argument);
  auto extra = swiglu_op(8, 4);
  extra.weights.push_back({"bias", {8}});
  OpContext extra_context(extra, 0, 0, 8, 1, 1e-5, params);
  CHECK_THROWS_WITH_AS(make_operator(extra_context), doctest::Contains("\"bias\""), std::invalid_argument);
  genome::OpSpec ssm;
  ssm.cls = genome::LivClass::ssm;
  OpContext ssm_context(ssm, 0, 0, 8, 1, 1e-5, params);
  CHECK_THROWS_WITH_AS(make_operator(ssm_context), doctest::Contains("lists no weight \"in_proj\""),
                       std::invalid_argument);
}
