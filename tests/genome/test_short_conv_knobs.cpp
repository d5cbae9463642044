// The short-convolution featurizer (sa, linattn: short_conv) and sa's output
// gate (output_gate) as genes: off by default and then absent from the
// canonical JSON (genomes written before the knobs keep their hashes), read
// and written when on, range-checked, part of the feature-sharing rule, and
// drawn, mutated and repaired only inside a search space that offers them.
#include <doctest/doctest.h>

#include <string>

#include "common/rng.hpp"
#include "common/sha256.hpp"
#include "genome/decode.hpp"
#include "genome/genome_json.hpp"
#include "genome/operators.hpp"
#include "genome/presets.hpp"
#include "genome/search_space.hpp"

using namespace livs;
using namespace livs::genome;

namespace {

Genome read(const std::string& text) { return genome_from_json(parse_json_text(text, "g.json"), "g.json"); }

std::string error_of(const std::string& text) {
  try {
    read(text);
  } catch (const InputError& e) {
    return e.what();
  }
  return "no error";
}

SearchSpace parse_space(const std::string& section_text) {
  Json doc = parse_json_text(R"({"search_space": )" + section_text + "}", "cfg.json");
  JsonReader root(doc, "cfg.json");
  return parse_search_space(root.at("search_space"));
}

// The canonical form of a genome written before the knobs existed, and its hash.
const char* kOldCanonical =
    R"({"d_model":64,"vocab":256,"slots":[{"class":"sa","heads":2,"kv_heads":2,"window":0,"qk_norm":false,)"
    R"("rope":true,"differential":false,"share_featurizer":null,"share_features":null},{"class":"linattn",)"
    R"("heads":2,"feature_map":"elu_plus_one","gated":true,"differential":false,"share_featurizer":null,)"
    R"("share_features":null}]})";
const char* kOldHash = "570ed4bd46f5a4eda4631da3122554e34ed26d813cdad58d76f4201867e9f9a1";

}  // namespace

TEST_CASE("short_conv and output_gate off: the canonical JSON and hash of older genomes are unchanged") {
  const Genome g = read(kOldCanonical);
  CHECK(to_canonical_string(g) == std::string(kOldCanonical));
  CHECK(genome_hash(g) == std::string(kOldHash));
  // Written out explicitly at their off values, they still make the same genome.
  const Genome explicit_off =
      read(R"({"d_model":64,"slots":[{"class":"sa","short_conv":0,"output_gate":false},)"
           R"({"class":"linattn","gated":true,"short_conv":0}]})");
  CHECK(genome_hash(explicit_off) == std::string(kOldHash));
  for (const auto& name : {"transformer", "griffin", "striped-mamba", "lfm2", "hyena-like"}) {
    CAPTURE(name);
    const std::string text = to_canonical_string(preset(name, 64, 2));
    CHECK(text.find("short_conv") == std::string::npos);
    CHECK(text.find("output_gate") == std::string::npos);
  }
}

TEST_CASE("short_conv and output_gate on: written, read back, and they change the decoded model") {
  const Genome g = read(R"({"d_model":64,"slots":[{"class":"sa","short_conv":4,"output_gate":true},)"
                        R"({"class":"linattn","short_conv":2}]})");
  CHECK(g.slots[0].ops[0].sa.short_conv == 4);
  CHECK(g.slots[0].ops[0].sa.output_gate);
  CHECK(g.slots[1].ops[0].linattn.short_conv == 2);
  const std::string text = to_canonical_string(g);
  CHECK(text.find(R"("short_conv":4)") != std::string::npos);
  CHECK(text.find(R"("output_gate":true)") != std::string::npos);
  CHECK(read(text) == g);
  CHECK(genome_hash(g) != std::string(kOldHash));
  const ModelSpec spec = decode(g);
  const auto& sa = spec.slots[0].ops[0];
  auto has = [](const OpSpec& op, const std::string& name, std::vector<int64_t> shape) {
    for (const auto& w : op.weights)
      if (w.name == name) return w.shape == shape;
    return false;
  };
  CHECK(has(sa, "q_conv", {64, 4}));
  CHECK(has(sa, "k_conv", {64, 4}));
  CHECK(has(sa, "v_conv", {64, 4}));
  CHECK(has(sa, "w_out_gate", {64, 64}));
  CHECK(sa.state.fixed_elements == 3 * 3 * 64);
  CHECK(has(spec.slots[1].ops[0], "q_conv", {64, 2}));
  CHECK(spec.slots[1].ops[0].state.fixed_elements == 2 * 32 * 32 + 1 * 3 * 64);
  CHECK(summary(g).find("sa(2,kv2,c4,og)") != std::string::npos);
}

TEST_CASE("short_conv must be 0 or 2-4, and feature sharing needs the same short_conv") {
  CHECK(error_of(R"({"d_model":64,"slots":[{"class":"sa","short_conv":1}]})")
            .find("g.json: /slots/0/short_conv: expected 0 (off) or a kernel in [2, 4], got 1") == 0);
  CHECK(error_of(R"({"d_model":64,"slots":[{"class":"linattn","short_conv":5}]})")
            .find("/slots/0/short_conv") != std::string::npos);
  CHECK(error_of(R"({"d_model":64,"slots":[{"class":"sa","output_gate":1}]})").find("/slots/0/output_gate") !=
        std::string::npos);
  CHECK(error_of(R"({"d_model":64,"slots":[{"class":"linattn","output_gate":true}]})").find("unknown key") !=
        std::string::npos);
  CHECK(error_of(R"({"d_model":64,"slots":[{"class":"sa","short_conv":3},{"class":"swiglu"},)"
                 R"({"class":"sa","share_features":0}]})")
            .find("short_conv") != std::string::npos);
  CHECK(error_of(R"({"d_model":64,"slots":[{"class":"sa","short_conv":3},{"class":"swiglu"},)"
                 R"({"class":"sa","short_conv":3,"output_gate":true,"share_features":0}]})") == "no error");
}

TEST_CASE("search space: the knobs are off by default and drawn, validated and repaired when offered") {
  const SearchSpace d = parse_space("{}");
  CHECK(d.sa.short_conv == std::vector<int>{0});
  CHECK(d.sa.output_gate == std::vector<bool>{false});
  CHECK(d.linattn.short_conv == std::vector<int>{0});
  CHECK_THROWS_AS(parse_space(R"({"sa": {"short_conv": [0, 1]}})"), InputError);
  CHECK_THROWS_AS(parse_space(R"({"linattn": {"short_conv": 5}})"), InputError);
  const SearchSpace s = parse_space(
      R"({"d_model": 64, "classes": {"sa": 1, "linattn": 1, "swiglu": 1},)"
      R"( "sa": {"short_conv": [0, 2, 4], "output_gate": [false, true]}, "linattn": {"short_conv": [0, 3]}})");
  Rng rng(3);
  bool conv_on = false, conv_off = false, gate_on = false, lin_conv = false;
  for (int i = 0; i < 200; ++i) {
    Genome g = sample(s, rng);
    g = mutate(g, s, rng);
    CHECK(validate(g, s).empty());
    for (const auto& slot : g.slots)
      for (const auto& op : slot.ops) {
        if (op.cls == LivClass::sa) (op.sa.short_conv > 0 ? conv_on : conv_off) = true;
        if (op.cls == LivClass::sa && op.sa.output_gate) gate_on = true;
        if (op.cls == LivClass::linattn && op.linattn.short_conv == 3) lin_conv = true;
      }
  }
  CHECK(conv_on);
  CHECK(conv_off);
  CHECK(gate_on);
  CHECK(lin_conv);
  // A genome outside the space is reported, and repair brings it back.
  Genome outside = read(R"({"d_model":64,"slots":[{"class":"sa","short_conv":3,"output_gate":true},)"
                        R"({"class":"swiglu"}]})");
  const SearchSpace small = parse_space(R"({"d_model": 64, "depth": 2})");
  const auto problems = validate(outside, small);
  REQUIRE(problems.size() == 2);
  CHECK(problems[0].pointer == "/slots/0/short_conv");
  CHECK(problems[1].pointer == "/slots/0/output_gate");
  const Genome repaired = repair(outside, small);
  CHECK(repaired.slots[0].ops[0].sa.short_conv == 0);
  CHECK_FALSE(repaired.slots[0].ops[0].sa.output_gate);
}

TEST_CASE("presets: linear-transformer has the short convolution on") {
  const Genome g = preset("linear-transformer", 64, 2);
  CHECK(g.slots[0].ops[0].linattn.short_conv == 4);
}
