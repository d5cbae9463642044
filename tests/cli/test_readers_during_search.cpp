// Readers never block the writer: while a real search writes its database,
// `status`, `pareto`, `show`, `export` and `report` run in a loop against it
// and every one of them succeeds, none reports "database is locked", and the
// search ends as it would alone (its exit status and its evaluations). No
// timing is asserted: the writer's wall time with readers is only logged.
//
// How long the search writes must not depend on the machine (on a fast one
// the tiny search ended before every reader had run once): one candidate of
// the second generation hangs until search.candidate_timeout (8 s) cancels
// it, so the database holds finished genomes and stays open for writing for
// at least that long. The run alone has the same fault, so both record the
// same timeout.
#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <map>

#include "run_command.hpp"
#include "search_db.hpp"
#include "search_process.hpp"

using livs::test::finished_evaluations;
using livs::test::query_rows;
using livs::test::run_livsearch;
using livs::test::ScopedEnvironment;
using livs::test::SearchProcess;
using livs::test::temp_db;

namespace {

const std::string kConfig = "tests/cli/tiny_readers_search.json";
// Evaluation 7 starts after the first generation's six have finished.
const std::string kHold = "#7:hang";

}  // namespace

TEST_CASE(
    "status, pareto, show, export and report in a loop never block or fail against a database being "
    "written") {
  const auto alone_db = temp_db("readers_alone.db");
  const auto alone_start = std::chrono::steady_clock::now();
  const auto alone = [&] {
    ScopedEnvironment hold("LIVSEARCH_FAULT_INJECT", kHold);
    return run_livsearch("search " + kConfig + " --db '" + alone_db.string() + "'", "readers_alone");
  }();
  const double alone_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - alone_start).count();
  REQUIRE_MESSAGE(alone.exit_code == 0, alone.err);

  const auto db = temp_db("readers.db");
  const auto out_dir = db.parent_path() / "readers_export";
  const std::string d = "'" + db.string() + "'";
  // Each reader command; {hash} is a genome of the run once one exists.
  const std::vector<std::string> readers = {
      "status --db " + d,
      "status --db " + d + " --format json",
      "pareto --db " + d + " --format json",
      "show --db " + d + " {hash}",
      "export --db " + d + " {hash} --format json --out '" + out_dir.string() + "'",
      "export --db " + d + " --pareto --format json --out '" + out_dir.string() + "'",
      "report --db " + d + " --out '" + (db.parent_path() / "readers_report.html").string() + "'",
  };
  int runs = 0;
  std::map<std::string, int> succeeded;
  const auto start = std::chrono::steady_clock::now();
  SearchProcess search(kConfig, db, {}, db.parent_path() / "readers.stderr",
                       [] { ::setenv("LIVSEARCH_FAULT_INJECT", kHold.c_str(), 1); });
  while (search.running()) {
    // A reader needs a run (and for some, a genome) to query: until the
    // search has written them, a reader's clear "no run" error is expected.
    const auto hashes = query_rows(db, "SELECT genome_hash FROM evaluations WHERE status = 'ok' LIMIT 1");
    for (std::string command : readers) {
      const auto at = command.find("{hash}");
      if (at != std::string::npos) {
        if (hashes.empty()) continue;
        command.replace(at, 6, hashes[0][0]);
      }
      const auto result = run_livsearch(command, "readers_loop");
      ++runs;
      CAPTURE(command);
      CAPTURE(result.err);
      CHECK(result.err.find("locked") == std::string::npos);
      CHECK(result.err.find("busy") == std::string::npos);
      CHECK(result.exit_code != -1);  // never a crash
      if (hashes.empty()) continue;   // the run may not be recorded yet
      CHECK(result.exit_code == 0);
      if (result.exit_code == 0) ++succeeded[command.substr(0, command.find(' '))];
    }
  }
  const auto status = search.wait_for(std::chrono::seconds(0));
  REQUIRE(status.has_value());
  REQUIRE(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
  const double with_readers = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  MESSAGE("search alone " << alone_seconds << " s, with " << runs << " reader runs " << with_readers << " s");
  // Every kind of reader ran against the live database at least once.
  for (const std::string command : {"status", "pareto", "show", "export", "report"}) {
    CAPTURE(command);
    CHECK(succeeded[command] >= 1);
  }
  // The readers changed nothing the search computed.
  const auto held = query_rows(db, "SELECT count(*) FROM evaluations WHERE error LIKE 'timeout:%'");
  CHECK(held.at(0).at(0) == "1");  // the hold happened, so the readers overlapped the writer
  CHECK(finished_evaluations(db) == finished_evaluations(alone_db));
  CHECK(query_rows(db, "PRAGMA integrity_check").at(0).at(0) == "ok");
}
