#include <doctest/doctest.h>

#include <string>

#include "genome/operators.hpp"
#include "genome/presets.hpp"
#include "genome/search_space.hpp"

using namespace livs;
using namespace livs::genome;

namespace {

SearchSpace parse(const std::string& section_text) {
  Json doc = parse_json_text(R"({"search_space": )" + section_text + "}", "cfg.json");
  JsonReader root(doc, "cfg.json");
  return parse_search_space(root.at("search_space"));
}

std::string error_of(const std::string& section_text) {
  try {
    parse(section_text);
  } catch (const InputError& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("an empty search space section is the default space") {
  const SearchSpace s = parse("{}");
  const SearchSpace d = default_search_space();
  CHECK(s.d_model == d.d_model);
  CHECK(s.depth == std::vector<int>{8});
  CHECK(s.layout == Layout::alternating);
  CHECK(s.sa.heads == d.sa.heads);
  CHECK(s.swiglu_hiddens(128) == std::vector<int>{256, 344, 384, 512});
  CHECK(s.rec_widths(128) == std::vector<int>{128, 168, 256});
  CHECK(s.fusion_kinds.size() == 3);
  CHECK(s.featurizer_sharing);
  CHECK(s.max_params == 0);
  for (LivClass c : kAllClasses) CHECK(s.allows(c) == (c != LivClass::deltanet));  // deltanet: opt-in
}

TEST_CASE("search space sections are read as sets, ranges and switches") {
  const SearchSpace s = parse(R"({"d_model": [128, 64], "depth": {"min": 4, "max": 12, "step": 4},
      "classes": {"sa": 2, "gconv": 1, "swiglu": 1}, "sa": {"heads": 4, "kv_heads": [1, 4], "window": [0, 512]},
      "gconv": {"kernel": {"min": 2, "max": 5}}, "fusion": ["gate"], "sharing": {"features": false},
      "differential": false, "max_params": 2e6, "context": 256})");
  CHECK(s.d_model == std::vector<int>{64, 128});
  CHECK(s.depth == std::vector<int>{4, 8, 12});
  CHECK(s.class_weights[class_index(LivClass::sa)] == 2);
  CHECK_FALSE(s.allows(LivClass::rec));
  CHECK(s.sa.heads == std::vector<int>{4});
  CHECK(s.windows() == std::vector<int>{0});  // 512 >= context 256 is global attention
  CHECK(s.gconv.kernel == std::vector<int>{2, 3, 4, 5});
  CHECK(s.fusion_kinds == std::vector<FusionKind>{FusionKind::gate});
  CHECK(s.featurizer_sharing);
  CHECK_FALSE(s.feature_sharing);
  CHECK(s.differential_classes.empty());
  CHECK(s.max_params == 2000000);
  CHECK(s.context == 256);
}

TEST_CASE("search space errors name the file and JSON pointer") {
  CHECK(error_of(R"({"depth": "8"})") ==
        "cfg.json: /search_space/depth: expected an integer, an array of integers or {\"min\", \"max\", "
        "\"step\"}, "
        "got \"8\"");
  CHECK(error_of(R"({"classes": {"transformer": 1}})").find("cfg.json: /search_space/classes/transformer:") ==
        0);
  CHECK(error_of(R"({"sa": {"heads": [0]}})").find("cfg.json: /search_space/sa/heads/0:") == 0);
  CHECK(error_of(R"({"sa": {"head": [4]}})").find("cfg.json: /search_space/sa/head: unknown key") == 0);
  CHECK(error_of(R"({"d_model": 100})").find("cfg.json: /search_space/d_model: expected multiples of 8") ==
        0);
  CHECK(error_of(R"({"depth": 7})")
            .find("cfg.json: /search_space/depth: the alternating layout needs an even") == 0);
  CHECK(
      error_of(R"({"classes": ["sa", "gconv"]})").find("cfg.json: /search_space/classes: the alternating") ==
      0);
  CHECK(error_of(R"({"sa": {"heads": [3, 5]}})").find("cfg.json: /search_space/sa/heads: no value") == 0);
  CHECK(error_of(R"({"sa": {"heads": [4], "kv_heads": [3]}})")
            .find("cfg.json: /search_space/sa/kv_heads: no value divides heads 4") == 0);
  CHECK(error_of(R"({"moe": {"experts": 2, "top_k": 3}})").find("cfg.json: /search_space/moe/top_k:") == 0);
  CHECK(error_of(R"({"classes": {"sa": 0}})").find("cfg.json: /search_space/classes: no class") == 0);
  CHECK(error_of(R"({"fusion": "yes"})").find("cfg.json: /search_space/fusion:") == 0);
  CHECK(error_of(R"({"max_params": -1})").find("cfg.json: /search_space/max_params:") == 0);
  CHECK(error_of(R"([1])").find("cfg.json: /search_space: expected an object") == 0);
}

TEST_CASE("validate names every place where a genome leaves the space") {
  const SearchSpace s = parse(R"({"d_model": 128, "depth": 8, "classes": {"sa": 1, "swiglu": 1},
      "sa": {"heads": [4], "kv_heads": [4], "window": [0]}, "fusion": false, "sharing": false,
      "differential": false})");
  Genome g = preset("lfm2", 128, 3);  // gconv not allowed, kv_heads 2, 6 slots
  auto problems = validate(g, s);
  std::string text;
  for (const auto& p : problems) text += p.pointer + " ";
  CHECK(text == "/slots /slots/0/class /slots/2/class /slots/4/kv_heads ");
  const Genome fixed = repair(g, s);
  CHECK(validate(fixed, s).empty());
  CHECK(fixed.slots.size() == 8);
}

TEST_CASE("a base space supplies what the section leaves out, before the consistency checks") {
  SearchSpace base;
  base.d_model = {96};
  base.depth = {6};
  base.context = 64;
  Json doc = parse_json_text(R"({"sa": {"heads": [3], "window": [0, 32, 64]}})", "cfg.json");
  const SearchSpace s = parse_search_space(JsonReader(doc, "cfg.json", "/search_space"), base);
  CHECK(s.d_model == std::vector<int>{96});
  CHECK(s.depth == std::vector<int>{6});
  CHECK(s.windows() == std::vector<int>{0, 32});
  // With the defaults (d_model 128) three heads divide nothing.
  CHECK_THROWS_AS(parse_search_space(JsonReader(doc, "cfg.json", "/search_space")), InputError);
}
