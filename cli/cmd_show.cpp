// livsearch show --db FILE HASH [--format table|json]: one genome: its
// canonical JSON, summary, every evaluation with its metrics, and its lineage.
// HASH may be a unique prefix (at least 4 hex digits).
#include <iostream>
#include <map>

#include "cli/command.hpp"
#include "cli/query_common.hpp"
#include "common/input_error.hpp"
#include "db/store.hpp"

namespace livs::cli {

namespace {

Json evaluation_json(const db::EvaluationRecord& e, const std::string& run_name) {
  Json metrics = Json::object();
  for (const auto& [name, metric] : e.metrics)
    metrics[name] = {{"value", metric.value}, {"unit", metric.unit}};
  return {{"run", run_name},
          {"evaluation_id", e.id},
          {"generation", e.generation},
          {"fidelity", e.fidelity},
          {"status", db::to_string(e.status)},
          {"device", e.device},
          {"seed", e.seed},
          {"started_at", e.started_at},
          {"finished_at", e.finished_at},
          {"wall_seconds", e.wall_seconds},
          {"error", e.error},
          {"metrics", metrics}};
}

}  // namespace

int run_show(int argc, char** argv) {
  cxxopts::Options options(argv[0], "Show one genome: JSON, summary, metrics and lineage.");
  options.positional_help("HASH");
  options.add_options()("db", "the database file", cxxopts::value<std::string>())(
      "hash", "genome hash or a unique prefix of it", cxxopts::value<std::string>())(
      "format", "table or json", cxxopts::value<std::string>()->default_value("table"))("h,help",
                                                                                        "show this help");
  options.parse_positional({"hash"});
  cxxopts::ParseResult args;
  if (!parse_arguments(options, argc, argv, args)) return 0;
  std::string db_path = required_db(args, argv[0]);
  std::string format = chosen_format(args, {"table", "json"});
  if (!args.count("hash"))
    throw InputError(argv[0], "", std::string("missing HASH (see '") + argv[0] + " --help')");
  db::Reader reader(db_path);
  auto genome = reader.genome_by_prefix(args["hash"].as<std::string>());
  std::map<int64_t, std::string> run_names;
  for (const auto& run : reader.runs()) run_names[run.id] = run.name;
  auto evaluations = reader.evaluations_of_genome(genome.hash);
  auto lineage = reader.lineage(genome.hash);

  if (format == "json") {
    Json out;
    out["hash"] = genome.hash;
    out["summary"] = genome.summary;
    out["first_seen_at"] = genome.first_seen_at;
    out["genome"] = genome.genome;
    out["evaluations"] = Json::array();
    for (const auto& e : evaluations) out["evaluations"].push_back(evaluation_json(e, run_names[e.run_id]));
    out["lineage"] = Json::array();
    for (const auto& l : lineage)
      out["lineage"].push_back({{"run", run_names[l.run_id]},
                                {"generation", l.generation},
                                {"operator", l.operator_name},
                                {"parents", l.parent_hashes}});
    std::cout << out.dump(2) << "\n";
    return 0;
  }

  std::cout << "genome   " << genome.hash << "\n";
  std::cout << "summary  " << genome.summary << "\n";
  std::cout << "\nevaluations:\n";
  if (evaluations.empty()) std::cout << "  none\n";
  for (const auto& e : evaluations) {
    std::cout << "  run '" << run_names[e.run_id] << "', generation " << e.generation << ", fidelity "
              << format_number(e.fidelity) << ", " << db::to_string(e.status) << " on " << e.device;
    if (e.wall_seconds > 0) std::cout << ", " << format_number(e.wall_seconds) << " s";
    std::cout << "\n";
    if (!e.error.empty()) std::cout << "    error: " << e.error << "\n";
    for (const auto& [name, metric] : e.metrics)
      std::cout << "    " << name << " = " << format_number(metric.value)
                << (metric.unit.empty() ? "" : " " + metric.unit) << "\n";
  }
  std::cout << "\nlineage:\n";
  if (lineage.empty()) std::cout << "  none recorded\n";
  for (const auto& l : lineage) {
    std::cout << "  run '" << run_names[l.run_id] << "', generation " << l.generation << ": "
              << l.operator_name;
    if (!l.parent_hashes.empty()) {
      std::cout << " of";
      for (const auto& p : l.parent_hashes) std::cout << " " << short_hash(p);
    }
    std::cout << "\n";
  }
  std::cout << "\ngenome JSON:\n" << genome.genome.dump(2) << "\n";
  return 0;
}

}  // namespace livs::cli
