// Kill torture: a real `livsearch search` over rungs with the final stage on
// is killed with SIGKILL at 20 seeded random moments and resumed after each.
// After every kill the database passes PRAGMA integrity_check, every
// evaluation that had finished is still there, unchanged, and none was ever
// finished twice; the run then ends with exactly the evaluations, the
// populations and the front of an uninterrupted run. SIGTERM and SIGINT stop
// a run cleanly (exit status 130, the run marked interrupted, nothing left
// "running"), and it resumes to the same end.
#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <random>

#include "run_command.hpp"
#include "search_db.hpp"
#include "search_process.hpp"

using livs::test::finished_evaluations;
using livs::test::query_rows;
using livs::test::run_livsearch;
using livs::test::SearchProcess;
using livs::test::temp_db;

namespace {

const std::string kConfig = "tests/cli/tiny_torture_search.json";

// (hash, fidelity, seed) finished more than once.
std::vector<std::vector<std::string>> finished_twice(const std::filesystem::path& db) {
  return query_rows(db,
                    "SELECT genome_hash, fidelity, seed, COUNT(*) FROM evaluations WHERE status IN ('ok', "
                    "'failed') GROUP BY genome_hash, fidelity, seed HAVING COUNT(*) > 1");
}

std::vector<std::string> populations(const std::filesystem::path& db) {
  std::vector<std::string> out;
  for (const auto& row :
       query_rows(db,
                  "SELECT generation || ' ' || position || ' ' || genome_hash || ' ' || rank "
                  "FROM population ORDER BY generation, position"))
    out.push_back(row[0]);
  return out;
}

std::string front(const std::filesystem::path& db, const std::string& tag) {
  const auto result = run_livsearch("pareto --db '" + db.string() + "' --format csv", tag);
  CAPTURE(result.err);
  REQUIRE(result.exit_code == 0);
  return result.out;
}

std::string run_status(const std::filesystem::path& db) {
  const auto rows = query_rows(db, "SELECT status FROM runs");
  return rows.empty() ? "" : rows[0][0];
}

// An uninterrupted run's database (made once per test process).
const std::filesystem::path& whole_run() {
  static const std::filesystem::path db = [] {
    const auto path = temp_db("torture_whole.db");
    const auto whole = run_livsearch("search " + kConfig + " --db '" + path.string() + "'", "torture_whole");
    CAPTURE(whole.err);
    REQUIRE(whole.exit_code == 0);
    return path;
  }();
  return db;
}

}  // namespace

TEST_CASE(
    "a search killed with SIGKILL at 20 random moments loses nothing and ends as an uninterrupted run") {
  const auto& whole_db = whole_run();
  const auto whole_finished = finished_evaluations(whole_db);
  REQUIRE(whole_finished.size() >= 10);
  // A kill moment: once 0, 1 or 2 more evaluations have finished, then up
  // to 40 ms later, so kills land in startup, re-breeding, training,
  // database writes and the final stage alike, and every few rounds move
  // the run forward.
  const auto db = temp_db("torture_killed.db");
  const auto log = db.parent_path() / "torture.stderr";
  std::mt19937_64 rng(20260603);
  std::uniform_int_distribution<int> more_finished(0, 2), extra_ms(0, 40);
  std::map<std::string, std::string> seen;  // everything finished so far
  int killed_mid_run = 0;
  for (int round = 0; round < 20; ++round) {
    CAPTURE(round);
    {
      const std::size_t target = seen.size() + std::size_t(more_finished(rng));
      const auto pause = std::chrono::milliseconds(extra_ms(rng));
      SearchProcess search(kConfig, db, {"--resume"}, log);
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
      while (finished_evaluations(db).size() < target && search.running() && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      std::this_thread::sleep_for(pause);
      if (search.kill_now()) ++killed_mid_run;
    }
    const auto integrity = query_rows(db, "PRAGMA integrity_check");
    if (std::filesystem::exists(db)) {
      REQUIRE(integrity.size() == 1);
      CHECK(integrity[0][0] == "ok");
    }
    const auto now = finished_evaluations(db);
    for (const auto& [key, value] : seen) {
      CAPTURE(key);
      REQUIRE(now.count(key) == 1);
      CHECK(now.at(key) == value);
    }
    CHECK(finished_twice(db).empty());
    seen = now;
  }
  MESSAGE("kills that landed inside the run: " << killed_mid_run << " of 20");
  CHECK(killed_mid_run >= 15);  // most moments fell inside a run, not after it ended

  const auto resumed =
      run_livsearch("search " + kConfig + " --db '" + db.string() + "' --resume", "torture_end");
  CAPTURE(resumed.err);
  REQUIRE(resumed.exit_code == 0);
  CHECK(query_rows(db, "PRAGMA integrity_check").at(0).at(0) == "ok");
  CHECK(finished_twice(db).empty());
  CHECK(finished_evaluations(db) == whole_finished);
  CHECK(populations(db) == populations(whole_db));
  CHECK(front(db, "torture_front_killed") == front(whole_db, "torture_front_whole"));
  CHECK(run_status(db) == "finished");
}

namespace {

// Starts a search, sends `signal_number` once two evaluations have finished,
// and checks the clean stop and the resume.
void stop_and_resume(int signal_number, const std::string& name) {
  const auto& whole_db = whole_run();
  const auto db = temp_db(name + ".db");
  const auto log = db.parent_path() / (name + ".stderr");
  {
    SearchProcess search(kConfig, db, {}, log);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
    while (finished_evaluations(db).size() < 2 && search.running() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    REQUIRE(search.running());
    search.signal(signal_number);
    // A generous bound, not a timing: a stop that waits for whole trainings
    // or hangs fails it.
    const auto status = search.wait_for(std::chrono::seconds(60));
    REQUIRE(status.has_value());
    const std::string err = livs::test::read_file(log);
    CAPTURE(err);
    REQUIRE(WIFEXITED(*status));
    CHECK(WEXITSTATUS(*status) == 130);
    CHECK(err.find("stopped; continue with --resume") != std::string::npos);
  }
  CHECK(run_status(db) == "interrupted");
  CHECK(query_rows(db, "SELECT id FROM evaluations WHERE status = 'running'").empty());
  CHECK(query_rows(db, "PRAGMA integrity_check").at(0).at(0) == "ok");
  const auto before = finished_evaluations(db);

  const auto resumed = run_livsearch("search " + kConfig + " --db '" + db.string() + "' --resume", name);
  CAPTURE(resumed.err);
  REQUIRE(resumed.exit_code == 0);
  const auto after = finished_evaluations(db);
  for (const auto& [key, value] : before) {
    CAPTURE(key);
    REQUIRE(after.count(key) == 1);
    CHECK(after.at(key) == value);
  }
  CHECK(after == finished_evaluations(whole_db));
  CHECK(front(db, name + "_front") == front(whole_db, name + "_whole_front"));
  CHECK(run_status(db) == "finished");
}

}  // namespace

TEST_CASE("SIGTERM stops a search cleanly, marks it interrupted, and it resumes to the uninterrupted end") {
  stop_and_resume(SIGTERM, "sigterm");
}

TEST_CASE(
    "SIGINT (Ctrl-C) stops a search cleanly, marks it interrupted, and it resumes to the uninterrupted end") {
  stop_and_resume(SIGINT, "sigint");
}
