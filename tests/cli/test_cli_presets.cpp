// `livsearch presets` through the real binary: the list, one preset as
// genome JSON that reads back to the same genome, and errors with exit 2.
#include <doctest/doctest.h>

#include "common/json_reader.hpp"
#include "genome/genome_json.hpp"
#include "genome/presets.hpp"
#include "run_command.hpp"

using livs::test::lines_of;
using livs::test::run_livsearch;

TEST_CASE("livsearch presets lists every preset with its summary") {
  const auto r = run_livsearch("presets", "presets_list");
  REQUIRE(r.exit_code == 0);
  const auto lines = lines_of(r.out);
  const auto& names = livs::genome::preset_names();
  REQUIRE(lines.size() == names.size());
  for (std::size_t i = 0; i < names.size(); ++i) {
    CHECK(lines[i].rfind(names[i] + " ", 0) == 0);
    CHECK(lines[i].find(livs::genome::summary(livs::genome::preset(names[i], 128, 4))) != std::string::npos);
  }
  const auto small = run_livsearch("presets --d-model 64 --layers 2", "presets_small");
  CHECK(small.out.find("transformer          d64 L4 | sa(2,kv2) swiglu sa(2,kv2) swiglu") == 0);
}

TEST_CASE("livsearch presets NAME prints the canonical genome JSON") {
  for (const auto& name : livs::genome::preset_names()) {
    CAPTURE(name);
    const auto r = run_livsearch("presets " + name + " --d-model 96 --layers 3", "presets_" + name);
    REQUIRE(r.exit_code == 0);
    const auto g = livs::genome::genome_from_json(livs::parse_json_text(r.out, "stdout"), "stdout");
    CHECK(g == livs::genome::preset(name, 96, 3));
  }
}

TEST_CASE("livsearch presets rejects unknown names and bad sizes with exit 2") {
  const auto unknown = run_livsearch("presets gpt2", "presets_unknown");
  CHECK(unknown.exit_code == 2);
  CHECK(unknown.err.find("error: presets: unknown preset \"gpt2\"") == 0);
  const auto width = run_livsearch("presets transformer --d-model 100", "presets_width");
  CHECK(width.exit_code == 2);
  CHECK(width.err.find("d_model: expected a multiple of 8") != std::string::npos);
  const auto layers = run_livsearch("presets lfm2 --layers 0", "presets_layers");
  CHECK(layers.exit_code == 2);
  CHECK(lines_of(layers.err).size() == 1);
}
