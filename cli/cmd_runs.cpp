// livsearch runs --db FILE [--format table|json]: the runs a database holds.
#include <iostream>

#include "cli/command.hpp"
#include "cli/query_common.hpp"
#include "db/store.hpp"

namespace livs::cli {

int run_runs(int argc, char** argv) {
  cxxopts::Options options(argv[0], "List the runs in a database.");
  options.add_options()("db", "the database file", cxxopts::value<std::string>())(
      "format", "table or json", cxxopts::value<std::string>()->default_value("table"))("h,help",
                                                                                        "show this help");
  cxxopts::ParseResult args;
  if (!parse_arguments(options, argc, argv, args)) return 0;
  std::string db_path = required_db(args, argv[0]);
  std::string format = chosen_format(args, {"table", "json"});
  db::Reader reader(db_path);
  Json list = Json::array();
  TextTable table;
  table.header = {"name", "status", "seed", "generation", "ok", "failed", "running", "created", "version"};
  for (const auto& run : reader.runs()) {
    auto counts = reader.evaluation_counts(run.id);
    auto generation = reader.latest_generation(run.id);
    list.push_back({{"name", run.name},
                    {"status", db::to_string(run.status)},
                    {"seed", run.seed},
                    {"generation", generation ? Json(*generation) : Json()},
                    {"evaluations",
                     {{"ok", counts.ok},
                      {"failed", counts.failed},
                      {"running", counts.running},
                      {"interrupted", counts.interrupted}}},
                    {"created_at", run.created_at},
                    {"updated_at", run.updated_at},
                    {"tool_version", run.tool_version}});
    table.rows.push_back({run.name, db::to_string(run.status), std::to_string(run.seed),
                          generation ? std::to_string(*generation) : "-", std::to_string(counts.ok),
                          std::to_string(counts.failed), std::to_string(counts.running), run.created_at,
                          run.tool_version});
  }
  if (format == "json")
    std::cout << list.dump(2) << "\n";
  else if (table.rows.empty())
    std::cout << "no runs in " << db_path << "\n";
  else
    std::cout << table.render();
  return 0;
}

}  // namespace livs::cli
