// deltanet (Gated DeltaNet, plain DeltaNet when not gated): the delta-rule
// kernel against the paper's matrix recurrence, operator gradients against
// finite differences (gated and not, with and without the short conv, and
// across a checkpoint chunk boundary), decode against the parallel forward
// with the analytic state, and a small hybrid model end to end.
#include <doctest/doctest.h>

#include <cmath>

#include "genome/presets.hpp"
#include "tests/evaluator/mix_checks.hpp"

using namespace livs::evaluator;
using namespace livs::evaluator::testing;
namespace genome = livs::genome;

namespace {

genome::OpGene deltanet_gene(int heads, bool gated, int conv) {
  genome::OpGene op;
  op.cls = genome::LivClass::deltanet;
  op.deltanet = {heads, gated, conv};
  return op;
}

}  // namespace

TEST_CASE("delta rule kernel: equals S_t = alpha S (I - beta k k^T) + beta v k^T, o = S q, across chunks") {
  CpuBackend be;
  const DeltaRuleShape s{2, kScanChunk + 9, 2, 3};
  const int64_t nv = int64_t(s.batch) * s.seq * s.heads * s.head_dim, ns = nv / s.head_dim;
  auto q = random_vector(nv, 1), k = random_vector(nv, 2), v = random_vector(nv, 3);
  auto la = random_vector(ns, 4, 0.3), beta = random_vector(ns, 5, 0.5);
  for (auto& x : la) x = -std::fabs(x);
  for (auto& x : beta) x = 0.5f + x;
  std::vector<float> o(nv), checkpoints(delta_rule_checkpoint_floats(s));
  be.delta_rule_forward(o.data(), checkpoints.data(), q.data(), k.data(), v.data(), la.data(), beta.data(),
                        nullptr, s);
  const int n = s.head_dim;
  for (int b = 0; b < s.batch; ++b)
    for (int h = 0; h < s.heads; ++h) {
      std::vector<double> S(n * n, 0.0);  // S[v][k], d_v x d_k as in the paper
      for (int t = 0; t < s.seq; ++t) {
        const int64_t at = ((int64_t(b) * s.seq + t) * s.heads + h), vec = at * n;
        const double alpha = std::exp(double(la[at])), bt = beta[at];
        std::vector<double> next(n * n);
        for (int i = 0; i < n; ++i)
          for (int j = 0; j < n; ++j) {
            double acc = 0.0;  // (S (I - beta k k^T))[i][j]
            for (int m = 0; m < n; ++m)
              acc += S[i * n + m] * ((m == j ? 1.0 : 0.0) - bt * double(k[vec + m]) * double(k[vec + j]));
            next[i * n + j] = alpha * acc + bt * double(v[vec + i]) * double(k[vec + j]);
          }
        S = next;
        for (int i = 0; i < n; ++i) {
          double acc = 0.0;
          for (int j = 0; j < n; ++j) acc += S[i * n + j] * double(q[vec + j]);
          REQUIRE(o[vec + i] == doctest::Approx(acc).epsilon(1e-4).scale(1e-3));
        }
      }
    }
}

TEST_CASE("deltanet backward against finite differences: gated, short conv 4") {
  check_op_gradients(op_spec(16, deltanet_gene(2, true, 4)), 16, 2, 6, {kGatedConvFdStep});
}

TEST_CASE("deltanet backward against finite differences: plain DeltaNet without the short conv") {
  check_op_gradients(op_spec(16, deltanet_gene(4, false, 0)), 16, 2, 5, {kGatedConvFdStep});
}

TEST_CASE("deltanet backward against finite differences: across a checkpoint chunk boundary") {
  check_op_gradients(op_spec(8, deltanet_gene(2, true, 2)), 8, 1, kScanChunk + 6, {kGatedConvFdStep});
}

TEST_CASE("deltanet decode equals the parallel forward, state = heads d_k d_v + conv history") {
  for (bool gated : {false, true})
    for (int conv : {0, 3}) {
      CAPTURE(gated);
      CAPTURE(conv);
      const auto spec = op_spec(16, deltanet_gene(2, gated, conv));
      CHECK(spec.state.fixed_elements == 2 * 8 * 8 + (conv > 0 ? (conv - 1) * 3 * 16 : 0));
      check_op_decode(spec, 16, 2, 11);
    }
}

TEST_CASE("deltanet in a model: gradients against finite differences and decode") {
  auto spec = small_vocab(genome::decode([] {
                            genome::Genome g =
                                genome::preset("gated-deltanet-hybrid", 16, 4);  // 3 deltanet : 1 gated sa
                            return g;
                          }()),
                          13);
  REQUIRE(spec.slots[0].ops[0].cls == genome::LivClass::deltanet);
  REQUIRE(spec.slots[6].ops[0].cls == genome::LivClass::sa);
  REQUIRE(spec.slots[6].ops[0].sa.output_gate);
  check_model_decode(spec, 2, 7);
  check_model_gradients(
      small_vocab(decode_slots(8, {striped(deltanet_gene(2, true, 3)), striped(swiglu_gene(16))})), 2, 5,
      {kGatedConvFdStep});
}
