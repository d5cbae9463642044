#include <doctest/doctest.h>

#include <string>

#include "search/settings.hpp"

using namespace livs;
using namespace livs::search;

namespace {
SearchSettings parse(const std::string& text) {
  const Json json = parse_json_text(text, "cfg.json");
  return parse_search_settings(JsonReader(json, "cfg.json"));
}

// The error message of parsing `text`, or "" when it parses.
std::string error_of(const std::string& text) {
  try {
    parse(text);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("a full search section parses") {
  const auto s = parse(R"({
    "seed": 7,
    "search": {"algorithm": "aging", "population": 20, "generations": 5, "offspring": 8,
               "tournament_size": 3, "crossover_probability": 0.5, "mutation_probability": 0.25,
               "aging_sample_size": 6, "max_evaluations": 100,
               "hypervolume": {"reference": {"perplexity": 300, "accuracy": 0.1, "speed": 0},
                               "ideal": {"perplexity": 1, "accuracy": 1, "speed": 10}}},
    "objectives": ["perplexity", {"name": "accuracy"}, {"name": "speed", "direction": "max"}],
    "constraints": {"params": {"max": 2e6}, "decode_ms": {"min": 0.1, "max": 1.5}}
  })");
  CHECK(s.seed == 7);
  CHECK(s.algorithm == Algorithm::aging);
  CHECK(s.population == 20);
  CHECK(s.generations == 5);
  CHECK(s.offspring == 8);
  CHECK(s.tournament_size == 3);
  CHECK(s.crossover_probability == 0.5);
  CHECK(s.mutation_probability == 0.25);
  CHECK(s.aging_sample_size == 6);
  CHECK(s.max_evaluations == 100);
  REQUIRE(s.objectives.size() == 3);
  CHECK(s.objectives[0].name == "perplexity");
  CHECK(s.objectives[0].direction == Direction::minimise);
  CHECK(s.objectives[1].direction == Direction::maximise);
  CHECK(s.objectives[2].direction == Direction::maximise);
  REQUIRE(s.constraints.size() == 2);
  CHECK(s.constraints[0].metric == "params");
  CHECK_FALSE(s.constraints[0].min.has_value());
  CHECK(*s.constraints[0].max == 2e6);
  CHECK(*s.constraints[1].min == 0.1);
  REQUIRE(s.hypervolume_reference.has_value());
}

TEST_CASE("defaults fill a minimal config") {
  // The hypervolume block lists objectives in any order; values come back in objective order.
  const auto s = parse(R"({"objectives": ["params", "perplexity"],
                           "search": {"population": 10, "hypervolume": {"reference": {"perplexity": 50, "params": 1e6}}}})");
  CHECK(s.algorithm == Algorithm::nsga2);
  CHECK(s.seed == 0);
  CHECK(s.offspring == 10);
  CHECK(s.aging_sample_size == 2);
  CHECK(s.constraints.empty());
  REQUIRE(s.hypervolume_reference.has_value());
  CHECK(*s.hypervolume_reference == std::vector<double>{1e6, 50});
  CHECK_FALSE(s.hypervolume_ideal.has_value());
}

TEST_CASE("errors name the file, the JSON pointer and the expectation") {
  CHECK(error_of(R"({"objectives": ["perplexity"], "search": {"population": "16"}})") ==
        "cfg.json: /search/population: expected an integer >= 2, got \"16\"");
  CHECK(error_of(R"({"objectives": ["perplexity"], "search": {"algorithm": "cmaes"}})") ==
        "cfg.json: /search/algorithm: expected one of nsga2, random, aging, got \"cmaes\"");
  CHECK(error_of(R"({"objectives": ["perplexity"], "search": {"populaton": 3}})").find("/search/populaton") !=
        std::string::npos);
  CHECK(error_of(R"({"search": {}})") == "cfg.json: /: missing required key \"objectives\"");
  CHECK(error_of(R"({"objectives": []})").find("cfg.json: /objectives: expected a non-empty array") == 0);
  CHECK(error_of(R"({"objectives": ["beauty"]})")
            .find("cfg.json: /objectives/0: objective \"beauty\" has no default") == 0);
  CHECK(error_of(R"({"objectives": [{"name": "x", "direction": "up"}]})") ==
        "cfg.json: /objectives/0/direction: expected one of min, max, got \"up\"");
  CHECK(error_of(R"({"objectives": ["params", "params"]})").find("/objectives/1") != std::string::npos);
  CHECK(error_of(R"({"objectives": ["params"], "constraints": {"params": {}}})")
            .find("cfg.json: /constraints/params: expected an object with") == 0);
  CHECK(error_of(R"({"objectives": ["params"], "constraints": {"params": {"max": "big"}}})") ==
        "cfg.json: /constraints/params/max: expected a number, got \"big\"");
  CHECK(error_of(R"({"objectives": ["params"], "constraints": {"params": {"min": 5, "max": 1}}})")
            .find("/constraints/params: \"min\" is greater") != std::string::npos);
  CHECK(error_of(R"({"objectives": ["params"], "search": {"tournament_size": 17}})") ==
        "cfg.json: /search/tournament_size: expected an integer in [1, 16], got 17");
  CHECK(error_of(R"({"objectives": ["params"], "search": {"mutation_probability": 1.5}})") ==
        "cfg.json: /search/mutation_probability: expected a number in [0, 1], got 1.5");
  CHECK(
      error_of(
          R"({"objectives": ["params", "perplexity"], "search": {"hypervolume": {"reference": {"params": 1}}}})") ==
      "cfg.json: /search/hypervolume/reference: missing required key \"perplexity\"");
  CHECK(
      error_of(
          R"({"objectives": ["params"], "search": {"hypervolume": {"reference": {"params": 1, "flops": 2}}}})")
          .find("/search/hypervolume/reference/flops") != std::string::npos);
  CHECK(error_of(R"({"objectives": ["accuracy"], "search": {"hypervolume": {"reference": {"accuracy": 1},
                                                                            "ideal": {"accuracy": 0.5}}}})")
            .find("/search/hypervolume/reference/accuracy: the reference must be worse") !=
        std::string::npos);
  CHECK(error_of(R"({"objectives": ["params"], "seed": -1})") ==
        "cfg.json: /seed: expected an integer >= 0, got -1");
}

TEST_CASE("fidelity: a share of the training budget, above 0 and at most 1") {
  CHECK(parse(R"({"objectives": ["perplexity"]})").fidelity == 1.0);
  CHECK(parse(R"({"objectives": ["perplexity"], "search": {"fidelity": 0.25}})").fidelity == 0.25);
  CHECK(error_of(R"({"objectives": ["perplexity"], "search": {"fidelity": 0}})") ==
        "cfg.json: /search/fidelity: expected a number in (0, 1], got 0");
  CHECK(error_of(R"({"objectives": ["perplexity"], "search": {"fidelity": 1.5}})") ==
        "cfg.json: /search/fidelity: expected a number in (0, 1], got 1.5");
}

TEST_CASE("fidelities: increasing rungs above 0 and at most 1 with eta, one rung is a single fidelity") {
  const auto rungs =
      parse(R"({"objectives": ["perplexity"], "search": {"fidelities": [0.1, 0.3, 1], "eta": 4}})");
  CHECK(rungs.rungs() == std::vector<double>{0.1, 0.3, 1.0});
  CHECK(rungs.eta == 4);
  CHECK(rungs.top_fidelity() == 1.0);
  const auto one = parse(R"({"objectives": ["perplexity"], "search": {"fidelities": [0.5]}})");
  CHECK(one.fidelities.empty());
  CHECK(one.rungs() == std::vector<double>{0.5});
  CHECK(parse(R"({"objectives": ["perplexity"]})").eta == 3);
  CHECK(error_of(R"({"objectives": ["perplexity"], "search": {"fidelities": [0.3, 0.1]}})") ==
        "cfg.json: /search/fidelities/1: expected a fidelity greater than the one before it, got 0.1");
  CHECK(error_of(R"({"objectives": ["perplexity"], "search": {"fidelities": [0.3, 2]}})") ==
        "cfg.json: /search/fidelities/1: expected a number in (0, 1], got 2");
  CHECK(error_of(R"({"objectives": ["perplexity"], "search": {"fidelities": []}})") ==
        "cfg.json: /search/fidelities: expected a non-empty array of increasing fidelities in (0, 1], got an "
        "array");
  CHECK(error_of(R"({"objectives": ["perplexity"], "search": {"fidelities": [0.5, 1], "fidelity": 1}})")
            .find("either \"fidelity\"") != std::string::npos);
  CHECK(error_of(R"({"objectives": ["perplexity"], "search": {"eta": 1}})") ==
        "cfg.json: /search/eta: expected an integer in [2, 1000], got 1");
  CHECK(parse(R"({"objectives": ["perplexity"], "search": {"max_train_seconds": 90}})").max_train_seconds ==
        90.0);
  CHECK(error_of(R"({"objectives": ["perplexity"], "search": {"max_train_seconds": -1}})")
            .find("/search/max_train_seconds") != std::string::npos);
}

TEST_CASE("default directions and ideals of known objectives") {
  CHECK(default_direction("perplexity") == Direction::minimise);
  CHECK(default_direction("cache_bytes") == Direction::minimise);
  CHECK(default_direction("decode_ms") == Direction::minimise);
  CHECK(default_direction("accuracy") == Direction::maximise);
  CHECK(default_direction("mqar_accuracy") == Direction::maximise);
  CHECK_FALSE(default_direction("beauty").has_value());
  CHECK(known_ideal("perplexity") == 1.0);
  CHECK(known_ideal("params") == 0.0);
  CHECK(known_ideal("mqar_accuracy") == 1.0);
  CHECK_FALSE(known_ideal("beauty").has_value());
}

TEST_CASE("final stage: top, seeds and save_weights, or false") {
  const auto s = parse(
      R"({"objectives": ["perplexity"], "search": {"final": {"top": 3, "seeds": 2, "save_weights": true}}})");
  CHECK(s.final_top == 3);
  CHECK(s.final_seeds == 2);
  CHECK(s.final_save_weights);
  CHECK_FALSE(parse(R"({"objectives": ["perplexity"], "search": {"final": {"top": 3}}})").final_save_weights);
  CHECK(parse(R"({"objectives": ["perplexity"], "search": {"final": false}})").final_seeds == 0);
  CHECK(error_of(R"({"objectives": ["perplexity"], "search": {"final": {"save_weights": "yes"}}})")
            .find("/search/final/save_weights") != std::string::npos);
  CHECK(error_of(R"({"objectives": ["perplexity"], "search": {"final": {"keep": true}}})")
            .find("save_weights") != std::string::npos);
}
