// livsearch show --db FILE HASH [--format table|json]: one genome: its
// canonical JSON, summary, the names runs gave it, every evaluation with its
// metrics (grouped by run and fidelity, one row per seed, with the mean and
// spread over seeds), and its lineage. HASH may be a unique prefix (at least 4
// hex digits).
#include <iostream>
#include <map>
#include <set>
#include <utility>

#include "cli/command.hpp"
#include "cli/eval_summary.hpp"
#include "cli/query_common.hpp"
#include "cli/query_front.hpp"
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

// The evaluations of one run at one fidelity: the seeds of one experiment.
struct Group {
  int64_t run_id = 0;
  double fidelity = 0.0;
  std::vector<const db::EvaluationRecord*> evaluations;  // every status, in the order begun
  Candidate ok;                                          // the ok ones, one per seed, summarised
};

std::vector<Group> group_evaluations(const std::vector<db::EvaluationRecord>& evaluations) {
  std::map<std::pair<int64_t, double>, Group> groups;
  for (const auto& e : evaluations) {
    Group& g = groups[{e.run_id, e.fidelity}];
    g.run_id = e.run_id;
    g.fidelity = e.fidelity;
    g.evaluations.push_back(&e);
  }
  std::vector<Group> out;
  for (auto& [key, g] : groups) {
    std::vector<db::EvaluationRecord> ok;
    for (const auto* e : g.evaluations)
      if (e->status == db::EvaluationStatus::ok) ok.push_back(*e);
    if (!ok.empty()) {
      const std::string hash = ok.front().genome_hash;  // copied before `ok` is moved from
      g.ok = candidate_of(hash, std::move(ok));
    }
    out.push_back(std::move(g));
  }
  return out;
}

std::string plural(std::size_t n, const char* word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

// One column per evaluation (seed), one row per metric, and the mean ± sd over
// the ok seeds in a last column: a real run records a dozen metrics, a genome
// has a handful of seeds.
void print_group(const Group& g, const std::string& run_name) {
  std::cout << "  run '" << run_name << "', fidelity " << format_number(g.fidelity) << ": "
            << plural(g.evaluations.size(), "evaluation");
  if (g.ok.seeds() != g.evaluations.size()) std::cout << ", " << plural(g.ok.seeds(), "seed") << " ok";
  std::cout << "\n";
  std::set<std::string> names;
  std::map<std::string, std::string> units;
  for (const auto* e : g.evaluations)
    for (const auto& [name, metric] : e->metrics) {
      names.insert(name);
      if (units[name].empty()) units[name] = metric.unit;
    }
  const bool mean_column = g.ok.seeds() > 1;
  TextTable table;
  table.header = {"evaluation"};
  for (const auto* e : g.evaluations) table.header.push_back("#" + std::to_string(e->id));
  if (mean_column) table.header.push_back("mean over " + plural(g.ok.seeds(), "seed"));
  auto row = [&](const std::string& label, auto cell) {
    std::vector<std::string> cells = {label};
    for (const auto* e : g.evaluations) cells.push_back(cell(*e));
    if (mean_column) cells.push_back("");
    table.rows.push_back(std::move(cells));
  };
  row("seed", [](const db::EvaluationRecord& e) { return std::to_string(e.seed); });
  row("generation", [](const db::EvaluationRecord& e) { return std::to_string(e.generation); });
  row("status",
      [](const db::EvaluationRecord& e) { return std::string(db::to_string(e.status)) + " on " + e.device; });
  row("time", [](const db::EvaluationRecord& e) {
    return e.wall_seconds > 0 ? format_number(e.wall_seconds) + " s" : std::string("-");
  });
  for (const auto& name : names) {
    row(name + (units[name].empty() ? "" : " [" + units[name] + "]"), [&](const db::EvaluationRecord& e) {
      auto it = e.metrics.find(name);
      return it == e.metrics.end() ? std::string("-") : format_number(it->second.value);
    });
    if (mean_column) {
      auto it = g.ok.metrics.find(name);
      table.rows.back().back() = it == g.ok.metrics.end() ? "-" : format_mean_sd(it->second);
    }
  }
  std::string rendered = table.render();  // indented under the group's line
  for (std::size_t start = 0, end; start < rendered.size(); start = end + 1) {
    end = rendered.find('\n', start);
    std::string line = rendered.substr(start, end - start);
    line.erase(line.find_last_not_of(' ') + 1);  // rows whose mean cell is empty
    std::cout << "    " << line << "\n";
  }
  for (const auto* e : g.evaluations)
    if (!e->error.empty()) std::cout << "    #" << e->id << " error: " << e->error << "\n";
}

}  // namespace

int run_show(int argc, char** argv) {
  cxxopts::Options options(argv[0], "Show one genome: JSON, summary, names, metrics per seed and lineage.");
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
  auto groups = group_evaluations(evaluations);
  auto labels = reader.labels_of_genome(genome.hash);
  auto lineage = reader.lineage(genome.hash);

  if (format == "json") {
    Json out;
    out["hash"] = genome.hash;
    out["summary"] = genome.summary;
    out["first_seen_at"] = genome.first_seen_at;
    out["labels"] = Json::array();
    for (const auto& l : labels) out["labels"].push_back({{"run", run_names[l.run_id]}, {"label", l.label}});
    out["genome"] = genome.genome;
    out["evaluations"] = Json::array();
    for (const auto& e : evaluations) out["evaluations"].push_back(evaluation_json(e, run_names[e.run_id]));
    // Mean and spread over the ok seeds of each (run, fidelity).
    out["by_fidelity"] = Json::array();
    for (const auto& g : groups) {
      if (g.ok.seeds() == 0) continue;
      Json metrics = Json::object();
      for (const auto& [name, s] : g.ok.metrics)
        metrics[name] = {{"mean", s.mean}, {"sd", s.sd}, {"n", s.n}, {"unit", g.ok.units.at(name)}};
      Json ids = Json::array();
      for (const auto& e : g.ok.evaluations) ids.push_back(e.id);
      out["by_fidelity"].push_back({{"run", run_names[g.run_id]},
                                    {"fidelity", g.fidelity},
                                    {"seeds", g.ok.seeds()},
                                    {"evaluation_ids", ids},
                                    {"metrics", metrics}});
    }
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
  for (std::size_t i = 0; i < labels.size(); ++i)
    std::cout << (i ? "         " : "labels   ") << labels[i].label << " in run '"
              << run_names[labels[i].run_id] << "'\n";
  std::cout << "\nevaluations:\n";
  if (evaluations.empty()) std::cout << "  none\n";
  for (const auto& g : groups) print_group(g, run_names[g.run_id]);
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
