// Operators (sa, swiglu) through the Operator interface: backward against
// finite differences for the input and every weight, decode step by step
// against the parallel forward, and the decode state's size.
#include <doctest/doctest.h>

#include "evaluator/cpu/cpu_backend.hpp"
#include "evaluator/operator.hpp"
#include "tests/evaluator/gradient_check.hpp"
#include "tests/evaluator/spec_builders.hpp"

using namespace livs::evaluator;
using namespace livs::evaluator::testing;
namespace genome = livs::genome;

namespace {

// One operator with its own parameters and arena, weights drawn larger than
// the training initialisation so that every term of the backward matters.
struct OpHarness {
  CpuBackend backend;
  ParameterStore params;
  Arena arena{backend};
  std::unique_ptr<Operator> op;
  float *values = nullptr, *grads = nullptr;
  int d_model;

  OpHarness(const genome::OpSpec& spec, int d, const PlanShape& shape) : d_model(d) {
    OpContext context(spec, 0, 0, d, 2, 1e-5, params);
    op = make_operator(context);
    arena.reserve(&values, params.count());
    arena.reserve(&grads, params.count());
    op->plan(arena, shape);
    arena.allocate();
    params.bind(values, grads);
    auto w = random_vector(params.count(), 99, 0.4);
    for (const auto& e : params.entries())
      for (int64_t i = 0; i < e.numel; ++i)
        values[e.offset + i] = e.init == Init::ones ? 1.0f + 0.2f * w[e.offset + i] : w[e.offset + i];
  }
};

void check_operator_gradients(const genome::OpSpec& spec, int d, int batch, int seq) {
  OpHarness h(spec, d, {batch, seq});
  const int64_t n = int64_t(batch) * seq * d;
  auto x = random_vector(n, 31), r = random_vector(n, 32);
  std::vector<float> y(n), dx(n, 0.0f);
  auto loss = [&] {
    h.op->forward(h.backend, x.data(), y.data());
    return weighted_sum(y.data(), r);
  };
  loss();
  std::fill(h.grads, h.grads + h.params.count(), 0.0f);
  h.op->backward(h.backend, x.data(), r.data(), dx.data());
  check_gradient("dx", x.data(), dx, loss);
  for (const auto& e : h.params.entries()) {
    std::vector<float> g(h.grads + e.offset, h.grads + e.offset + e.numel);
    check_gradient(e.name, h.values + e.offset, g, loss);
  }
}

// Decode token by token must give what the parallel forward gives.
void check_decode_equals_forward(const genome::OpSpec& spec, int d, int batch, int seq) {
  PlanShape shape{batch, seq, batch, seq};
  OpHarness h(spec, d, shape);
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
  // The state the operator holds is what it reports analytically.
  CHECK(h.arena.state_elements() == batch * h.op->decode_state().elements(seq));
  CHECK(h.op->decode_state().elements(seq) == spec.state.elements(seq));
}

}  // namespace

TEST_CASE("sa backward against finite differences: MHA") {
  check_operator_gradients(sa_op(8, 2, 2), 8, 2, 6);
}

TEST_CASE("sa backward against finite differences: GQA with a sliding window") {
  check_operator_gradients(sa_op(16, 4, 2, 3), 16, 2, 7);
}

TEST_CASE("sa backward against finite differences: MQA with qk-norm") {
  check_operator_gradients(sa_op(16, 4, 1, 0, true), 16, 2, 5);
}

TEST_CASE("sa backward against finite differences: no RoPE") {
  check_operator_gradients(sa_op(8, 2, 1, 0, false, false), 8, 1, 6);
}

TEST_CASE("swiglu backward against finite differences") {
  check_operator_gradients(swiglu_op(8, 12), 8, 2, 3);
}

TEST_CASE("sa decode equals the parallel forward: global, GQA and qk-norm") {
  check_decode_equals_forward(sa_op(16, 4, 2, 0, true), 16, 2, 11);
}

TEST_CASE("sa decode equals the parallel forward: sliding window in a ring buffer") {
  check_decode_equals_forward(sa_op(16, 4, 1, 4), 16, 3, 13);
}

TEST_CASE("swiglu decode equals the forward and holds no state") {
  check_decode_equals_forward(swiglu_op(8, 16), 8, 2, 4);
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
