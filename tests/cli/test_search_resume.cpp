// `livsearch search` end to end with the real evaluator: a run killed with
// SIGKILL in the middle and resumed ends with the same front as an
// uninterrupted run of the same config and seed, and loses no evaluation that
// had finished before the kill.
#include <doctest/doctest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <thread>

#include "common/json_reader.hpp"
#include "run_command.hpp"

using livs::Json;
using livs::test::run_livsearch;

namespace {

const std::string kConfig = "tests/cli/tiny_search.json";

std::filesystem::path temp_db(const std::string& name) {
  const auto folder =
      std::filesystem::temp_directory_path() / ("livsearch_resume_" + std::to_string(::getpid()));
  std::filesystem::create_directories(folder);
  const auto path = folder / name;
  for (const char* suffix : {"", "-wal", "-shm", "-writer.lock"})
    std::filesystem::remove(path.string() + suffix);
  return path;
}

// Finished evaluations (genome hash -> perplexity), read straight from SQLite
// so the test does not trust the code under test for it.
std::map<std::string, double> finished_evaluations(const std::filesystem::path& db) {
  std::map<std::string, double> out;
  sqlite3* handle = nullptr;
  if (sqlite3_open_v2(db.c_str(), &handle, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(handle);
    return out;
  }
  sqlite3_busy_timeout(handle, 5000);
  sqlite3_stmt* statement = nullptr;
  const char* sql =
      "SELECT e.genome_hash, m.value FROM evaluations e JOIN metrics m ON m.evaluation_id = e.id "
      "WHERE e.status = 'ok' AND m.name = 'perplexity'";
  if (sqlite3_prepare_v2(handle, sql, -1, &statement, nullptr) == SQLITE_OK) {
    while (sqlite3_step(statement) == SQLITE_ROW) {
      out[reinterpret_cast<const char*>(sqlite3_column_text(statement, 0))] =
          sqlite3_column_double(statement, 1);
    }
  }
  sqlite3_finalize(statement);
  sqlite3_close(handle);
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
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    if (::chdir(LIVSEARCH_SOURCE_DIR) != 0) ::_exit(127);
    std::freopen("/dev/null", "w", stderr);
    std::freopen("/dev/null", "w", stdout);
    ::execl(LIVSEARCH_BINARY, LIVSEARCH_BINARY, "search", kConfig.c_str(), "--db", killed_db.c_str(),
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  std::map<std::string, double> before_kill;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
  while (before_kill.size() < 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    before_kill = finished_evaluations(killed_db);
  }
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  REQUIRE(WIFSIGNALED(status));  // killed mid-run, not finished
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
