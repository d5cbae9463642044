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

// Resumes the killed search in `db` and checks that every evaluation that
// had finished before the kill (`before_kill`) is still there, unchanged.
// Returns the finished evaluations after the resume.
std::map<std::string, double> resume_keeping(const std::string& config, const std::filesystem::path& db,
                                             const std::map<std::string, double>& before_kill,
                                             const std::string& tag) {
  const auto resumed = run_livsearch("search " + config + " --db '" + db.string() + "' --resume", tag);
  CAPTURE(resumed.err);
  REQUIRE(resumed.exit_code == 0);
  const auto after = finished_evaluations(db);
  for (const auto& [key, perplexity] : before_kill) {
    CAPTURE(key);
    REQUIRE(after.count(key) == 1);
    CHECK(after.at(key) == perplexity);
  }
  return after;
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

  // Nothing finished before the kill is lost or changed.
  resume_keeping(kConfig, killed_db, before_kill, "resume_resumed");
  CHECK(front_of(killed_db, "resume_killed_front") == whole_front);
  std::filesystem::remove_all(whole_db.parent_path());
}

namespace {

const std::string kRungsConfig = "tests/cli/tiny_rungs_search.json";

// Every generation's population, "generation position hash rank", in order.
std::vector<std::string> populations(const std::filesystem::path& db) {
  std::vector<std::string> out;
  for (const auto& row : livs::test::query_rows(
           db,
           "SELECT generation || ' ' || position || ' ' || genome_hash || ' ' || rank FROM population "
           "ORDER BY generation, position"))
    out.push_back(row[0]);
  return out;
}

// Distinct genomes with a finished search-stage evaluation at `fidelity` (the
// final stage's evaluations carry the generation after the last recorded one).
std::size_t genomes_at(const std::filesystem::path& db, const std::string& fidelity) {
  return livs::test::query_rows(db,
                                "SELECT DISTINCT genome_hash FROM evaluations WHERE fidelity = " + fidelity +
                                    " AND status IN ('ok', 'failed') AND generation <= (SELECT "
                                    "MAX(generation) FROM generations)")
      .size();
}

}  // namespace

TEST_CASE(
    "a search over rungs trains at both fidelities, promotes 1/eta, and resumes mid-rung to the same state") {
  const auto whole_db = temp_db("rungs_whole.db");
  const auto whole =
      run_livsearch("search " + kRungsConfig + " --db '" + whole_db.string() + "'", "rungs_whole");
  CAPTURE(whole.err);
  REQUIRE(whole.exit_code == 0);
  // The progress line names the rung; the generation line counts results per rung.
  CHECK(whole.err.find("rung 2/2 (fidelity 1), promoted") != std::string::npos);
  CHECK(whole.err.find("; rungs ") != std::string::npos);
  const std::size_t low = genomes_at(whole_db, "0.25"), high = genomes_at(whole_db, "1.0");
  CAPTURE(low);
  CAPTURE(high);
  CHECK(low >= 6);
  CHECK(high >= 1);
  CHECK(high <= low / 3);

  // status reports the rungs.
  const auto status = run_livsearch("status --db '" + whole_db.string() + "' --format json", "rungs_status");
  REQUIRE(status.exit_code == 0);
  const Json json = livs::parse_json_text(status.out, "status stdout");
  REQUIRE(json.at("rungs").size() == 2);
  CHECK(json["rungs"][0]["genomes"] == low);
  CHECK(json["rungs"][0]["promoted"] == high);
  CHECK(json["rungs"][1]["genomes"] == high);
  CHECK(json["eta"] == 3);
  const auto table = run_livsearch("status --db '" + whole_db.string() + "'", "rungs_status_table");
  CHECK(table.out.find("rungs        fidelity 0.25: ") != std::string::npos);

  // Killed while a promoted candidate trains at fidelity 1, then resumed.
  const auto killed_db = temp_db("rungs_killed.db");
  REQUIRE(livs::test::run_search_and_kill(kRungsConfig, killed_db, [&] {
    return !livs::test::query_rows(killed_db,
                                   "SELECT id FROM evaluations WHERE fidelity = 1.0 AND status = 'running' "
                                   "AND (SELECT COUNT(*) FROM evaluations WHERE status = 'ok') >= 4")
                .empty();
  }));
  const auto after =
      resume_keeping(kRungsConfig, killed_db, finished_evaluations(killed_db), "rungs_resumed");
  CHECK(after == finished_evaluations(whole_db));
  CHECK(populations(killed_db) == populations(whole_db));
  std::filesystem::remove_all(whole_db.parent_path());
}
