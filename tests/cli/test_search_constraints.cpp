// `livsearch search` end to end with the real evaluator and a constraint on
// params (issue 8): every member of the front `pareto` prints meets the
// constraint, and the constraint did bite (some evaluated candidate broke it),
// so the check cannot pass by accident.
#include <doctest/doctest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <vector>

#include "common/json_reader.hpp"
#include "run_command.hpp"

using livs::Json;
using livs::test::run_livsearch;

namespace {

constexpr double kMaxParams = 30000;  // tests/cli/tiny_constrained_search.json

// Every evaluated candidate's params, read straight from SQLite.
std::vector<double> params_of_all(const std::filesystem::path& db) {
  std::vector<double> out;
  sqlite3* handle = nullptr;
  REQUIRE(sqlite3_open_v2(db.c_str(), &handle, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt* statement = nullptr;
  const char* sql =
      "SELECT m.value FROM evaluations e JOIN metrics m ON m.evaluation_id = e.id "
      "WHERE e.status = 'ok' AND m.name = 'params'";
  REQUIRE(sqlite3_prepare_v2(handle, sql, -1, &statement, nullptr) == SQLITE_OK);
  while (sqlite3_step(statement) == SQLITE_ROW) out.push_back(sqlite3_column_double(statement, 0));
  sqlite3_finalize(statement);
  sqlite3_close(handle);
  return out;
}

}  // namespace

TEST_CASE("a search with a params constraint: every front member meets it, and some candidate did not") {
  const auto folder =
      std::filesystem::temp_directory_path() / ("livsearch_constraints_" + std::to_string(::getpid()));
  std::filesystem::create_directories(folder);
  const auto db = folder / "constrained.db";
  const auto search = run_livsearch(
      "search tests/cli/tiny_constrained_search.json --db '" + db.string() + "'", "constraints");
  CAPTURE(search.err);
  REQUIRE(search.exit_code == 0);

  const auto all = params_of_all(db);
  REQUIRE(all.size() >= 12);
  int broke = 0;
  for (double p : all) broke += p > kMaxParams;
  CHECK(broke > 0);                // the constraint bit
  CHECK(broke < int(all.size()));  // and left feasible candidates

  const auto pareto = run_livsearch("pareto --db '" + db.string() + "' --format json", "constraints_pareto");
  CAPTURE(pareto.err);
  REQUIRE(pareto.exit_code == 0);
  const Json json = livs::parse_json_text(pareto.out, "pareto stdout");
  REQUIRE(!json.at("front").empty());
  for (const auto& member : json.at("front")) {
    CAPTURE(member.at("hash").get<std::string>());
    CHECK(member.at("metrics").at("params").at("value").get<double>() <= kMaxParams);
  }
  std::filesystem::remove_all(folder);
}
