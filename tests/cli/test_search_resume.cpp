// `livsearch search` end to end with the real evaluator: a run killed with
// SIGKILL in the middle and resumed ends with the same front as an
// uninterrupted run of the same config and seed, and loses no evaluation that
// had finished before the kill.
#include <doctest/doctest.h>

#include <filesystem>
#include <map>

#include "common/json_reader.hpp"
#include "run_command.hpp"
#include "search_db.hpp"

using livs::Json;
using livs::test::run_livsearch;
using livs::test::temp_db;

namespace {

const std::string kConfig = "tests/cli/tiny_search.json";

// Finished evaluations ("hash fidelity seed" -> perplexity), read straight
// from SQLite so the test does not trust the code under test for it.
std::map<std::string, double> finished_evaluations(const std::filesystem::path& db) {
  std::map<std::string, double> out;
  for (const auto& row : livs::test::query_rows(
           db,
           "SELECT e.genome_hash || ' ' || e.fidelity || ' ' || e.seed, m.value FROM evaluations e "
           "JOIN metrics m ON m.evaluation_id = e.id WHERE e.status = 'ok' AND m.name = 'perplexity'"))
    out[row[0]] = std::stod(row[1]);
  return out;
}

// The front as (hash -> perplexity, cache_bytes), from `livsearch pareto --format json`.
std::map<std::string, std::pair<double, double>> front_of(const std::filesystem::path& db,
                                                          const std::string& tag) {
  const auto result = run_livsearch("pareto --db '" + db.string() + "' --format json", tag);
  CAPTURE(result.err);
  REQUIRE(result.exit_code == 0);
  const Json json = livs::parse_json_text(result.out, "pareto stdout");
  std::map<std::string, std::pair<double, double>> front;
  for (const auto& member : json.at("front")) {
    const auto& metrics = member.at("metrics");
    front[member.at("hash").get<std::string>()] = {metrics.at("perplexity").at("value").get<double>(),
                                                   metrics.at("cache_bytes").at("value").get<double>()};
  }
  return front;
}

}  // namespace

TEST_CASE("search killed with SIGKILL and resumed ends with the uninterrupted run's front") {
  const auto whole_db = temp_db("whole.db");
  const auto whole = run_livsearch("search " + kConfig + " --db '" + whole_db.string() + "'", "resume_whole");
  CAPTURE(whole.err);
  REQUIRE(whole.exit_code == 0);
  const auto whole_front = front_of(whole_db, "resume_whole_front");
  REQUIRE(!whole_front.empty());

  // The same search, killed once a few evaluations have finished.
  const auto killed_db = temp_db("killed.db");
  std::map<std::string, double> before_kill;
  REQUIRE(livs::test::run_search_and_kill(kConfig, killed_db, [&] {
    before_kill = finished_evaluations(killed_db);
    return before_kill.size() >= 3;
  }));  // killed mid-run, not finished
  before_kill = finished_evaluations(killed_db);
  REQUIRE(before_kill.size() >= 3);

  const auto resumed =
      run_livsearch("search " + kConfig + " --db '" + killed_db.string() + "' --resume", "resume_resumed");
  CAPTURE(resumed.err);
  REQUIRE(resumed.exit_code == 0);

  // Nothing finished before the kill is lost or changed.
  const auto after = finished_evaluations(killed_db);
  for (const auto& [hash, perplexity] : before_kill) {
    CAPTURE(hash);
    REQUIRE(after.count(hash) == 1);
    CHECK(after.at(hash) == perplexity);
  }
  CHECK(front_of(killed_db, "resume_killed_front") == whole_front);
  std::filesystem::remove_all(whole_db.parent_path());
}
