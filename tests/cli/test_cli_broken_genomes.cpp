// Every hand-written broken genome file of tests/genome/broken/ through the
// real binary, as a user meets it: `livsearch eval FILE` exits non-zero
// without crashing and says, on stderr, the file and the place in it.
#include <doctest/doctest.h>

#include <filesystem>
#include <string>

#include "run_command.hpp"

using livs::test::run_livsearch;

TEST_CASE("livsearch eval on each broken genome file: non-zero exit, the file and the JSON pointer") {
  const std::filesystem::path folder = std::filesystem::path(LIVSEARCH_SOURCE_DIR) / "tests/genome/broken";
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(folder)) {
    if (entry.path().extension() != ".json") continue;
    ++files;
    const std::string relative = "tests/genome/broken/" + entry.path().filename().string();
    CAPTURE(relative);
    const auto result = run_livsearch("eval " + relative + " --config tests/cli/tiny_config.json",
                                      "broken_genome_" + std::to_string(files));
    CAPTURE(result.err);
    CHECK(result.exit_code == 2);
    CHECK(result.out.empty());
    CHECK(result.err.rfind("error: ", 0) == 0);
    CHECK(result.err.find(relative + ": ") != std::string::npos);
    // A JSON pointer ("/slots/3/kv_heads", "/" for the whole document) or,
    // for a file that is not JSON, the line and column.
    const bool names_place =
        result.err.find(": /") != std::string::npos || result.err.find(": line ") != std::string::npos;
    CHECK(names_place);
  }
  CHECK(files >= 20);
}
