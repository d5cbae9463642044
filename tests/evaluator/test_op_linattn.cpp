// linattn: backward against finite differences (ungated and GLA-gated, each
// feature map, several shapes), decode equals the parallel forward, and the
// decode state is heads x d_k x d_v per feature group.
#include <doctest/doctest.h>

#include <limits>
#include <vector>

#include "tests/evaluator/mix_checks.hpp"

using namespace livs::evaluator;
using namespace livs::evaluator::testing;
namespace genome = livs::genome;

TEST_CASE("linattn backward against finite differences: elu+1, ungated") {
  check_op_gradients(op_spec(16, linattn_gene(2, genome::FeatureMap::elu_plus_one, false)), 16, 2, 6);
}

TEST_CASE("linattn backward against finite differences: GLA-gated elu+1, one head") {
  check_op_gradients(op_spec(8, linattn_gene(1, genome::FeatureMap::elu_plus_one, true)), 8, 1, 9);
}

// relu has a kink and the per-head norm curves strongly near small outputs,
// so these two use a smaller finite-difference step (1e-3).
TEST_CASE(
    "linattn backward against finite differences: relu, four heads (the gated form: elu+1 above, relu in the "
    "PyTorch check)") {
  check_op_gradients(op_spec(16, linattn_gene(4, genome::FeatureMap::relu, false)), 16, 2, 5, {3e-3});
}

TEST_CASE("linattn backward against finite differences: identity feature map") {
  check_op_gradients(op_spec(8, linattn_gene(2, genome::FeatureMap::identity, true)), 8, 2, 4, {3e-3});
}

TEST_CASE("linattn decode equals the parallel forward and holds heads x d_k x d_v") {
  for (bool gated : {false, true}) {
    CAPTURE(gated);
    const auto spec = op_spec(16, linattn_gene(2, genome::FeatureMap::elu_plus_one, gated));
    CHECK(spec.state.fixed_elements == 2 * 8 * 8);
    check_op_decode(spec, 16, 3, 12);
  }
}

TEST_CASE("linattn kernel: the scan equals the explicit sum over earlier tokens") {
  // out_t = sum_{s<=t} (q_t . (prod_{u=s+1..t} alpha_u * k_s)) v_s, written out in double.
  CpuBackend be;
  const int batch = 2, seq = 7, heads = 2, hd = 3;
  const int64_t n = int64_t(batch) * seq * heads * hd;
  auto q = random_vector(n, 1), k = random_vector(n, 2), v = random_vector(n, 3),
       la = random_vector(n, 4, 0.3);
  for (auto& x : la) x = -std::fabs(x);
  std::vector<float> out(n);
  be.linear_attention_forward(out.data(), q.data(), k.data(), v.data(), la.data(), {batch, seq, heads, hd});
  auto at = [&](int b, int t, int h, int i) { return ((int64_t(b) * seq + t) * heads + h) * hd + i; };
  for (int b = 0; b < batch; ++b)
    for (int h = 0; h < heads; ++h)
      for (int t = 0; t < seq; ++t)
        for (int j = 0; j < hd; ++j) {
          double expect = 0.0;
          for (int s = 0; s <= t; ++s) {
            double score = 0.0;
            for (int i = 0; i < hd; ++i) {
              double decay = 0.0;
              for (int u = s + 1; u <= t; ++u) decay += la[at(b, u, h, i)];
              score += double(q[at(b, t, h, i)]) * k[at(b, s, h, i)] * std::exp(decay);
            }
            expect += score * v[at(b, s, h, j)];
          }
          REQUIRE(out[at(b, t, h, j)] == doctest::Approx(expect).epsilon(1e-5).scale(1.0));
        }
}

TEST_CASE("linattn kernels are bitwise deterministic across runs") {
  CpuBackend be;
  const int batch = 3, seq = 33, heads = 2, hd = 8;
  const int64_t n = int64_t(batch) * seq * heads * hd;
  auto q = random_vector(n, 1), k = random_vector(n, 2), v = random_vector(n, 3),
       la = random_vector(n, 4, 0.1);
  auto dout = random_vector(n, 5);
  std::vector<float> first;
  for (int run = 0; run < 2; ++run) {
    std::vector<float> dq(n), dk(n), dv(n), dla(n);
    be.linear_attention_backward(dq.data(), dk.data(), dv.data(), dla.data(), dout.data(), q.data(), k.data(),
                                 v.data(), la.data(), {batch, seq, heads, hd}, /*accumulate=*/true);
    std::vector<float> all = dq;
    for (auto* g : {&dk, &dv, &dla}) all.insert(all.end(), g->begin(), g->end());
    if (run == 0)
      first = all;
    else
      CHECK(all == first);
    // Written into NaN-filled buffers: the same bits as added into zeros.
    const float nan = std::numeric_limits<float>::quiet_NaN();
    std::vector<float> wq(n, nan), wk(n, nan), wv(n, nan), wla(n, nan);
    be.linear_attention_backward(wq.data(), wk.data(), wv.data(), wla.data(), dout.data(), q.data(), k.data(),
                                 v.data(), la.data(), {batch, seq, heads, hd}, /*accumulate=*/false);
    std::vector<float> written = wq;
    for (auto* g : {&wk, &wv, &wla}) written.insert(written.end(), g->begin(), g->end());
    CHECK(written == all);
  }
}
