// livsearch pareto --db FILE [--run NAME] [--objectives a,b] [--feasible-only]
//                  [--format table|json|csv]
// The non-dominated set of a run's finished evaluations, read-only, so it can
// run while the search is writing.
#include <cstdio>
#include <iostream>

#include "cli/command.hpp"
#include "cli/query_common.hpp"
#include "cli/query_front.hpp"

namespace livs::cli {

namespace {

const char* direction_name(search::Direction d) { return d == search::Direction::maximise ? "max" : "min"; }

Json front_to_json(const Front& front) {
  Json out;
  out["run"] = front.run.name;
  out["objectives"] = Json::array();
  for (const auto& o : front.objectives)
    out["objectives"].push_back({{"name", o.name}, {"direction", direction_name(o.direction)}});
  out["constraints"] = Json::array();
  for (const auto& c : front.constraints) out["constraints"].push_back(describe_constraint(c));
  out["candidates"] = front.candidates;
  out["feasible"] = front.feasible;
  out["front"] = Json::array();
  for (const auto& m : front.members) {
    Json member;
    member["hash"] = m.evaluation.genome_hash;
    member["summary"] = m.summary;
    member["evaluation_id"] = m.evaluation.id;
    member["generation"] = m.evaluation.generation;
    member["fidelity"] = m.evaluation.fidelity;
    member["feasible"] = m.violation == 0.0;
    member["violation"] = m.violation;
    member["objectives"] = Json::object();
    for (const auto& o : front.objectives) {
      auto it = m.evaluation.metrics.find(o.name);
      member["objectives"][o.name] = it == m.evaluation.metrics.end() ? Json() : Json(it->second.value);
    }
    member["metrics"] = Json::object();
    for (const auto& [name, metric] : m.evaluation.metrics)
      member["metrics"][name] = {{"value", metric.value}, {"unit", metric.unit}};
    out["front"].push_back(std::move(member));
  }
  return out;
}

std::string metric_cell(const db::EvaluationRecord& e, const std::string& name) {
  auto it = e.metrics.find(name);
  return it == e.metrics.end() ? "-" : format_number(it->second.value);
}

// The unit the evaluations stored with a metric ("" when none did).
std::string stored_unit(const Front& front, const std::string& name) {
  for (const auto& m : front.members) {
    const auto it = m.evaluation.metrics.find(name);
    if (it != m.evaluation.metrics.end() && !it->second.unit.empty()) return it->second.unit;
  }
  return "";
}

std::string front_to_table(const Front& front) {
  TextTable table;
  table.header = {"hash", "gen"};
  for (const auto& o : front.objectives) {
    const std::string unit = stored_unit(front, o.name);
    table.header.push_back(o.name + " (" + direction_name(o.direction) + ")" +
                           (unit.empty() ? "" : " [" + unit + "]"));
  }
  if (!front.constraints.empty()) table.header.push_back("violation");
  table.header.push_back("summary");
  for (const auto& m : front.members) {
    std::vector<std::string> row = {short_hash(m.evaluation.genome_hash),
                                    std::to_string(m.evaluation.generation)};
    for (const auto& o : front.objectives) row.push_back(metric_cell(m.evaluation, o.name));
    if (!front.constraints.empty()) row.push_back(format_number(m.violation));
    row.push_back(m.summary);
    table.rows.push_back(std::move(row));
  }
  std::string head = "run '" + front.run.name + "': " + std::to_string(front.members.size()) +
                     " non-dominated of " + std::to_string(front.candidates) + " candidates";
  if (!front.constraints.empty()) head += " (" + std::to_string(front.feasible) + " feasible)";
  return head + "\n" + table.render();
}

std::string front_to_csv(const Front& front) {
  // Cells joined one by one (appending, not chained operator+, which GCC 12
  // misreads as an overlapping copy under -Wrestrict).
  auto line = [](const std::vector<std::string>& cells) {
    std::string out;
    for (std::size_t i = 0; i < cells.size(); ++i) {
      if (i) out += ',';
      out += cells[i];
    }
    out += '\n';
    return out;
  };
  std::vector<std::string> header = {"hash", "generation", "fidelity", "feasible", "violation"};
  for (const auto& o : front.objectives) header.push_back(csv_field(o.name));
  header.push_back("summary");
  std::string out = line(header);
  for (const auto& m : front.members) {
    std::vector<std::string> cells = {m.evaluation.genome_hash, std::to_string(m.evaluation.generation),
                                      format_number(m.evaluation.fidelity),
                                      m.violation == 0.0 ? "true" : "false", format_number(m.violation)};
    for (const auto& o : front.objectives) cells.push_back(metric_cell(m.evaluation, o.name));
    cells.push_back(csv_field(m.summary));
    out += line(cells);
  }
  return out;
}

}  // namespace

int run_pareto(int argc, char** argv) {
  cxxopts::Options options(argv[0],
                           "The non-dominated candidates of a run (constrained domination: feasible first).\n"
                           "Exit status 1 when there is nothing to show (no successful evaluation, or no\n"
                           "feasible one with --feasible-only); the reason goes to stderr.");
  options.add_options()("db", "the database file", cxxopts::value<std::string>())(
      "run", "the run (default: the most recent)", cxxopts::value<std::string>()->default_value(""))(
      "objectives", "objectives to compare, comma separated (name or name:min|name:max); default: the run's",
      cxxopts::value<std::string>()->default_value(""))("feasible-only",
                                                        "leave out candidates that break a constraint")(
      "format", "table, json or csv", cxxopts::value<std::string>()->default_value("table"))(
      "h,help", "show this help");
  cxxopts::ParseResult args;
  if (!parse_arguments(options, argc, argv, args)) return 0;
  std::string db_path = required_db(args, argv[0]);
  std::string format = chosen_format(args, {"table", "json", "csv"});
  db::Reader reader(db_path);
  Front front = compute_front(reader, args["run"].as<std::string>(), args["objectives"].as<std::string>(),
                              args.count("feasible-only") > 0);
  std::string note = front_note(front);
  if (!note.empty()) std::fprintf(stderr, "%s%s\n", front.members.empty() ? "" : "note: ", note.c_str());
  if (format == "json")
    std::cout << front_to_json(front).dump(2) << "\n";
  else if (format == "csv")
    std::cout << front_to_csv(front);
  else if (!front.members.empty())
    std::cout << front_to_table(front);
  return front.members.empty() ? 1 : 0;
}

}  // namespace livs::cli
