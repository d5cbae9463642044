// `livsearch report` end to end on a small real search (tests/report/
// report_search.json: three objectives, two rungs, two warm-start presets, a
// perplexity constraint, a final stage), and while a search is writing: every
// report succeeds and the search ends exactly as it does with nobody reading.
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <thread>

#include "run_command.hpp"
#include "search_db.hpp"

using livs::test::query_rows;
using livs::test::read_file;
using livs::test::run_livsearch;
using livs::test::temp_db;

namespace {

const std::string kConfig = "tests/report/report_search.json";

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

// Every evaluation ("hash fidelity seed status" -> "metric=value ..."), read
// straight from SQLite; times (train_seconds, *_ms) differ between any two
// runs and are left out.
std::map<std::string, std::string> evaluations_of(const std::filesystem::path& db) {
  std::map<std::string, std::string> out;
  for (const auto& row : query_rows(
           db,
           "SELECT e.genome_hash || ' ' || e.fidelity || ' ' || e.seed || ' ' || e.status, "
           "m.name || '=' || quote(m.value) FROM evaluations e LEFT JOIN metrics m ON "
           "m.evaluation_id = e.id AND m.name NOT LIKE '%seconds' AND m.name NOT LIKE '%\\_ms' ESCAPE '\\' "
           "ORDER BY e.id, m.name"))
    out[row[0]] += row[1] + " ";
  return out;
}

std::filesystem::path report_path(const std::string& name) {
  return std::filesystem::temp_directory_path() /
         ("livsearch_report_" + std::to_string(::getpid()) + "_" + name);
}

}  // namespace

TEST_CASE("report: a small search's report holds every section, its plots and the front table") {
  const auto db = temp_db("report_small.db");
  const auto search = run_livsearch("search " + kConfig + " --db '" + db.string() + "'", "report_search");
  CAPTURE(search.err);
  REQUIRE(search.exit_code == 0);
  const auto out = report_path("small.html");
  const auto result =
      run_livsearch("report --db '" + db.string() + "' --out '" + out.string() + "'", "report");
  CAPTURE(result.err);
  REQUIRE(result.exit_code == 0);
  CHECK(result.out.find("wrote " + out.string()) == 0);
  const std::string html = read_file(out);
  CHECK(!std::filesystem::exists(out.string() + ".partial"));
  for (const char* id :
       {"overview", "pareto", "parallel", "progress", "rungs", "front", "composition", "failures"})
    CHECK_MESSAGE(html.find("<section id=\"" + std::string(id) + "\"") != std::string::npos, id);
  CHECK(count(html, "class=\"plot scatter\"") == 3);  // three objectives: three pairs
  CHECK(html.find(">preset transformer<") != std::string::npos);
  CHECK(html.find(">preset lfm2<") != std::string::npos);
  CHECK(html.find("finalist") != std::string::npos);
  // The front table has one member per genome `pareto` lists.
  const auto pareto = run_livsearch("pareto --db '" + db.string() + "' --format csv", "report_pareto");
  REQUIRE(pareto.exit_code == 0);
  const auto rows = livs::test::lines_of(pareto.out).size() - 1;
  CHECK(count(html, "<tbody class=\"member\"") == rows);
  // The run named explicitly gives the same page but for the time it was written.
  const auto named = run_livsearch(
      "report --db '" + db.string() + "' --run tiny-report --out '" + out.string() + "'", "report_named");
  CHECK(named.exit_code == 0);
  std::filesystem::remove(out);
}

TEST_CASE("report: usage mistakes and bad databases are one-line errors with exit status 2") {
  const auto db = temp_db("report_bad.db");
  const auto out = report_path("bad.html");
  auto missing_out = run_livsearch("report --db '" + db.string() + "'", "report_bad1");
  CHECK(missing_out.exit_code == 2);
  CHECK(missing_out.err.find("missing --out FILE") != std::string::npos);
  auto missing_db = run_livsearch("report --out '" + out.string() + "'", "report_bad2");
  CHECK(missing_db.exit_code == 2);
  CHECK(missing_db.err.find("missing --db FILE") != std::string::npos);
  auto no_file =
      run_livsearch("report --db '" + db.string() + "' --out '" + out.string() + "'", "report_bad3");
  CHECK(no_file.exit_code == 2);
  CHECK(no_file.err.find(db.string()) != std::string::npos);
  CHECK(!std::filesystem::exists(db));  // a reader never creates the database
  auto no_folder =
      run_livsearch("report --db '" + db.string() + "' --out /no/such/folder/r.html", "report_bad4");
  CHECK(no_folder.exit_code == 2);
  CHECK(!std::filesystem::exists(out));
  for (const auto* r : {&missing_out, &missing_db, &no_file, &no_folder})
    CHECK(livs::test::lines_of(r->err).size() == 1);
}

TEST_CASE("report: reports written while a search writes all succeed, and the search ends as it does alone") {
  // The reference: the same search with nobody reading.
  const auto alone = temp_db("report_alone.db");
  const auto reference =
      run_livsearch("search " + kConfig + " --db '" + alone.string() + "'", "report_alone");
  REQUIRE(reference.exit_code == 0);

  const auto db = temp_db("report_live.db");
  const auto out = report_path("live.html");
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    if (::chdir(LIVSEARCH_SOURCE_DIR) != 0) ::_exit(127);
    std::freopen("/dev/null", "w", stderr);
    std::freopen("/dev/null", "w", stdout);
    ::execl(LIVSEARCH_BINARY, LIVSEARCH_BINARY, "search", kConfig.c_str(), "--db", db.c_str(),
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int reports = 0, while_running = 0, status = 0;
  bool exited = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
  while (!exited && std::chrono::steady_clock::now() < deadline) {
    exited = ::waitpid(child, &status, WNOHANG) == child;
    // Reports begin once the search has written its run.
    if (query_rows(db, "SELECT name FROM runs").empty()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      continue;
    }
    const auto result =
        run_livsearch("report --db '" + db.string() + "' --out '" + out.string() + "'", "report_live");
    CAPTURE(result.err);
    REQUIRE(result.exit_code == 0);
    ++reports;
    if (read_file(out).find("run running") != std::string::npos) ++while_running;
  }
  if (!exited) {
    ::kill(child, SIGKILL);
    ::waitpid(child, &status, 0);
  }
  MESSAGE(reports << " reports written, " << while_running << " of them while the run was going");
  REQUIRE(exited);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(reports >= 1);
  CHECK(query_rows(db, "SELECT status FROM runs") == std::vector<std::vector<std::string>>{{"finished"}});
  // Unaffected: the same evaluations with the same metrics as the run alone.
  const auto live = evaluations_of(db);
  CHECK(live.size() > 10);
  CHECK(live == evaluations_of(alone));
  std::filesystem::remove(out);
}
