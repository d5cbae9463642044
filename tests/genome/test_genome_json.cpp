#include <doctest/doctest.h>

#include <string>

#include "common/rng.hpp"
#include "genome/decode.hpp"
#include "genome/genome_json.hpp"
#include "genome/presets.hpp"

using namespace livs;
using namespace livs::genome;

namespace {
std::string error_of(const std::string& text) {
  try {
    genome_from_json(parse_json_text(text, "g.json"), "g.json");
  } catch (const InputError& e) {
    return e.what();
  }
  return "no error";
}
}  // namespace

TEST_CASE("reading a genome reports every problem with its JSON pointer") {
  const std::string text = R"({"d_model": 128, "slots": [
      {"class": "sa", "heads": 4, "kv_heads": 3},
      {"class": "swiglu", "hidden": "big"},
      {"class": "attention"},
      {"fusion": "sum", "ops": [{"class": "gconv"}, {"class": "swiglu"}]},
      {"class": "sa", "share_features": {"slot": 5}}]})";
  try {
    genome_from_json(parse_json_text(text, "g.json"), "g.json");
    FAIL("expected an InputError");
  } catch (const InputError& e) {
    const auto& p = e.problems();
    REQUIRE(p.size() == 5);
    CHECK(p[0].pointer == "/slots/0/kv_heads");
    CHECK(p[0].message == "3 does not divide heads 4");
    CHECK(p[1].pointer == "/slots/1/hidden");
    CHECK(p[2].pointer == "/slots/2/class");
    CHECK(p[3].pointer == "/slots/3/ops/1/class");
    CHECK(p[4].pointer == "/slots/4/share_features/slot");
    CHECK(std::string(e.what()).find("g.json: /slots/0/kv_heads: 3 does not divide heads 4") == 0);
  }
}

TEST_CASE("omitted knobs take their defaults and the canonical form writes them out") {
  Genome g = genome_from_json(
      parse_json_text(R"({"d_model": 64, "slots": [{"class": "sa"}, {"class": "swiglu"}]})", "g.json"));
  CHECK(g.vocab == 256);
  CHECK(g.slots[0].ops[0].sa.heads == 2);
  CHECK(g.slots[1].ops[0].swiglu.hidden == 168);
  CHECK(g == preset("transformer", 64, 1));
}

TEST_CASE("canonical form: symmetric fusion order, sharing chains and inactive knobs do not matter") {
  const char* a = R"({"d_model": 64, "slots": [
      {"fusion": "sum", "ops": [{"class": "sa"}, {"class": "gconv", "kernel": 4}]},
      {"class": "sa", "share_featurizer": {"slot": 0, "op": 0}},
      {"class": "sa", "share_featurizer": 1}]})";
  const char* b = R"({"d_model": 64, "slots": [
      {"fusion": "sum", "ops": [{"class": "gconv", "kernel": 4}, {"class": "sa"}]},
      {"class": "sa", "share_featurizer": {"slot": 0, "op": 1}},
      {"class": "sa", "share_featurizer": {"slot": 0, "op": 1}}]})";
  Genome ga = genome_from_json(parse_json_text(a, "a"));
  Genome gb = genome_from_json(parse_json_text(b, "b"));
  CHECK(ga == gb);
  CHECK(genome_hash(ga) == genome_hash(gb));
  // The chain 2 -> 1 -> 0 resolves to the owner of the weights.
  CHECK(ga.slots[2].ops[0].featurizer == ShareRef{0, ga.slots[1].ops[0].featurizer.op});
  // A gated fusion is not symmetric: its order is kept and the hash differs.
  const char* c =
      R"({"d_model": 64, "slots": [{"fusion": "gate", "ops": [{"class": "sa"}, {"class": "gconv"}]}]})";
  const char* d =
      R"({"d_model": 64, "slots": [{"fusion": "gate", "ops": [{"class": "gconv"}, {"class": "sa"}]}]})";
  CHECK(genome_hash(genome_from_json(parse_json_text(c, "c"))) !=
        genome_hash(genome_from_json(parse_json_text(d, "d"))));
  // Knobs of another class are reset, so they cannot make two equal ops differ.
  Genome g = preset("transformer", 64, 1);
  Genome h = g;
  h.slots[1].ops[0].sa.heads = 1;
  CHECK(genome_hash(g) == genome_hash(h));
  CHECK(canonicalize(h) == g);
}

TEST_CASE("sharing removes weights and cache in the decoded model") {
  const char* text = R"({"d_model": 64, "slots": [
      {"class": "sa", "heads": 2, "kv_heads": 1, "qk_norm": true},
      {"class": "sa", "heads": 2, "kv_heads": 1, "qk_norm": true, "share_features": 0},
      {"class": "sa", "heads": 2, "kv_heads": 1, "qk_norm": true, "share_features": 0, "share_featurizer": 1}]})";
  ModelSpec spec = decode(genome_from_json(parse_json_text(text, "t")));
  const auto& owner = spec.slots[0].ops[0];
  const auto& kv_sharer = spec.slots[1].ops[0];
  const auto& both = spec.slots[2].ops[0];
  CHECK(owner.weights.size() == 6);  // wq wk wv wo q_norm k_norm
  CHECK(owner.state.per_token_elements == 2 * 1 * 32);
  REQUIRE(kv_sharer.weights.size() == 3);  // wq wo q_norm
  CHECK(kv_sharer.weights[1].name == "wo");
  CHECK(kv_sharer.feature_source.slot == 0);
  CHECK(kv_sharer.state.elements(100) == 0);
  CHECK(both.weights.empty());
  CHECK(both.shared_weight_names == std::vector<std::string>{"wq", "wo", "q_norm"});
  CHECK(both.featurizer_source.slot == 1);
  CHECK(both.state.elements(100) == 0);
  CHECK(spec.decode_state_elements(100) == 64 * 100);
  // Featurizer sharing with an op that owns K and V is refused: shapes differ.
  CHECK(error_of(R"({"d_model": 64, "slots": [{"class": "sa"}, {"class": "sa", "share_features": 0,
                     "share_featurizer": 0}]})")
            .find("/slots/1/share_featurizer: featurizer sharing needs identical weight shapes") !=
        std::string::npos);
}

TEST_CASE("differential and fused operators decode to the documented weights") {
  const char* text = R"({"d_model": 32, "slots": [
      {"fusion": "gate", "ops": [{"class": "sa", "heads": 2, "kv_heads": 2, "differential": true},
                                 {"class": "ssm", "expand": 2, "d_state": 4, "conv_kernel": 3, "differential": true}]},
      {"class": "moe", "experts": 4, "top_k": 1, "hidden": 16}]})";
  ModelSpec spec = decode(genome_from_json(parse_json_text(text, "t")));
  const auto& slot = spec.slots[0];
  REQUIRE(slot.weights.size() == 2);
  CHECK(slot.weights[1].name == "gate");
  const auto& sa = slot.ops[0];
  CHECK(sa.weights[0].shape == std::vector<int64_t>{64, 32});  // wq doubled
  CHECK(sa.weights[1].shape == std::vector<int64_t>{64, 32});  // wk doubled
  CHECK(sa.weights[2].shape == std::vector<int64_t>{32, 32});  // wv
  CHECK(sa.weights.back().name == "lambda");
  CHECK(sa.state.per_token_elements == 3 * 2 * 16);
  const auto& ssm = slot.ops[1];
  CHECK(ssm.weights[0].name == "in_proj");
  CHECK(ssm.weights[0].shape == std::vector<int64_t>{3 * 64, 32});
  CHECK(ssm.state.fixed_elements == 2 * 64 * 4 + 2 * 2 * 64);
  const auto& moe = spec.slots[1].ops[0];
  CHECK(moe.weights[1].shape == std::vector<int64_t>{4, 16, 32});
  CHECK(moe.weights[3].shape == std::vector<int64_t>{4, 32, 16});
}

TEST_CASE("damaged genome JSON is an InputError, never a crash") {
  // Replace random values of valid genomes by values of other types and ranges.
  const std::vector<Json> junk = {Json(nullptr),
                                  Json(-1),
                                  Json(0),
                                  Json(3),
                                  Json(1 << 30),
                                  Json(2.5),
                                  Json("sa"),
                                  Json(true),
                                  Json::array(),
                                  Json::object(),
                                  Json(int64_t(1) << 40),
                                  Json::parse(R"({"slot": 0, "op": 1})"),
                                  Json::parse(R"([{"class": "moe"}])")};
  livs::Rng rng(11);
  int accepted = 0, rejected = 0;
  for (int i = 0; i < 3000; ++i) {
    const auto& names = preset_names();
    Json doc =
        to_canonical_json(preset(names[rng.integer(0, static_cast<int64_t>(names.size()) - 1)], 64, 2));
    for (int edits = static_cast<int>(rng.integer(1, 3)); edits > 0; --edits) {
      // walk to a random value
      Json* at = &doc;
      while ((at->is_object() || at->is_array()) && !at->empty() && rng.bernoulli(0.8)) {
        auto it = at->begin();
        std::advance(it, rng.integer(0, static_cast<int64_t>(at->size()) - 1));
        at = &*it;
      }
      *at = junk[rng.integer(0, static_cast<int64_t>(junk.size()) - 1)];
    }
    try {
      Genome g = genome_from_json(doc, "fuzz.json");
      decode(g);  // whatever is accepted must decode
      ++accepted;
    } catch (const InputError& e) {
      REQUIRE(!e.problems().empty());
      for (const auto& p : e.problems()) REQUIRE(!p.message.empty());
      ++rejected;
    }
  }
  CHECK(rejected > 1000);
  CHECK(accepted > 0);
}
