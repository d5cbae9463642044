// deltanet's kernels on the GPU against the CPU backend: the delta rule
// forward (from zero with checkpoints, and from a state as decode runs it)
// and backward (gated and not; sequences that cross chunk boundaries and are
// not multiples of the chunk; head_dim below, at and above a warp), and the
// Gated DeltaNet decay with its gradient; then whole models with short
// convolutions on sa and linattn, sa's output gate and deltanet slots.
// Tolerance: relative norm 1e-5 (fp32; block sums in another order than the CPU's).
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "evaluator/model.hpp"
#include "genome/decode.hpp"
#include "genome/presets.hpp"
#include "tests/gpu/gpu_test_support.hpp"

using namespace livs::evaluator;
using namespace livs::evaluator::gpu_testing;
namespace genome = livs::genome;

namespace {

using Array = DeviceArray<float>;
constexpr double kDeltaTolerance = 1e-5;

std::string describe(const DeltaRuleShape& s) {
  return "batch " + std::to_string(s.batch) + " seq " + std::to_string(s.seq) + " heads " +
         std::to_string(s.heads) + " head_dim " + std::to_string(s.head_dim);
}

// q and k unit-length rows (as the operator feeds them), beta in (0, 1),
// log_alpha < 0 (decay_scale times a draw of about -0.2).
void check_delta_rule(const DeltaRuleShape& s, bool gated, uint64_t seed, float decay_scale = 1.0f) {
  CAPTURE(describe(s));
  const int n = s.head_dim;
  const int64_t nv = int64_t(s.batch) * s.seq * s.heads * n, ns = nv / n,
                states = int64_t(s.batch) * s.heads * n * n;
  auto q = random_floats(nv, seed), k = random_floats(nv, seed + 1);
  for (auto* t : {&q, &k})
    for (int64_t r = 0; r < ns; ++r) {
      double norm = 0.0;
      for (int i = 0; i < n; ++i) norm += double((*t)[r * n + i]) * (*t)[r * n + i];
      for (int i = 0; i < n; ++i) (*t)[r * n + i] = float((*t)[r * n + i] / std::sqrt(norm + 1e-12));
    }
  const auto v = random_floats(nv, seed + 2), dout = random_floats(nv, seed + 3),
             s0 = random_floats(states, seed + 4, 0.3);
  auto la = random_floats(ns, seed + 5, 0.2), beta = random_floats(ns, seed + 6);
  for (auto& x : la) x = decay_scale * (-std::fabs(x) - 0.01f);
  for (auto& x : beta) x = 1.0f / (1.0f + std::exp(-x));
  compare_backends(
      "delta rule " + describe(s),
      [&](Backend& be) {
        Array dq_in(be, q), dk_in(be, k), dv_in(be, v), dla_in(be, la), dbeta_in(be, beta), ddout(be, dout),
            state(be, s0);
        auto o = poisoned(be, nv), o_from_state = poisoned(be, nv);
        auto checkpoints = poisoned(be, delta_rule_checkpoint_floats(s)),
             scratch = poisoned(be, delta_rule_scratch_floats(s));
        Array dq(be, random_floats(nv, seed + 7, 0.5)), dk(be, random_floats(nv, seed + 8, 0.5)),
            dv(be, random_floats(nv, seed + 9, 0.5)), dla(be, random_floats(ns, seed + 10, 0.5)),
            dbeta(be, random_floats(ns, seed + 11, 0.5));
        const float* log_alpha = gated ? dla_in.data() : nullptr;
        be.delta_rule_forward(o->data(), checkpoints->data(), dq_in.data(), dk_in.data(), dv_in.data(),
                              log_alpha, dbeta_in.data(), nullptr, s);
        be.delta_rule_backward(dq.data(), dk.data(), dv.data(), gated ? dla.data() : nullptr, dbeta.data(),
                               scratch->data(), ddout.data(), checkpoints->data(), dq_in.data(), dk_in.data(),
                               dv_in.data(), log_alpha, dbeta_in.data(), s);
        be.delta_rule_forward(o_from_state->data(), nullptr, dq_in.data(), dk_in.data(), dv_in.data(),
                              log_alpha, dbeta_in.data(), state.data(), s);
        return Outputs{{"o", o->download()},
                       {"o from a state", o_from_state->download()},
                       {"last state", state.download()},
                       {"dq", dq.download()},
                       {"dk", dk.download()},
                       {"dv", dv.download()},
                       {"dlog_alpha", dla.download()},
                       {"dbeta", dbeta.download()}};
      },
      kDeltaTolerance);
}

genome::OpGene deltanet_gene(int heads, bool gated, int conv) {
  genome::OpGene op;
  op.cls = genome::LivClass::deltanet;
  op.deltanet = {heads, gated, conv};
  return op;
}

}  // namespace

TEST_CASE("delta rule: forward, decode from a state and backward match the CPU backend") {
  check_delta_rule({2, 45, 2, 16}, true, 1);
  check_delta_rule({3, 150, 2, 32}, true, 2);  // three chunks, the last partial
  check_delta_rule({1, 70, 1, 48}, false, 3);  // plain DeltaNet, head_dim not a multiple of 32
  check_delta_rule({2, 66, 1, 128}, true, 4);  // the largest head_dim (shared memory past 48 KiB)
}

// Training takes the chunked form (deltanet_chunked_*.cu) up to head_dim 64:
// the shapes above cover a short last chunk and heads of 16, 32 and 48; these
// the largest head it takes (two column slabs of the state), exactly one
// chunk, and a decay strong enough that e^g underflows to zero inside a chunk.
TEST_CASE("delta rule, chunked form: head_dim 64, one whole chunk, five chunks, a vanishing decay") {
  check_delta_rule({2, 300, 3, 64}, true, 12);
  check_delta_rule({1, 64, 2, 8}, false, 13);
  check_delta_rule({1, 64, 2, 40}, true, 14, 30.0f);
}

TEST_CASE("Gated DeltaNet decay: forward and backward match the CPU backend") {
  const int64_t rows = 1000;
  const int heads = 3;
  const auto z = random_floats(rows * heads, 21), a_log = random_floats(heads, 22, 0.5),
             dt_bias = random_floats(heads, 23), dla = random_floats(rows * heads, 24);
  compare_backends(
      "gdn decay",
      [&](Backend& be) {
        Array dz_in(be, z), da(be, a_log), ddt(be, dt_bias), ddla(be, dla);
        auto la = poisoned(be, rows * heads);
        Array dz(be, random_floats(rows * heads, 25, 0.5)), da_log(be, random_floats(heads, 26, 0.5)),
            ddt_bias(be, random_floats(heads, 27, 0.5));
        be.gdn_decay_forward(la->data(), dz_in.data(), da.data(), ddt.data(), rows, heads);
        be.gdn_decay_backward(dz.data(), da_log.data(), ddt_bias.data(), ddla.data(), dz_in.data(), da.data(),
                              ddt.data(), rows, heads);
        return Outputs{{"log_alpha", la->download()},
                       {"dz", dz.download()},
                       {"da_log", da_log.download()},
                       {"ddt_bias", ddt_bias.download()}};
      },
      kDeltaTolerance);
}

TEST_CASE("models with short convolutions, sa's output gate and deltanet match the CPU backend") {
  genome::Genome g = genome::preset("gated-deltanet-hybrid", 64, 4);  // 3 deltanet : 1 gated attention
  genome::OpGene sa = genome::preset("transformer", 64, 1).slots[0].ops[0];
  sa.sa.short_conv = 3;
  sa.sa.output_gate = true;
  genome::OpGene linattn = genome::preset("linear-transformer", 64, 1).slots[0].ops[0];
  linattn.linattn.gated = true;
  g.slots[2].ops[0] = sa;
  g.slots[4].ops[0] = linattn;
  g.slots.push_back({genome::FusionKind::none, {deltanet_gene(4, false, 0)}});
  const genome::ModelSpec spec = genome::decode(g);
  for (auto [batch, seq] : {std::pair{2, 33}, std::pair{1, 130}}) {
    CAPTURE(seq);
    PlanShape shape;
    shape.batch = batch;
    shape.seq = seq;
    shape.decode_batch = 2;
    shape.decode_context = 12;
    const auto run = [&](Backend& be) {
      Model model(spec, be, shape, 77);
      const auto inputs = random_tokens(std::size_t(batch) * seq, 256, 5),
                 targets = random_tokens(std::size_t(batch) * seq, 256, 6);
      model.forward(inputs.data(), targets.data());
      Outputs out{{"token losses", model.token_losses()}};
      model.zero_grads();
      model.backward();
      std::vector<float> grads(std::size_t(model.parameters().count()));
      be.copy_to_host(grads.data(), model.grads(), grads.size() * sizeof(float));
      out.push_back({"gradients", grads});
      model.reset_decode();
      std::vector<float> logits(2 * 256), all;
      std::vector<int32_t> tokens(2);
      for (int p = 0; p < 12; ++p) {
        tokens = {inputs[p], inputs[std::size_t(p + 1) % inputs.size()]};
        model.decode_step(tokens.data(), p, logits.data());
        all.insert(all.end(), logits.begin(), logits.end());
      }
      out.push_back({"decode logits", all});
      return out;
    };
    compare_backends("hybrid", run, 1e-4);
  }
}
