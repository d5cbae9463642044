// The Mamba-2 (SSD) form of ssm as genome knobs: Mamba-1 genomes keep the
// canonical JSON and hash they had before the knobs existed, Mamba-2 ones
// carry form and head_dim through JSON, hashing, checking, decoding, and the
// search space's sampling, mutation and repair.
#include <doctest/doctest.h>

#include <map>
#include <string>

#include "genome/decode.hpp"
#include "genome/genome_json.hpp"
#include "genome/operators.hpp"
#include "genome/presets.hpp"
#include "genome/search_space.hpp"

using namespace livs;
using namespace livs::genome;

namespace {

Genome one_ssm(const OpGene& op, int d = 64) {
  Genome g;
  g.d_model = d;
  g.slots = {{FusionKind::none, {op}}, {FusionKind::none, {default_op(LivClass::swiglu, d)}}};
  return g;
}

SearchSpace parse(const std::string& section_text) {
  Json doc = parse_json_text(R"({"search_space": )" + section_text + "}", "cfg.json");
  JsonReader root(doc, "cfg.json");
  return parse_search_space(root.at("search_space"));
}

std::string error_of(const std::string& genome_text) {
  try {
    genome_from_json(parse_json_text(genome_text, "g.json"), "g.json");
  } catch (const InputError& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("a Mamba-1 ssm keeps its canonical JSON and hash, head_dim is inactive there") {
  OpGene op = default_op(LivClass::ssm, 64);
  const Genome g = one_ssm(op);
  // The canonical string written before the Mamba-2 knobs existed (pinned).
  const std::string before =
      R"({"d_model":64,"vocab":256,"slots":[{"class":"ssm","expand":2,"d_state":16,"conv_kernel":4,)"
      R"("differential":false,"share_featurizer":null},{"class":"swiglu","hidden":168,"share_featurizer":null}]})";
  CHECK(to_canonical_string(g) == before);
  op.ssm.head_dim = 8;  // not a knob of the mamba1 form
  CHECK(genome_hash(one_ssm(op)) == genome_hash(g));
  CHECK(decode(one_ssm(op)).params_total() == decode(g).params_total());
}

TEST_CASE("a Mamba-2 ssm round-trips through JSON with form and head_dim and hashes apart from Mamba-1") {
  OpGene op = default_op(LivClass::ssm, 64);
  op.ssm.form = SsmForm::mamba2;
  op.ssm.head_dim = 16;
  const Genome g = one_ssm(op);
  const Json j = to_canonical_json(g);
  CHECK(j["slots"][0]["form"] == "mamba2");
  CHECK(j["slots"][0]["head_dim"] == 16);
  const Genome back = genome_from_json(j, "g.json");
  CHECK(back == canonicalize(g));
  CHECK(genome_hash(back) == genome_hash(g));
  OpGene other = op;
  other.ssm.head_dim = 32;
  CHECK(genome_hash(one_ssm(other)) != genome_hash(g));
  CHECK(genome_hash(one_ssm(default_op(LivClass::ssm, 64))) != genome_hash(g));
  CHECK(summary(g) == "d64 L2 | ssd(x2,n16,k4,p16) swiglu");
}

TEST_CASE(
    "Mamba-2 weights and decode state follow the heads: in_proj z, xBC, dt, and A, D, dt_bias per head") {
  OpGene op = default_op(LivClass::ssm, 64);
  op.ssm.form = SsmForm::mamba2;
  op.ssm.head_dim = 16;
  op.ssm.d_state = 8;
  const auto spec = decode(one_ssm(op)).slots[0].ops[0];
  CHECK(spec.ssm.form == SsmForm::mamba2);
  CHECK(spec.ssm.heads == 8);  // d_inner 128 / 16
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& w : spec.weights) shapes[w.name] = w.shape;
  CHECK(shapes.at("in_proj") == std::vector<int64_t>{128 + 128 + 16 + 8, 64});
  CHECK(shapes.at("conv") == std::vector<int64_t>{128 + 16, 4});
  CHECK(shapes.at("a_log") == std::vector<int64_t>{8});
  CHECK(shapes.at("d") == std::vector<int64_t>{8});
  CHECK(shapes.at("dt_bias") == std::vector<int64_t>{8});
  CHECK(shapes.at("norm") == std::vector<int64_t>{128});
  CHECK(shapes.at("out_proj") == std::vector<int64_t>{64, 128});
  CHECK(shapes.count("x_proj") == 0);
  CHECK(spec.state.fixed_elements == 128 * 8 + 3 * (128 + 16));
  CHECK(spec.state.per_token_elements == 0);
}

TEST_CASE("a head_dim that does not divide d_inner, or an unknown form, is named in the error") {
  CHECK(error_of(R"({"d_model": 64, "slots": [{"class": "ssm", "form": "mamba2", "head_dim": 48}]})")
            .find("/slots/0/head_dim: 48 does not divide d_inner = expand * d_model = 128") !=
        std::string::npos);
  CHECK(error_of(R"({"d_model": 64, "slots": [{"class": "ssm", "form": "mamba3"}]})").find("/slots/0/form") !=
        std::string::npos);
  CHECK(error_of(R"({"d_model": 64, "slots": [{"class": "ssm", "form": "mamba2", "head_dim": 32}]})") ==
        "no error");
}

TEST_CASE("featurizer sharing between ssm ops needs the same form and head_dim") {
  OpGene a = default_op(LivClass::ssm, 64), b = a;
  b.ssm.form = SsmForm::mamba2;
  CHECK_FALSE(featurizer_compatible(a, b, 64));
  OpGene c = b;
  CHECK(featurizer_compatible(b, c, 64));
  c.ssm.head_dim = 16;
  CHECK_FALSE(featurizer_compatible(b, c, 64));
}

TEST_CASE("the search space reads form and head_dim, a mamba2-only space needs a dividing head_dim") {
  const SearchSpace d = parse("{}");
  CHECK(d.ssm.form == std::vector<SsmForm>{SsmForm::mamba1});
  const SearchSpace s = parse(R"({"ssm": {"form": ["mamba2", "mamba1"], "head_dim": [8, 32]}})");
  CHECK(s.ssm.form == std::vector<SsmForm>{SsmForm::mamba1, SsmForm::mamba2});
  CHECK(s.ssm.head_dim == std::vector<int>{8, 32});
  CHECK(s.ssd_head_dims(24, 1) == std::vector<int>{8});
  CHECK_THROWS_AS(parse(R"({"d_model": 24, "ssm": {"form": "mamba2", "expand": 1, "head_dim": 16}})"),
                  InputError);
  CHECK_THROWS_AS(parse(R"({"ssm": {"form": "mamba3"}})"), InputError);
}

TEST_CASE("sampling, mutation and repair keep Mamba-2 ops valid in the space") {
  const SearchSpace s = parse(
      R"({"d_model": [24, 64], "classes": {"ssm": 4, "sa": 1, "swiglu": 1},
          "ssm": {"form": ["mamba1", "mamba2"], "expand": [1, 2], "head_dim": [16, 48]}})");
  Rng rng(5);
  int mamba2 = 0, mamba1 = 0;
  for (int i = 0; i < 200; ++i) {
    Genome g = sample(s, rng);
    for (int m = 0; m < 4; ++m) g = mutate(g, s, rng);
    CHECK(validate(g, s).empty());
    CHECK(check_genome(g).empty());
    for (const auto& slot : g.slots)
      for (const auto& op : slot.ops)
        if (op.cls == LivClass::ssm) (op.ssm.form == SsmForm::mamba2 ? mamba2 : mamba1)++;
  }
  CHECK(mamba2 > 0);
  CHECK(mamba1 > 0);
  // Repair: no allowed head_dim divides d_inner 24 (d 24, expand 1), so the
  // expand moves to 2 (d_inner 48), where 16 does.
  OpGene op = default_op(LivClass::ssm, 24);
  op.ssm.form = SsmForm::mamba2;
  op.ssm.expand = 1;
  op.ssm.head_dim = 16;
  Genome g = one_ssm(op, 24);
  const Genome fixed = repair(g, s);
  CHECK(fixed.slots[0].ops[0].ssm.form == SsmForm::mamba2);
  CHECK(fixed.slots[0].ops[0].ssm.expand == 2);
  CHECK(fixed.slots[0].ops[0].ssm.head_dim == 16);
  CHECK(validate(fixed, s).empty());
  // A space without mamba2 repairs the form back to mamba1.
  const Genome plain = repair(g, parse(R"({"d_model": 24})"));
  CHECK(plain.slots[0].ops[0].ssm.form == SsmForm::mamba1);
}

TEST_CASE("a space without mamba2 samples and mutates only Mamba-1 ssm ops") {
  const SearchSpace s = parse(R"({"classes": {"ssm": 1, "swiglu": 1}})");
  Rng rng(11);
  for (int i = 0; i < 20; ++i) {
    const Genome g = mutate(sample(s, rng), s, rng);
    for (const auto& slot : g.slots)
      for (const auto& op : slot.ops)
        if (op.cls == LivClass::ssm) CHECK(op.ssm.form == SsmForm::mamba1);
  }
}

TEST_CASE("the mamba2-hybrid preset: Mamba-2 blocks with attention 1 in 4") {
  CHECK(summary(preset("mamba2-hybrid", 128, 4)) ==
        "d128 L8 | ssd(x2,n64,k4,p64) swiglu ssd(x2,n64,k4,p64) swiglu ssd(x2,n64,k4,p64) swiglu sa(4,kv4) "
        "swiglu");
  CHECK(summary(preset("mamba2-hybrid", 24, 1)) == "d24 L2 | ssd(x2,n64,k4,p16) swiglu");
}
