// `livsearch check` through the real binary: every broken config gets exactly
// one line on stderr naming the file, the JSON pointer and the expectation,
// and a non-zero exit; a good config prints its resolved form.
#include <doctest/doctest.h>

#include <filesystem>
#include <map>

#include "common/json_reader.hpp"
#include "run_command.hpp"

using livs::test::lines_of;
using livs::test::run_livsearch;

namespace {

const std::string kBrokenFolder = "tests/cli/broken_configs/";

// File name -> the start of what must follow "error: <file>: " on stderr.
const std::map<std::string, std::string>& expected_errors() {
  static const std::map<std::string, std::string> table = {
      {"candidate_timeout_negative.json",
       "/search/candidate_timeout: expected a number of seconds in [0, 1e9] (0: no limit; leave it out for "
       "the "
       "default), got -5"},
      {"candidate_timeout_string.json", "/search/candidate_timeout: expected a number, got \"10m\""},
      {"constraint_min_above_max.json", "/constraints/params: \"min\" is greater than \"max\""},
      {"d_model_not_multiple_of_8.json", "/model/d_model: expected a multiple of 8, got 100"},
      {"data_format_unknown.json", "/data/format: expected one of text, tokens, got \"utf8\""},
      {"data_path_missing.json", "/data/path: data file \"../../../data/no_such_corpus.txt\" does not exist"},
      {"device_unknown.json",
       "/device: expected \"auto\", \"all\", \"cpu\", \"cuda\", \"cuda:N\" or an array of them, got \"gpu\""},
      {"invalid_json.json", "line 4 column 1: invalid JSON: syntax error"},
      {"latency_repeats_zero.json", "/latency/repeats: expected an integer in [1, 100000], got 0"},
      {"layers_zero.json", "/model/layers: expected an integer in [1, 256], got 0"},
      {"missing_model.json", "/: missing required key \"model\""},
      {"missing_name.json", "/: missing required key \"name\""},
      {"missing_objectives.json", "/: missing required key \"objectives\""},
      {"model_unknown_key.json",
       "/model/heads: unknown key (expected one of d_model, layers, context_length)"},
      {"name_with_space.json",
       "/name: expected a name of 1-100 letters, digits, '-', '_' or '.', got \"my run\""},
      {"not_an_object.json", "/: expected an object, got an array"},
      {"objective_without_direction.json", "/objectives/0: missing required key \"direction\""},
      {"population_is_string.json", "/search/population: expected an integer >= 2, got \"16\""},
      {"population_too_small.json", "/search/population: expected an integer >= 2, got 1"},
      {"seed_is_string.json", "/seed: expected an integer >= 0, got \"1\""},
      {"seed_negative.json", "/seed: expected an integer >= 0, got -3"},
      {"tasks_unknown.json", "/tasks/telepathy: unknown task \"telepathy\""},
      {"training_not_object.json", "/training: expected an object, got 600"},
      {"training_steps_zero.json", "/training/steps: expected an integer in [1, 10000000], got 0"},
      {"search_space_unknown_class.json",
       "/search_space/classes/1: expected one of sa, linattn, rec, ssm, gconv"},
      {"search_space_vocab_mismatch.json",
       "/search_space/vocab: expected the data's vocabulary 256, got 512"},
      {"unknown_top_level_key.json", "/epochs: unknown key (expected one of name, seed, data, model"},
      {"validation_fraction_too_large.json",
       "/data/validation_fraction: expected a number in [1e-06, 0.5], got 0.9"},
  };
  return table;
}

}  // namespace

TEST_CASE("every broken config has a stated expected error, and there are at least ten") {
  std::size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(LIVSEARCH_SOURCE_DIR "/" + kBrokenFolder)) {
    const auto name = entry.path().filename().string();
    CAPTURE(name);
    CHECK(expected_errors().count(name) == 1);
    ++files;
  }
  CHECK(files == expected_errors().size());
  CHECK(files >= 10);
}

TEST_CASE("each broken config: one line on stderr naming file and JSON pointer, exit 2") {
  for (const auto& [name, expected] : expected_errors()) {
    const std::string file = kBrokenFolder + name;
    const auto result = run_livsearch("check " + file, "broken");
    CAPTURE(file);
    CAPTURE(result.err);
    CHECK(result.exit_code == 2);
    CHECK(result.out.empty());
    const auto lines = lines_of(result.err);
    REQUIRE(lines.size() == 1);
    const std::string prefix = "error: " + file + ": ";
    REQUIRE(lines[0].rfind(prefix, 0) == 0);
    CHECK(lines[0].substr(prefix.size(), expected.size()) == expected);
  }
}

TEST_CASE("check prints the resolved quick config as JSON") {
  const auto result = run_livsearch("check configs/quick.json", "quick");
  CAPTURE(result.err);
  REQUIRE(result.exit_code == 0);
  CHECK(result.err.empty());
  const auto json = livs::parse_json_text(result.out, "stdout");
  CHECK(json["name"] == "quick");
  CHECK(json["model"]["d_model"] == 128);
  // The data path is resolved against the config's folder and made absolute.
  const std::string path = json["data"]["path"];
  CHECK(std::filesystem::path(path).is_absolute());
  CHECK(std::filesystem::equivalent(path, LIVSEARCH_SOURCE_DIR "/data/kjv.txt"));
  CHECK(json["data"]["vocab"] == 256);
  CHECK(json["objectives"][0]["name"] == "perplexity");
  CHECK(json["search"]["population"] == 6);
  CHECK(json["search"]["fidelity"] == 0.1);
  // Training defaults are filled in by the evaluator's parser.
  CHECK(json["training"]["steps"] == 600);
  CHECK(json["training"]["min_lr_ratio"] == 0.1);
}

TEST_CASE("check: a missing config file and bad arguments are one-line errors") {
  auto missing = run_livsearch("check configs/does_not_exist.json", "missing");
  CHECK(missing.exit_code == 2);
  CHECK(missing.err == "error: configs/does_not_exist.json: no such file, expected a JSON file\n");
  auto no_argument = run_livsearch("check", "noarg");
  CHECK(no_argument.exit_code == 2);
  CHECK(lines_of(no_argument.err).size() == 1);
  auto unknown_option = run_livsearch("check --frobnicate configs/quick.json", "badopt");
  CHECK(unknown_option.exit_code == 2);
  CHECK(lines_of(unknown_option.err).size() == 1);
}
