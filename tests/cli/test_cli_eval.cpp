// `livsearch eval` end to end through the real binary, on a tiny config (d_model
// 32, one layer, four training steps on the shipped corpus): several
// architectures over several seeds, the JSON carries every metric the search
// records, replicate k trains with the search's seed for replicate k, two runs
// of one command give identical numbers, and bad input stops everything before
// anything trains. tests/cli/eval_winner.json is `livsearch presets griffin
// --d-model 32 --layers 1`.
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "common/evaluate_contract.hpp"
#include "common/json_reader.hpp"
#include "run_command.hpp"

using livs::Json;
using livs::test::lines_of;
using livs::test::run_livsearch;

namespace {

const std::string kTiny = "--config tests/cli/tiny_config.json";
const std::string kGenomeFile = "tests/cli/eval_winner.json";
constexpr uint64_t kTinySeed = 7;  // tiny_config.json's "seed"

Json eval_json(const std::string& arguments, const std::string& tag) {
  const auto result = run_livsearch("eval " + arguments + " " + kTiny + " --format json", tag);
  CAPTURE(result.err);
  REQUIRE(result.exit_code == 0);
  const Json out = livs::parse_json_text(result.out, "eval stdout");
  REQUIRE(out.is_array());
  return out;
}

// Everything but the times must be identical between two runs.
void check_same_numbers(const Json& a, const Json& b) {
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    for (const char* key :
         {"architecture", "hash", "genome", "seeds_ok", "perplexity", "cache_bytes", "params"})
      CHECK(a[i].at(key) == b[i].at(key));
    REQUIRE(a[i]["seeds"].size() == b[i]["seeds"].size());
    for (std::size_t k = 0; k < a[i]["seeds"].size(); ++k) {
      Json sa = a[i]["seeds"][k], sb = b[i]["seeds"][k];
      for (Json* s : {&sa, &sb}) {
        s->erase("wall_seconds");
        (*s)["metrics"].erase("train_seconds");
      }
      CHECK(sa == sb);
    }
  }
}

const char* const kEveryRun[] = {"perplexity",
                                 "validation_loss",
                                 "params",
                                 "params_non_embedding",
                                 "flops_per_token_train",
                                 "flops_per_token_infer",
                                 "cache_bytes",
                                 "peak_memory_train",
                                 "peak_memory_infer",
                                 "train_seconds",
                                 "steps"};

}  // namespace

TEST_CASE("eval of two presets and a genome file over two seeds: every metric, the same twice") {
  const std::string arguments = "--preset transformer --preset lfm2 " + kGenomeFile + " --seeds 2";
  const Json first = eval_json(arguments, "eval_many_1");
  REQUIRE(first.size() == 3);
  // Command-line order: the presets, then the file.
  CHECK(first[0]["architecture"] == "preset transformer");
  CHECK(first[1]["architecture"] == "preset lfm2");
  CHECK(first[2]["architecture"] == kGenomeFile);
  for (const auto& arch : first) {
    CAPTURE(arch["architecture"]);
    CHECK(arch["config"] == "tests/cli/tiny_config.json");
    CHECK(arch["device"] == "cpu");
    CHECK(arch["steps"] == 4);
    CHECK(arch["status"] == "ok");
    CHECK(arch["seeds_ok"] == 2);
    CHECK(arch["genome"]["d_model"] == 32);
    CHECK(arch["cache_bytes"].get<double>() > 0.0);
    CHECK(arch["params"].get<double>() > 0.0);
    REQUIRE(arch["seeds"].size() == 2);
    for (const auto& seed : arch["seeds"]) {
      CHECK(seed["status"] == "ok");
      CHECK_FALSE(seed.contains("error"));
      CHECK(seed["wall_seconds"].get<double>() > 0.0);
      for (const char* metric : kEveryRun) {
        CAPTURE(metric);
        REQUIRE(seed["metrics"].contains(metric));
        CHECK(std::isfinite(seed["metrics"][metric].get<double>()));
      }
      // Four steps barely move a model from uniform over 256 bytes.
      const double perplexity = seed["metrics"]["perplexity"];
      CHECK(perplexity > 1.0);
      CHECK(perplexity < 400.0);
      CHECK(std::exp(seed["metrics"]["validation_loss"].get<double>()) == doctest::Approx(perplexity));
    }
    // The summary over seeds: every metric, mean/std/min/max/n, perplexity at the top too.
    for (const char* metric : kEveryRun) {
      CAPTURE(metric);
      const Json& s = arch["metrics"].at(metric);
      CHECK(s["n"] == 2);
      CHECK(s["min"].get<double>() <= s["mean"].get<double>());
      CHECK(s["mean"].get<double>() <= s["max"].get<double>());
    }
    const double p0 = arch["seeds"][0]["metrics"]["perplexity"],
                 p1 = arch["seeds"][1]["metrics"]["perplexity"];
    CHECK(arch["perplexity"]["mean"].get<double>() == doctest::Approx((p0 + p1) / 2));
    // Sample standard deviation of two values: |a - b| / sqrt(2).
    CHECK(arch["perplexity"]["std"].get<double>() == doctest::Approx(std::fabs(p0 - p1) / std::sqrt(2.0)));
    CHECK(arch["metrics"]["cache_bytes"]["std"] == 0.0);
  }
  // d_model 32, one sa + one swiglu slot: the embedding is 256 x 32.
  CHECK(first[0]["metrics"]["params"]["mean"].get<double>() -
            first[0]["metrics"]["params_non_embedding"]["mean"].get<double>() ==
        256 * 32);
  // Different architectures, different numbers.
  CHECK(first[0]["hash"] != first[1]["hash"]);
  CHECK(first[0]["cache_bytes"] != first[1]["cache_bytes"]);

  const Json second = eval_json(arguments, "eval_many_2");
  check_same_numbers(first, second);
}

TEST_CASE("eval replicate 0 is the single-seed run, and replicate k trains with the search's seed k") {
  const Json one = eval_json("--preset transformer", "eval_replicates_1");
  const Json two = eval_json("--preset transformer --seeds 2", "eval_replicates_2");
  REQUIRE(one.size() == 1);
  REQUIRE(two.size() == 1);
  REQUIRE(one[0]["seeds"].size() == 1);
  REQUIRE(two[0]["seeds"].size() == 2);
  const std::string hash = one[0]["hash"];
  for (int k = 0; k < 2; ++k) {
    CHECK(two[0]["seeds"][k]["replicate"] == k);
    CHECK(two[0]["seeds"][k]["seed"].get<uint64_t>() == livs::evaluation_seed(kTinySeed, hash, k));
  }
  const double single = one[0]["seeds"][0]["metrics"]["perplexity"];
  CHECK(two[0]["seeds"][0]["metrics"]["perplexity"].get<double>() == single);
  CHECK(two[0]["seeds"][1]["metrics"]["perplexity"].get<double>() != single);
  // One seed: the mean is that seed's value, the spread 0.
  CHECK(one[0]["perplexity"]["mean"].get<double>() == single);
  CHECK(one[0]["perplexity"]["std"] == 0.0);
}

TEST_CASE("eval table: a row per architecture, mean +- sd with two seeds, plain progress lines on a pipe") {
  const auto result =
      run_livsearch("eval --preset transformer " + kGenomeFile + " --seeds 2 " + kTiny, "eval_table");
  CAPTURE(result.err);
  REQUIRE(result.exit_code == 0);
  const auto lines = lines_of(result.out);
  // The setting, the header, a rule, then a row per architecture.
  REQUIRE(lines.size() == 5);
  CHECK(lines[0] ==
        "config tests/cli/tiny_config.json, device cpu, 4 steps of 2 x 16 tokens, 2 seeds per "
        "architecture");
  for (const char* column : {"architecture", "hash", "perplexity", "validation_loss", "params",
                             "params_non_embedding", "cache_bytes", "flops_per_token_train",
                             "flops_per_token_infer", "peak_memory_train", "seeds ok", "summary"}) {
    CAPTURE(column);
    CHECK(lines[1].find(column) != std::string::npos);
  }
  CHECK(lines[1].find("error") == std::string::npos);  // nothing failed
  CHECK(lines[3].rfind("preset transformer ", 0) == 0);
  CHECK(lines[4].rfind(kGenomeFile + " ", 0) == 0);
  for (int row : {3, 4}) {
    CAPTURE(lines[row]);
    CHECK(lines[row].find(" \u00b1 ") != std::string::npos);
    CHECK(lines[row].find(" 2/2 ") != std::string::npos);
    CHECK(lines[row].find("d32 L2 | ") != std::string::npos);
  }
  // Progress on stderr: a line per architecture and seed, plain step lines, the unit.
  for (const char* line :
       {"[1/4] preset transformer, seed 1/2", "[2/4] preset transformer, seed 2/2",
        "[4/4] tests/cli/eval_winner.json, seed 2/2", "step 4/4", "per byte (vocab 256)"}) {
    CAPTURE(line);
    CHECK(result.err.find(line) != std::string::npos);
  }
  CHECK(result.err.find('\r') == std::string::npos);

  // One seed: the mean alone.
  const auto single = run_livsearch("eval --preset transformer " + kTiny, "eval_table_single");
  REQUIRE(single.exit_code == 0);
  CHECK(single.out.find("\u00b1") == std::string::npos);
  CHECK(single.out.find(" 1/1 ") != std::string::npos);
}

TEST_CASE("eval: a failed evaluation is reported in its row, the others still run, exit 1") {
  // The config asks for the mqar task, whose 8192-token vocabulary no model of
  // these 256-byte data can hold: every evaluation trains, then fails.
  const std::string arguments =
      "--preset transformer --preset lfm2 --config tests/cli/eval_failing_tasks.json";
  const auto json = run_livsearch("eval " + arguments + " --format json", "eval_failed_json");
  CAPTURE(json.err);
  CHECK(json.exit_code == 1);
  const Json out = livs::parse_json_text(json.out, "eval stdout");
  REQUIRE(out.size() == 2);
  for (const auto& arch : out) {
    CHECK(arch["status"] == "failed");
    CHECK(arch["seeds_ok"] == 0);
    CHECK(arch["perplexity"].is_null());
    CHECK(arch["metrics"].empty());
    CHECK(arch["seeds"][0]["status"] == "failed");
    CHECK(arch["seeds"][0]["error"].get<std::string>().find("task mqar") != std::string::npos);
  }
  CHECK(json.err.find("error: 2 of 2 evaluations failed") != std::string::npos);

  const auto table = run_livsearch("eval " + arguments, "eval_failed_table");
  CHECK(table.exit_code == 1);
  const auto lines = lines_of(table.out);
  REQUIRE(lines.size() == 5);
  CHECK(lines[1].find("error") != std::string::npos);
  for (int row : {3, 4}) {
    CAPTURE(lines[row]);
    CHECK(lines[row].find(" 0/1 ") != std::string::npos);
    CHECK(lines[row].find("seed 1: task mqar") != std::string::npos);
  }
}

TEST_CASE("eval argument and input errors: one line, exit 2, nothing trained") {
  struct Case {
    std::string arguments, expected;
    bool one_line = true;
  };
  const Case cases[] = {
      {"--preset transformer --preset nosuchthing " + kTiny, "unknown preset \"nosuchthing\""},
      {"--preset transformer,nosuchthing " + kTiny, "unknown preset \"nosuchthing\""},
      {"--preset transformer --seeds 0 " + kTiny, "error: --seeds: expected an integer in [1, 100], got 0"},
      {"--preset transformer --seeds 101 " + kTiny, "--seeds"},
      {"--preset transformer tests/cli/eval_no_such_file.json " + kTiny, "tests/cli/eval_no_such_file.json"},
      {kTiny, "give at least one GENOME.json or --preset NAME"},
      {"--preset transformer --format yaml " + kTiny, "--format"},
      {"--preset transformer --device nosuchdevice " + kTiny, "nosuchdevice"},
      // A file that is not a genome names the file, and each problem on a line of its own.
      {"--preset transformer tests/cli/tiny_config.json " + kTiny,
       "error: tests/cli/tiny_config.json: ", false},
      {"--preset transformer --config tests/cli/broken_configs/seed_negative.json",
       "error: tests/cli/broken_configs/seed_negative.json: /seed: expected an integer >= 0, got -3"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.arguments);
    const auto result = run_livsearch("eval " + c.arguments, "eval_errors");
    CAPTURE(result.err);
    CHECK(result.exit_code == 2);
    CHECK(result.out.empty());
    if (c.one_line) CHECK(lines_of(result.err).size() == 1);
    CHECK(result.err.find(c.expected) != std::string::npos);
    CHECK(result.err.find("[1/") == std::string::npos);  // no evaluation started
  }
}
