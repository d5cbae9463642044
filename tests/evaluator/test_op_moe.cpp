// moe: backward (the load-balancing loss included) against finite
// differences, decode equals the forward, routing and dispatch checked
// against their definitions, and the auxiliary loss reaching the model.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <numeric>

#include "tests/evaluator/mix_checks.hpp"

using namespace livs::evaluator;
using namespace livs::evaluator::testing;
namespace genome = livs::genome;

TEST_CASE("moe backward against finite differences: 4 experts, top-2") {
  check_op_gradients(op_spec(8, moe_gene(4, 2, 12)), 8, 2, 5);
}

TEST_CASE("moe backward against finite differences: 3 experts, top-1 and top-3 (dense)") {
  check_op_gradients(op_spec(8, moe_gene(3, 1, 8)), 8, 1, 7);
  check_op_gradients(op_spec(16, moe_gene(3, 3, 8)), 16, 2, 3);
}

TEST_CASE(
    "moe backward with the gate and up input gradients apart (LIVSEARCH_MOE_SPLIT=1) against finite "
    "differences") {
  // The up product's input gradient goes to rows of its own and the gather
  // adds them (op_moe.cpp): leaving them out or adding them twice fails here.
  REQUIRE(setenv("LIVSEARCH_MOE_SPLIT", "1", 1) == 0);
  check_op_gradients(op_spec(8, moe_gene(4, 2, 12)), 8, 2, 5);
  check_op_gradients(op_spec(16, moe_gene(3, 3, 8)), 16, 2, 3);
  REQUIRE(unsetenv("LIVSEARCH_MOE_SPLIT") == 0);
}

TEST_CASE("moe decode equals the forward and holds no state") {
  const auto spec = op_spec(16, moe_gene(4, 2, 16));
  CHECK(spec.state.elements(100) == 0);
  check_op_decode(spec, 16, 3, 5);
}

TEST_CASE("moe routing: softmax, top-k with ties to the lower index, renormalised weights, fractions") {
  CpuBackend be;
  const int rows = 3, experts = 4, k = 2;
  std::vector<float> logits = {0.0f, 1.0f, 1.0f, -1.0f,  // tie between 1 and 2: expert 1 first
                               2.0f, 0.0f, 0.0f, 3.0f,   //
                               0.5f, 0.5f, 0.5f, 0.5f};
  std::vector<float> probs(rows * experts), weight(rows * k), fractions(experts);
  std::vector<int32_t> index(rows * k);
  be.moe_route(probs.data(), index.data(), weight.data(), {logits.data(), rows, experts}, k);
  CHECK(index == std::vector<int32_t>{1, 2, 3, 0, 0, 1});
  CHECK(weight[0] == doctest::Approx(0.5));
  const double e3 = std::exp(3.0), e2 = std::exp(2.0);
  CHECK(weight[2] == doctest::Approx(e3 / (e3 + e2)));
  CHECK(weight[4] == doctest::Approx(0.5));
  std::vector<int32_t> order(rows * k), position(rows * k), offsets(experts + 1);
  be.moe_dispatch(order.data(), position.data(), offsets.data(), fractions.data(), index.data(), rows, k,
                  experts);
  // f_e: assignments per expert over rows * k = 6: {2, 2, 1, 1}.
  CHECK(fractions == std::vector<float>{2.0f / 6, 2.0f / 6, 1.0f / 6, 1.0f / 6});
  CHECK(offsets == std::vector<int32_t>{0, 2, 4, 5, 6});
  CHECK(order == std::vector<int32_t>{3, 4, 0, 5, 1, 2});  // by expert, token order inside one
  for (int a = 0; a < rows * k; ++a) CHECK(order[position[a]] == a);
}

TEST_CASE("moe: the load-balancing loss is 0.01 * E * sum f_e P_e and reaches the model") {
  auto spec = decode_slots(16, {striped(moe_gene(4, 2, 16)), striped(swiglu_gene(16))});
  CpuBackend backend;
  Model model(spec, backend, {2, 8}, 3);
  auto inputs = random_tokens(16, 256, 1), targets = random_tokens(16, 256, 2);
  model.forward(inputs.data(), targets.data());
  // Balanced routing gives 0.01; any routing gives at least that much.
  CHECK(model.auxiliary_loss() >= 0.01 - 1e-6);
  CHECK(model.auxiliary_loss() <= 0.01 * 4 + 1e-6);
  CHECK(model.auxiliary_loss() == doctest::Approx(model.op(0).auxiliary_loss()));
}

TEST_CASE("moe inside a model: gradient of cross-entropy + load-balancing loss against finite differences") {
  auto spec = decode_slots(8, {striped(sa_gene(2, 2)), striped(moe_gene(3, 2, 8))});
  spec.vocab = 11;
  spec.weights[0].shape[0] = 11;
  check_model_gradients(spec, 2, 4, {1e-3});  // a small step: a larger one flips routing decisions
}

TEST_CASE("moe grouped products against a per-expert loop, with an empty expert and rows past the last") {
  CpuBackend be;
  const int experts = 4;
  const int64_t capacity = 15, in = 7, out = 6;
  // Expert 1 has no rows; rows 13 and 14 belong to no expert and stay untouched.
  const std::vector<int32_t> offsets = {0, 5, 5, 12, 13};
  const ExpertRows groups{offsets.data(), experts};
  const auto expert_of = [&](int64_t r) {
    int e = 0;
    while (e < experts && r >= offsets[e + 1]) ++e;
    return e;  // experts: no expert
  };
  const auto x = random_vector(capacity * in, 51), w = random_vector(experts * out * in, 52),
             dy = random_vector(capacity * out, 53), start_y = random_vector(capacity * out, 54),
             start_dx = random_vector(capacity * in, 55), start_dw = random_vector(experts * out * in, 56);
  const auto close = [](double got, double want) {
    return std::fabs(got - want) <= 1e-5 * (1.0 + std::fabs(want));
  };

  for (bool accumulate : {false, true}) {
    CAPTURE(accumulate);
    auto y = start_y, dx = start_dx;
    be.grouped_matmul({y.data(), capacity, out}, {x.data(), capacity, in}, {w.data(), out, in}, groups,
                      accumulate);
    be.grouped_matmul_backward_input({dx.data(), capacity, in}, {dy.data(), capacity, out},
                                     {w.data(), out, in}, groups, accumulate);
    for (int64_t r = 0; r < capacity; ++r) {
      const int e = expert_of(r);
      const float* we = w.data() + e * out * in;
      for (int64_t o = 0; o < out; ++o) {
        double want = accumulate || e == experts ? start_y[r * out + o] : 0.0;
        if (e < experts)
          for (int64_t i = 0; i < in; ++i) want += double(x[r * in + i]) * we[o * in + i];
        CHECK(close(y[r * out + o], want));
      }
      for (int64_t i = 0; i < in; ++i) {
        double want = accumulate || e == experts ? start_dx[r * in + i] : 0.0;
        if (e < experts)
          for (int64_t o = 0; o < out; ++o) want += double(dy[r * out + o]) * we[o * in + i];
        CHECK(close(dx[r * in + i], want));
      }
    }
  }

  auto dw = start_dw;
  be.grouped_matmul_backward_weight({dw.data(), out, in}, {dy.data(), capacity, out},
                                    {x.data(), capacity, in}, groups);
  for (int e = 0; e < experts; ++e)
    for (int64_t o = 0; o < out; ++o)
      for (int64_t i = 0; i < in; ++i) {
        const int64_t at = (e * out + o) * in + i;
        double want = start_dw[at];
        for (int64_t r = offsets[e]; r < offsets[e + 1]; ++r) want += double(dy[r * out + o]) * x[r * in + i];
        if (e == 1)
          CHECK(dw[at] == start_dw[at]);  // no rows: unchanged, bit for bit
        else
          CHECK(close(dw[at], want));
      }
}

TEST_CASE("moe load-balancing loss on the device: 0.01 * E * sum f_e P_e, P_e the mean probability") {
  CpuBackend be;
  const std::vector<float> fractions = {0.5f, 0.25f, 0.25f};  // 3 experts
  const std::vector<float> probs = {0.1f, 0.2f, 0.7f,         // 2 rows: P = {0.2, 0.3, 0.5}
                                    0.3f, 0.4f, 0.3f};
  double aux = -1.0;
  be.moe_balance_loss(&aux, fractions.data(), {probs.data(), 2, 3}, 0.01f);
  CHECK(aux == doctest::Approx(0.01 * 3 * (0.5 * 0.2 + 0.25 * 0.3 + 0.25 * 0.5)));
}
