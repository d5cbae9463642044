// Analytic params, FLOPs and cache of the short convolution, sa's output gate
// and deltanet against hand counts.
#include <doctest/doctest.h>

#include "genome/decode.hpp"
#include "genome/genome.hpp"
#include "proxies/analytic.hpp"

using namespace livs;
using genome::LivClass;

namespace {

genome::ModelSpec one_slot(const genome::OpGene& op, int d_model = 32) {
  genome::Genome g;
  g.d_model = d_model;
  g.vocab = 256;
  g.slots = {{genome::FusionKind::none, {op}}};
  return genome::decode(g);
}

}  // namespace

TEST_CASE("analytic: sa with short conv and output gate, linattn with short conv") {
  const double D = 32, V = 256, head = 2 * V * D;
  genome::OpGene sa = genome::default_op(LivClass::sa, 32);  // one head of 32
  sa.sa.short_conv = 4;
  sa.sa.output_gate = true;
  const auto spec = one_slot(sa);
  // wq wk wv wo w_out_gate (5 D x D) + q/k/v taps (3 x D x 4) + the slot norm, embedding, final norm.
  CHECK(spec.params_non_embedding() == int64_t(5 * D * D + 3 * D * 4 + D + D));
  // 5 projections, the taps, attention over n keys (4 H hd n).
  CHECK(proxies::forward_flops_at(spec, 10) ==
        doctest::Approx(head + 5 * 2 * D * D + 3 * 2 * D * 4 + 4 * D * 10));
  CHECK(spec.decode_state_elements(10) == int64_t(3 * 3 * D + 2 * D * 10));

  genome::OpGene lin = genome::default_op(LivClass::linattn, 32);
  lin.linattn.short_conv = 2;
  const auto l = one_slot(lin);
  CHECK(proxies::forward_flops_at(l, 10) ==
        doctest::Approx(head + 4 * 2 * D * D + 3 * 2 * D * 2 + 4 * D * D));
  CHECK(l.decode_state_elements(10) == int64_t(D * D + 1 * 3 * D));
}

TEST_CASE("analytic: deltanet params, FLOPs and cache") {
  const double D = 32, V = 256, H = 2, hd = 16;
  genome::OpGene op = genome::default_op(LivClass::deltanet, 32);
  op.deltanet = {2, true, 4};
  const auto spec = one_slot(op);
  // wq wk wv w_out_gate wo (5 D x D), w_beta w_alpha (2 H x D), a_log dt_bias (2 H), taps (3 D x 4), o_norm
  // (hd), the slot norm and the final norm (D each).
  const int64_t params = int64_t(5 * D * D + 2 * H * D + 2 * H + 3 * D * 4 + hd + 2 * D);  // + the norms
  CHECK(spec.params_non_embedding() == params);
  CHECK(proxies::forward_flops_at(spec, 100) ==
        doctest::Approx(2 * V * D + 5 * 2 * D * D + 2 * 2 * H * D + 3 * 2 * D * 4 + 7 * H * hd * hd));
  CHECK(spec.decode_state_elements(100) == int64_t(H * hd * hd + 3 * 3 * D));
  op.deltanet = {2, false, 0};  // plain DeltaNet without the conv: no decay weights, no taps
  const auto plain = one_slot(op);
  CHECK(plain.params_non_embedding() == int64_t(5 * D * D + H * D + hd + 2 * D));
  CHECK(plain.decode_state_elements(100) == int64_t(H * hd * hd));
}
