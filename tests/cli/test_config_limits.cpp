// Config values at the edge of what a number can hold: accepted or refused
// with a clear error, never undefined behaviour (fuzz_config found a params
// maximum of 2.5e116 converted to int64; under UBSan that aborted the check).
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "common/json_reader.hpp"
#include "run_command.hpp"

using livs::Json;
using livs::test::run_livsearch;

TEST_CASE("a params maximum beyond any integer limits nothing, and check accepts it") {
  namespace fs = std::filesystem;
  const fs::path folder =
      fs::temp_directory_path() / ("livsearch_config_limits_" + std::to_string(::getpid()));
  fs::remove_all(folder);
  fs::create_directories(folder);
  for (const double max : {2.5e116, -2.5e116, 1e19}) {
    CAPTURE(max);
    const Json config = {
        {"name", "limits"},
        {"seed", 1},
        {"data", {{"path", std::string(LIVSEARCH_SOURCE_DIR) + "/data/kjv.txt"}}},
        {"model", {{"d_model", 32}, {"layers", 1}, {"context_length", 64}}},
        {"training",
         {{"steps", 4}, {"batch_size", 2}, {"seq_len", 32}, {"warmup_steps", 1}, {"eval_tokens", 64}}},
        {"objectives", {"perplexity", "cache_bytes"}},
        {"constraints", {{"params", {{"max", max}}}}},
        {"search", {{"algorithm", "random"}, {"population", 2}, {"generations", 1}}},
        {"device", "cpu"}};
    const fs::path path = folder / "config.json";
    std::ofstream(path) << config.dump(2) << "\n";
    const auto result = run_livsearch("check '" + path.string() + "'", "config_limits");
    CHECK_MESSAGE(result.exit_code == 0, result.err);
  }
  fs::remove_all(folder);
}
