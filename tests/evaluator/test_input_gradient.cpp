// Operator::backward with accumulate_dx = false writes the input gradient:
// the model no longer zeroes dnormed before each slot, so every operator's
// first contribution to dx must cover it whole and never read what was there
// (NaN here), for every class and every form that changes which step comes
// first.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "genome/genome.hpp"
#include "genome/model_spec.hpp"
#include "tests/evaluator/scan_op_harness.hpp"

namespace livs::evaluator::testing {
namespace {

struct Form {
  std::string name;
  genome::OpGene gene;
};

std::vector<Form> forms(int d) {
  using genome::LivClass;
  auto op = [&](LivClass cls) { return genome::default_op(cls, d); };
  std::vector<Form> out;
  for (LivClass cls : {LivClass::sa, LivClass::linattn, LivClass::rec, LivClass::ssm, LivClass::gconv,
                       LivClass::swiglu, LivClass::moe, LivClass::deltanet})
    out.push_back({genome::to_string(cls), op(cls)});
  genome::OpGene g = op(LivClass::sa);
  g.sa.output_gate = true;
  g.sa.qk_norm = true;
  out.push_back({"sa gated, qk-norm", g});
  g = op(LivClass::sa);
  g.sa.short_conv = 3;
  g.sa.heads = 4;
  g.sa.kv_heads = 2;
  out.push_back({"sa short conv, GQA", g});
  g = op(LivClass::sa);
  g.differential = true;
  out.push_back({"sa differential", g});
  g = op(LivClass::linattn);
  g.linattn.gated = true;
  g.linattn.short_conv = 2;
  out.push_back({"linattn gated, short conv", g});
  g = op(LivClass::linattn);
  g.differential = true;
  out.push_back({"linattn differential", g});
  g = op(LivClass::gconv);
  g.differential = true;
  out.push_back({"gconv differential", g});
  g = op(LivClass::ssm);
  g.ssm.form = genome::SsmForm::mamba2;
  g.ssm.head_dim = 16;
  out.push_back({"ssm mamba2", g});
  g = op(LivClass::deltanet);
  g.deltanet.gated = false;
  g.deltanet.short_conv = 0;
  out.push_back({"deltanet plain", g});
  return out;
}

TEST_CASE("backward writes dx when asked to: equal to accumulating into zeros, whatever dx held") {
  constexpr int d = 16, batch = 2, seq = 5;
  const int64_t n = int64_t(batch) * seq * d;
  for (const Form& form : forms(d)) {
    CAPTURE(form.name);
    ScanHarness h(decoded_op(form.gene, d), d, {batch, seq});
    const auto x = random_vector(n, 61), r = random_vector(n, 62);
    std::vector<float> y(n), added(n, 0.0f), written(n, std::numeric_limits<float>::quiet_NaN());
    h.op->forward(h.backend, x.data(), y.data());
    h.op->backward(h.backend, x.data(), r.data(), added.data(), /*accumulate_dx=*/true);
    h.op->forward(h.backend, x.data(), y.data());
    h.op->backward(h.backend, x.data(), r.data(), written.data(), /*accumulate_dx=*/false);
    int mismatches = 0;
    for (int64_t i = 0; i < n; ++i)
      if (!(written[i] == added[i])) ++mismatches;  // NaN (never written) counts too
    CHECK_MESSAGE(mismatches == 0, form.name << ": " << mismatches << " of " << n << " elements differ");
  }
}

}  // namespace
}  // namespace livs::evaluator::testing
