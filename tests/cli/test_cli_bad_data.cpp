// A data file that cannot feed a single training window stops `search` and
// `eval` before anything trains: one line naming the file and what was
// expected, exit status 2, and no database written. (Before, a search with an
// empty corpus started every candidate, recorded each as failed with the same
// data error, and ended "finished" with exit status 0.)
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>

#include "common/json_reader.hpp"
#include "run_command.hpp"

using livs::Json;
using livs::test::lines_of;
using livs::test::run_livsearch;

namespace {

namespace fs = std::filesystem;

struct BadData {
  std::string name;
  std::string text;            // the corpus file's content
  double validation_fraction;  // of the tail split
  std::string expected;        // what follows "error: <file>: "
};

// A tiny search config (seq_len 32: a window is 33 tokens) reading `corpus`.
fs::path write_config(const fs::path& folder, const fs::path& corpus, double validation_fraction) {
  const Json config = {
      {"name", "bad-data"},
      {"seed", 1},
      {"data", {{"path", corpus.string()}, {"format", "text"}, {"validation_fraction", validation_fraction}}},
      {"model", {{"d_model", 32}, {"layers", 1}, {"context_length", 64}}},
      {"training",
       {{"steps", 4}, {"batch_size", 2}, {"seq_len", 32}, {"warmup_steps", 1}, {"eval_tokens", 64}}},
      {"objectives", {"perplexity", "cache_bytes"}},
      {"search", {{"algorithm", "random"}, {"population", 2}, {"generations", 1}}},
      {"device", "cpu"}};
  const fs::path path = folder / "config.json";
  std::ofstream(path) << config.dump(2) << "\n";
  return path;
}

}  // namespace

TEST_CASE("a corpus too short for one window stops search and eval at the start, exit 2, no database") {
  const fs::path folder = fs::temp_directory_path() / ("livsearch_bad_data_" + std::to_string(::getpid()));
  fs::remove_all(folder);
  fs::create_directories(folder);
  const std::string window_text(200, 'a');  // 200 tokens: 180 train, 20 validation at 0.1
  const BadData cases[] = {
      {"empty", "", 0.1, "byte 0: expected text, the file is empty"},
      {"shorter than a window", std::string(20, 'a'), 0.1,
       "the training split has 18 tokens, fewer than one window"},
      {"validation shorter than a window", window_text, 0.1,
       "the validation split has 20 tokens, fewer than one window"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    const fs::path corpus = folder / "corpus.txt";
    std::ofstream(corpus, std::ios::binary | std::ios::trunc) << c.text;
    const fs::path config = write_config(folder, corpus, c.validation_fraction);
    const fs::path db = folder / "run.db";
    fs::remove(db);
    for (const auto& command :
         std::initializer_list<std::string>{"search '" + config.string() + "' --db '" + db.string() + "'",
                                            "eval --preset transformer --config '" + config.string() + "'"}) {
      CAPTURE(command);
      const auto result = run_livsearch(command, "bad_data");
      CAPTURE(result.err);
      CHECK(result.exit_code == 2);
      const auto lines = lines_of(result.err);
      REQUIRE(lines.size() == 1);
      CHECK(lines[0].rfind("error: " + corpus.string() + ": " + c.expected, 0) == 0);
      CHECK_FALSE(fs::exists(db));
    }
  }
  fs::remove_all(folder);
}
