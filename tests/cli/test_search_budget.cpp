// `livsearch search` end to end with the real evaluator (issue 13): analytic
// constraints met before training, a warm start of two presets and a genome
// file evaluated first and named (two more presets over the budget left out),
// a final stage that holds every finalist's seeds at fidelity 1, the same
// final table after a kill inside the final stage and a resume, and a space
// that cannot meet its budget failing fast.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>

#include "common/json_reader.hpp"
#include "run_command.hpp"
#include "search_db.hpp"

using livs::Json;
using livs::test::query_rows;
using livs::test::run_livsearch;
using livs::test::temp_db;

namespace {

const std::string kConfig = "tests/cli/tiny_budget_search.json";
constexpr double kMaxParams = 25000, kMaxCache = 16384;  // its constraints
constexpr int kTop = 2, kSeeds = 3;                      // its final stage

// The final stage's numbers: "hash seed" -> perplexity at fidelity 1.
std::map<std::string, std::string> final_table(const std::filesystem::path& db) {
  std::map<std::string, std::string> out;
  for (const auto& row :
       query_rows(db,
                  "SELECT e.genome_hash || ' ' || e.seed, m.value FROM evaluations e JOIN metrics m "
                  "ON m.evaluation_id = e.id WHERE e.fidelity = 1 AND m.name = 'perplexity' "
                  "AND e.status = 'ok'"))
    out[row[0]] = row[1];
  return out;
}

// The test config with its paths made absolute and `edit` applied, written
// as FILE in a temporary folder (a test changes one thing and keeps the rest).
std::filesystem::path variant_of_config(const std::string& file, const std::function<void(Json&)>& edit) {
  const auto path = temp_db(file).parent_path() / file;
  Json json = livs::parse_json_file(std::string(LIVSEARCH_SOURCE_DIR) + "/" + kConfig);
  json["data"]["path"] = std::string(LIVSEARCH_SOURCE_DIR) + "/data/kjv.txt";
  json["search"]["initial"] = {"lfm2", std::string(LIVSEARCH_SOURCE_DIR) + "/tests/cli/budget_warm.json"};
  edit(json);
  std::ofstream(path) << json.dump(2);
  return path;
}

}  // namespace

TEST_CASE("a search with analytic constraints and a warm start trains nothing over budget and finalizes") {
  const auto db = temp_db("budget.db");
  const auto result = run_livsearch("search " + kConfig + " --db '" + db.string() + "'", "budget_search");
  CAPTURE(result.err);
  REQUIRE(result.exit_code == 0);

  // No evaluation breaks an analytic constraint.
  const auto metrics =
      query_rows(db, "SELECT m.name, m.value FROM metrics m WHERE m.name IN ('params', 'cache_bytes')");
  REQUIRE(metrics.size() > 20);
  for (const auto& row : metrics) {
    CAPTURE(row[0]);
    CHECK(std::stod(row[1]) <= (row[0] == "params" ? kMaxParams : kMaxCache));
  }
  // The two presets over budget were reported, left out and counted.
  CHECK(result.err.find("warm start: preset transformer breaks an analytic constraint and is left out "
                        "(cache_bytes 32768 > 16384)") != std::string::npos);
  CHECK(result.err.find("warm start: preset striped-mamba breaks an analytic constraint and is left out "
                        "(params 26656 > 25000)") != std::string::npos);
  CHECK(std::stoll(query_rows(db, "SELECT sum(rejected) FROM generations")[0][0]) >= 2);

  // The warm start came first, in order, and carries its names.
  const auto first = query_rows(db,
                                "SELECT l.label FROM evaluations e JOIN genome_labels l ON l.genome_hash = "
                                "e.genome_hash AND l.run_id = e.run_id ORDER BY e.id LIMIT 3");
  REQUIRE(first.size() == 3);
  CHECK(first[0][0] == "preset lfm2");
  CHECK(first[1][0] == "preset griffin");
  CHECK(first[2][0] == "file budget_warm.json");
  const auto first_ids =
      query_rows(db,
                 "SELECT min(e.id) FROM evaluations e JOIN genome_labels l ON l.genome_hash = "
                 "e.genome_hash UNION ALL SELECT min(id) FROM evaluations");
  CHECK(first_ids[0][0] == first_ids[1][0]);
  CHECK(query_rows(db, "SELECT count(*) FROM genome_labels")[0][0] == "3");

  // The final stage: every front member (up to top) and every warm-start
  // member holds kSeeds ok evaluations at fidelity 1, and nothing else does.
  std::set<std::string> expected;
  for (const auto& row : query_rows(db, "SELECT genome_hash FROM genome_labels")) expected.insert(row[0]);
  const auto front = query_rows(db,
                                "SELECT genome_hash FROM population WHERE rank = 0 AND generation = (SELECT "
                                "max(generation) FROM generations) ORDER BY crowding DESC, position");
  REQUIRE(!front.empty());
  for (std::size_t i = 0; i < front.size() && i < static_cast<std::size_t>(kTop); ++i)
    expected.insert(front[i][0]);
  std::map<std::string, int> seeds;
  for (const auto& row :
       query_rows(db, "SELECT genome_hash FROM evaluations WHERE fidelity = 1 AND status = 'ok'"))
    ++seeds[row[0]];
  CHECK(seeds.size() == expected.size());
  for (const auto& hash : expected) {
    CAPTURE(hash);
    CHECK(seeds[hash] == kSeeds);
  }
  // Never paid twice for one (hash, fidelity, seed).
  CHECK(
      query_rows(db,
                 "SELECT count(*) FROM (SELECT genome_hash, fidelity, seed FROM evaluations GROUP BY 1, 2, 3 "
                 "HAVING count(*) > 1)")[0][0] == "0");
  // The search's progress lines say what was refused; the log ends with the final table.
  CHECK(result.err.find("rejected before training") != std::string::npos);
  CHECK(result.err.find("preset lfm2") != std::string::npos);
  CHECK(result.err.find(std::to_string(kSeeds) + "/" + std::to_string(kSeeds)) != std::string::npos);
  std::filesystem::remove_all(db.parent_path());
}

TEST_CASE("killed inside the final stage, a resumed search ends with the uninterrupted run's final table") {
  const auto whole_db = temp_db("budget_whole.db");
  const auto whole = run_livsearch("search " + kConfig + " --db '" + whole_db.string() + "'", "budget_whole");
  CAPTURE(whole.err);
  REQUIRE(whole.exit_code == 0);
  const auto expected = final_table(whole_db);
  REQUIRE(expected.size() >= 3 * kSeeds);

  const auto killed_db = temp_db("budget_killed.db");
  REQUIRE(
      livs::test::run_search_and_kill(kConfig, killed_db, [&] { return !final_table(killed_db).empty(); }));
  const auto before = final_table(killed_db);
  REQUIRE(!before.empty());
  REQUIRE(before.size() < expected.size());
  const auto resumed =
      run_livsearch("search " + kConfig + " --db '" + killed_db.string() + "' --resume", "budget_resumed");
  CAPTURE(resumed.err);
  REQUIRE(resumed.exit_code == 0);
  CHECK(final_table(killed_db) == expected);
  std::filesystem::remove_all(whole_db.parent_path());
}

TEST_CASE("a space that cannot meet its params constraint fails fast with exit status 2, training nothing") {
  const auto config = variant_of_config("impossible.json", [](Json& json) {
    json["constraints"] = {{"params", {{"max", 5000}}}};
    json["search"].erase("initial");
  });
  const auto db = config.parent_path() / "impossible.db";
  const auto result =
      run_livsearch("search '" + config.string() + "' --db '" + db.string() + "'", "impossible");
  CAPTURE(result.err);
  CHECK(result.exit_code == 2);
  CHECK(result.err.find(config.string() +
                        ": /constraints: no genome of this space has params <= 5000 after ") !=
        std::string::npos);
  CHECK(result.err.find("draws; the smallest drawn had params ") != std::string::npos);
  CHECK(query_rows(db, "SELECT count(*) FROM evaluations")[0][0] == "0");
}

TEST_CASE("livsearch finalize gives a search that ran without a final stage the same stage, once") {
  const auto config = variant_of_config("no_final.json", [](Json& json) { json["search"]["final"] = false; });
  const auto db = temp_db("finalize.db");
  const auto search =
      run_livsearch("search '" + config.string() + "' --db '" + db.string() + "'", "finalize_search");
  CAPTURE(search.err);
  REQUIRE(search.exit_code == 0);
  REQUIRE(final_table(db).empty());

  const auto finalize =
      run_livsearch("finalize --db '" + db.string() + "' --top 1 --seeds 2", "finalize_run");
  CAPTURE(finalize.err);
  REQUIRE(finalize.exit_code == 0);
  // The front's first member and the two warm-start members, two seeds each.
  const auto table = final_table(db);
  CHECK(table.size() == 3 * 2);
  CHECK(finalize.out.find("finalized (6 evaluations run, 0 reused)") != std::string::npos);
  const auto again = run_livsearch("finalize --db '" + db.string() + "' --top 1 --seeds 2", "finalize_again");
  CHECK(again.exit_code == 0);
  CHECK(again.out.find("finalized (0 evaluations run, 6 reused)") != std::string::npos);
  CHECK(final_table(db) == table);
  // pareto now ranks on the finalists.
  const auto pareto = run_livsearch("pareto --db '" + db.string() + "' --format json", "finalize_pareto");
  REQUIRE(pareto.exit_code == 0);
  CHECK(livs::parse_json_text(pareto.out, "pareto").at("fidelity").get<double>() == 1.0);
  const auto bad = run_livsearch("finalize --db '" + db.string() + "' --seeds 0", "finalize_bad");
  CHECK(bad.exit_code == 2);
  CHECK(bad.err.find("--seeds") != std::string::npos);
}
