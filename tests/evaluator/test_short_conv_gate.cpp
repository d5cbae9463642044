// The short-convolution featurizer of sa and linattn (a causal depthwise conv
// on q, k, v after their projections) and sa's output gate (gated attention):
// operator gradients against finite differences alone and with the other
// knobs (GQA, qk-norm, differential, GLA gating), decode against the parallel
// forward with the state equal to the analytic one, and feature sharing
// across slots whose K/V pass the convolution.
#include <doctest/doctest.h>

#include "tests/evaluator/mix_checks.hpp"

using namespace livs::evaluator;
using namespace livs::evaluator::testing;
namespace genome = livs::genome;

namespace {

genome::OpGene sa_with(int heads, int kv_heads, int conv, bool gate, bool qk_norm = false, bool diff = false,
                       int window = 0) {
  auto op = sa_gene(heads, kv_heads, window, qk_norm, diff);
  op.sa.short_conv = conv;
  op.sa.output_gate = gate;
  return op;
}

genome::OpGene linattn_with(int heads, bool gated, int conv, bool diff = false,
                            genome::FeatureMap map = genome::FeatureMap::elu_plus_one) {
  auto op = linattn_gene(heads, map, gated, diff);
  op.linattn.short_conv = conv;
  return op;
}

}  // namespace

TEST_CASE("sa short conv: backward against finite differences (MHA, kernel 4)") {
  check_op_gradients(op_spec(16, sa_with(2, 2, 4, false)), 16, 2, 6, {kGatedConvFdStep});
}

TEST_CASE("sa output gate: backward against finite differences (GQA, qk-norm)") {
  check_op_gradients(op_spec(16, sa_with(4, 2, 0, true, true)), 16, 2, 5, {kGatedConvFdStep});
}

TEST_CASE("sa short conv and output gate together: differential, kernel 2 and 3") {
  for (int k : {2, 3}) {
    CAPTURE(k);
    check_op_gradients(op_spec(16, sa_with(2, 1, k, true, false, true)), 16, 2, 5, {kGatedConvFdStep});
  }
}

TEST_CASE("sa short conv and output gate: decode equals the forward, state is the analytic one") {
  for (int k : {2, 4}) {
    for (int window : {0, 3}) {
      CAPTURE(k);
      CAPTURE(window);
      const auto spec = op_spec(16, sa_with(2, 1, k, true, true, window == 3, window));
      // conv state: (k-1) * (q channels + k channels + v channels)
      const int groups = window == 3 ? 2 : 1;
      CHECK(spec.state.fixed_elements == (k - 1) * (groups * 16 + groups * 8 + 8));
      check_op_decode(spec, 16, 2, 9);
    }
  }
}

TEST_CASE("linattn short conv: backward against finite differences, ungated and GLA-gated") {
  // The per-head norm curves strongly near small outputs (as in test_op_linattn): step 3e-3 at smaller
  // weights.
  check_op_gradients(op_spec(16, linattn_with(2, false, 4)), 16, 2, 6, {3e-3}, 0.25);
  check_op_gradients(op_spec(8, linattn_with(1, true, 3)), 8, 1, 8, {1e-2}, 0.2);
}

TEST_CASE("linattn short conv: differential with identity features against finite differences") {
  check_op_gradients(op_spec(16, linattn_with(2, false, 2, true, genome::FeatureMap::identity)), 16, 2, 5,
                     {3e-3}, 0.25);
}

TEST_CASE("linattn short conv: decode equals the forward, state = heads d_k d_v + conv history") {
  for (bool gated : {false, true}) {
    CAPTURE(gated);
    const auto spec = op_spec(16, linattn_with(2, gated, 4));
    CHECK(spec.state.fixed_elements == 2 * 8 * 8 + 3 * 3 * 16);
    check_op_decode(spec, 16, 3, 10);
  }
}

TEST_CASE("short conv with feature sharing: model gradients and decode (the sharer keeps its q history)") {
  auto shared = [](genome::OpGene op) {
    op.features = {0, 0};
    return op;
  };
  for (bool attention : {true, false}) {
    CAPTURE(attention);
    const auto source = attention ? sa_with(2, 1, 3, true) : linattn_with(2, true, 3);
    auto spec = small_vocab(
        decode_slots(8, {striped(source), striped(swiglu_gene(16)),
                         striped(shared(attention ? sa_with(2, 1, 3, false) : linattn_with(2, true, 3)))}));
    const auto& sharer = spec.slots[2].ops[0].state;
    CHECK(sharer.per_token_elements == 0);
    CHECK(sharer.fixed_elements == 2 * 8);  // (k - 1) * q channels
    check_model_gradients(spec, 2, 5, {kGatedConvFdStep});
    check_model_decode(
        small_vocab(decode_slots(16, {striped(attention ? sa_with(2, 1, 3, true) : linattn_with(2, true, 3)),
                                      striped(swiglu_gene(32)),
                                      striped(shared(attention ? sa_with(2, 1, 3, false)
                                                               : linattn_with(2, true, 3)))}),
                    29),
        2, 6);
  }
}
