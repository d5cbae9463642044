// `livsearch eval` end to end through the real binary, on a tiny config (a
// one-layer d_model 32 Transformer++, four training steps on the shipped
// corpus): the JSON output parses, carries every reported number, and two
// runs of the same command give identical numbers.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "common/json_reader.hpp"
#include "run_command.hpp"

using livs::Json;
using livs::test::lines_of;
using livs::test::run_livsearch;

namespace {

const std::string kTiny = "--config tests/cli/tiny_config.json";

Json eval_json(const std::string& architecture, const std::string& tag) {
  const auto result = run_livsearch("eval " + architecture + " " + kTiny + " --format json", tag);
  CAPTURE(result.err);
  REQUIRE(result.exit_code == 0);
  return livs::parse_json_text(result.out, "eval stdout");
}

// Everything but the wall-clock times must be identical between runs.
void check_same_numbers(const Json& a, const Json& b) {
  for (const char* key : {"hash", "seed", "status", "perplexity", "validation_loss", "validation_tokens",
                          "params_total", "params_non_embedding", "steps", "final_train_loss"}) {
    CAPTURE(key);
    CHECK(a.at(key) == b.at(key));
  }
}

}  // namespace

TEST_CASE("eval --format json: every number present, the same twice") {
  const Json first = eval_json("--preset transformer", "eval_json_1");
  CHECK(first["status"] == "ok");
  CHECK(first["steps"] == 4);
  const double perplexity = first["perplexity"];
  // Four steps barely move a model from uniform over 256 bytes.
  CHECK(perplexity > 1.0);
  CHECK(perplexity < 400.0);
  CHECK(std::exp(first["validation_loss"].get<double>()) == doctest::Approx(perplexity));
  CHECK(first["validation_tokens"].get<int64_t>() > 0);
  // d_model 32, one sa + one swiglu slot: the embedding is 256 x 32.
  CHECK(first["params_total"].get<int64_t>() - first["params_non_embedding"].get<int64_t>() == 256 * 32);
  CHECK(first["wall_seconds"].get<double>() > 0.0);
  CHECK(first["genome"]["d_model"] == 32);

  const Json second = eval_json("--preset transformer", "eval_json_2");
  check_same_numbers(first, second);
}

TEST_CASE("eval of a genome file equals eval of the preset it was written from") {
  const Json from_preset = eval_json("--preset transformer", "eval_file_1");
  const auto folder =
      std::filesystem::temp_directory_path() / ("livsearch_eval_genome_" + std::to_string(::getpid()));
  std::filesystem::create_directories(folder);
  const auto genome_file = folder / "transformer.json";
  std::ofstream(genome_file) << from_preset["genome"].dump(2);
  std::string quoted_file = "'";  // (built step by step: GCC 12 warns falsely on "'" + string)
  quoted_file.append(genome_file.string()).append("'");
  const Json from_file = eval_json(quoted_file, "eval_file_2");
  std::filesystem::remove_all(folder);
  check_same_numbers(from_preset, from_file);
  CHECK(from_file["architecture"] == genome_file.string());
}

TEST_CASE("eval table output and progress lines on a pipe") {
  const auto result = run_livsearch("eval --preset transformer " + kTiny, "eval_table");
  CAPTURE(result.err);
  REQUIRE(result.exit_code == 0);
  for (const char* label : {"held-out perplexity", "validation loss", "params total", "params non-embedding",
                            "steps", "wall time"}) {
    CAPTURE(label);
    CHECK(result.out.find(label) != std::string::npos);
  }
  // Piped stderr gets plain lines, no terminal control sequences.
  CHECK(result.err.find("step 4/4") != std::string::npos);
  CHECK(result.err.find('\r') == std::string::npos);
}

TEST_CASE("eval argument and input errors: one line, non-zero exit") {
  auto both = run_livsearch("eval tests/cli/tiny_config.json --preset transformer " + kTiny, "eval_both");
  CHECK(both.exit_code == 2);
  CHECK(lines_of(both.err).size() == 1);
  CHECK(both.err.find("exactly one of") != std::string::npos);

  auto unknown = run_livsearch("eval --preset nosuchthing " + kTiny, "eval_unknown");
  CHECK(unknown.exit_code == 2);
  REQUIRE(lines_of(unknown.err).size() == 1);
  CHECK(unknown.err.find("unknown preset \"nosuchthing\"") != std::string::npos);

  auto format = run_livsearch("eval --preset transformer --format yaml " + kTiny, "eval_format");
  CHECK(format.exit_code == 2);
  CHECK(lines_of(format.err).size() == 1);

  auto broken_config = run_livsearch(
      "eval --preset transformer --config tests/cli/broken_configs/seed_negative.json", "eval_bad");
  CHECK(broken_config.exit_code == 2);
  CHECK(broken_config.err ==
        "error: tests/cli/broken_configs/seed_negative.json: /seed: expected an integer >= 0, got -3\n");

  // A genome file that is not a genome names the file and the place.
  auto not_genome = run_livsearch("eval tests/cli/tiny_config.json " + kTiny, "eval_not_genome");
  CHECK(not_genome.exit_code == 2);
  CHECK(not_genome.err.rfind("error: tests/cli/tiny_config.json: ", 0) == 0);
}
