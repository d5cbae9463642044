// livsearch pareto --db FILE [--run NAME] [--objectives a,b] [--feasible-only]
//                  [--fidelity F] [--format table|json|csv]
// The non-dominated set of a run's genomes at one fidelity, each genome's
// metrics averaged over its seeds. Read-only, so it can run while the search
// is writing.
#include <algorithm>
#include <cstdio>
#include <iostream>

#include "cli/command.hpp"
#include "cli/eval_summary.hpp"
#include "cli/query_common.hpp"
#include "cli/query_front.hpp"

namespace livs::cli {

namespace {

const char* direction_name(search::Direction d) { return d == search::Direction::maximise ? "max" : "min"; }

Json json_number(const Candidate& c, const std::string& name, double SeedSummary::*field) {
  auto it = c.metrics.find(name);
  return it == c.metrics.end() ? Json() : Json(it->second.*field);
}

Json front_to_json(const Front& front) {
  Json out;
  out["run"] = front.run.name;
  out["fidelity"] = front.fidelities.empty() ? Json() : Json(front.fidelity);
  out["fidelities"] = Json::array();
  for (const auto& f : front.fidelities) out["fidelities"].push_back(f.fidelity);
  out["objectives"] = Json::array();
  for (const auto& o : front.objectives)
    out["objectives"].push_back({{"name", o.name}, {"direction", direction_name(o.direction)}});
  out["constraints"] = Json::array();
  for (const auto& c : front.constraints) out["constraints"].push_back(search::describe(c));
  out["candidates"] = front.candidates;
  out["feasible"] = front.feasible;
  out["front"] = Json::array();
  for (const auto& m : front.members) {
    const Candidate& c = m.candidate;
    Json member;
    member["hash"] = c.hash;
    member["label"] = c.label.empty() ? Json() : Json(c.label);
    member["summary"] = m.summary;
    member["evaluation_id"] = c.latest().id;
    member["generation"] = c.latest().generation;
    member["fidelity"] = c.latest().fidelity;
    member["seeds"] = c.seeds();
    member["feasible"] = m.violation == 0.0;
    member["violation"] = m.violation;
    member["objectives"] = Json::object();
    member["spread"] = Json::object();
    for (const auto& o : front.objectives) {
      member["objectives"][o.name] = json_number(c, o.name, &SeedSummary::mean);
      member["spread"][o.name] = json_number(c, o.name, &SeedSummary::sd);
    }
    member["metrics"] = Json::object();
    for (const auto& [name, summary] : c.metrics)
      member["metrics"][name] = {{"value", summary.mean}, {"unit", c.units.at(name)}};
    member["per_seed"] = Json::array();
    for (const auto& e : c.evaluations) {
      Json metrics = Json::object();
      for (const auto& [name, metric] : e.metrics) metrics[name] = metric.value;
      member["per_seed"].push_back({{"seed", e.seed}, {"evaluation_id", e.id}, {"metrics", metrics}});
    }
    out["front"].push_back(std::move(member));
  }
  return out;
}

// "4.1", or "4.1 ± 0.03" over several seeds.
std::string objective_cell(const Candidate& c, const std::string& name) {
  auto it = c.metrics.find(name);
  return it == c.metrics.end() ? "-" : format_mean_sd(it->second);
}

// The unit the evaluations stored with a metric ("" when none did).
std::string stored_unit(const Front& front, const std::string& name) {
  for (const auto& m : front.members) {
    const auto it = m.candidate.units.find(name);
    if (it != m.candidate.units.end() && !it->second.empty()) return it->second;
  }
  return "";
}

// "at fidelity 1 (mean over 3 seeds; 9 feasible; the run also has fidelity 0.3: --fidelity 0.3)"
std::string fidelity_note(const Front& front) {
  std::size_t fewest = 0, most = 0;
  for (const auto& m : front.members) {
    std::size_t n = m.candidate.seeds();
    fewest = fewest == 0 ? n : std::min(fewest, n);
    most = std::max(most, n);
  }
  std::vector<std::string> notes;
  if (most > 1)
    notes.push_back(
        "mean over " +
        (fewest == most ? std::to_string(most) : std::to_string(fewest) + " to " + std::to_string(most)) +
        " seeds");
  if (!front.constraints.empty()) notes.push_back(std::to_string(front.feasible) + " feasible");
  std::string others;
  for (const auto& f : front.fidelities)
    if (f.fidelity != front.fidelity) others += (others.empty() ? "" : ", ") + format_number(f.fidelity);
  if (!others.empty())
    notes.push_back(std::string("the run also has fidelit") +
                    (others.find(',') == std::string::npos ? "y " : "ies ") + others + ": --fidelity " +
                    (others.find(',') == std::string::npos ? others : "F"));
  std::string out = " at fidelity " + format_number(front.fidelity);
  for (std::size_t i = 0; i < notes.size(); ++i) out += (i ? "; " : " (") + notes[i];
  return notes.empty() ? out : out + ")";
}

std::string front_to_table(const Front& front) {
  TextTable table;
  table.header = {"hash", "name", "gen", "seeds"};
  for (const auto& o : front.objectives) {
    const std::string unit = stored_unit(front, o.name);
    table.header.push_back(o.name + " (" + direction_name(o.direction) + ")" +
                           (unit.empty() ? "" : " [" + unit + "]"));
  }
  if (!front.constraints.empty()) table.header.push_back("violation");
  table.header.push_back("summary");
  for (const auto& m : front.members) {
    const Candidate& c = m.candidate;
    std::vector<std::string> row = {short_hash(c.hash), c.label.empty() ? "-" : c.label,
                                    std::to_string(c.latest().generation), std::to_string(c.seeds())};
    for (const auto& o : front.objectives) row.push_back(objective_cell(c, o.name));
    if (!front.constraints.empty()) row.push_back(format_number(m.violation));
    row.push_back(m.summary);
    table.rows.push_back(std::move(row));
  }
  std::string head = "run '" + front.run.name + "': " + std::to_string(front.members.size()) +
                     " non-dominated of " + std::to_string(front.candidates) + " candidates" +
                     fidelity_note(front);
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
  auto number = [](const Candidate& c, const std::string& name, double SeedSummary::*field) {
    auto it = c.metrics.find(name);
    return it == c.metrics.end() ? std::string() : format_number(it->second.*field);
  };
  std::vector<std::string> header = {"hash", "generation", "fidelity", "seeds", "feasible", "violation"};
  for (const auto& o : front.objectives) {
    header.push_back(csv_field(o.name));
    header.push_back(csv_field(o.name + "_sd"));
  }
  header.push_back("label");
  header.push_back("summary");
  std::string out = line(header);
  for (const auto& m : front.members) {
    const Candidate& c = m.candidate;
    std::vector<std::string> cells = {c.hash,
                                      std::to_string(c.latest().generation),
                                      format_number(front.fidelity),
                                      std::to_string(c.seeds()),
                                      m.violation == 0.0 ? "true" : "false",
                                      format_number(m.violation)};
    for (const auto& o : front.objectives) {
      cells.push_back(number(c, o.name, &SeedSummary::mean));
      cells.push_back(number(c, o.name, &SeedSummary::sd));
    }
    cells.push_back(csv_field(c.label));
    cells.push_back(csv_field(m.summary));
    out += line(cells);
  }
  return out;
}

}  // namespace

int run_pareto(int argc, char** argv) {
  cxxopts::Options options(argv[0],
                           "The non-dominated candidates of a run (constrained domination: feasible first),\n"
                           "at one fidelity, each genome's metrics averaged over its seeds.\n"
                           "Exit status 1 when there is nothing to show (no successful evaluation, or no\n"
                           "feasible one with --feasible-only); the reason goes to stderr.");
  options.add_options()("db", "the database file", cxxopts::value<std::string>())(
      "run", "the run (default: the most recent)", cxxopts::value<std::string>()->default_value(""))(
      "objectives", "objectives to compare, comma separated (name or name:min|name:max); default: the run's",
      cxxopts::value<std::string>()->default_value(""))("feasible-only",
                                                        "leave out candidates that break a constraint")(
      "fidelity",
      "compare at this fidelity (share of the training budget); default: the highest with successful "
      "evaluations",
      cxxopts::value<std::string>()->default_value(""))(
      "format", "table, json or csv", cxxopts::value<std::string>()->default_value("table"))(
      "h,help", "show this help");
  cxxopts::ParseResult args;
  if (!parse_arguments(options, argc, argv, args)) return 0;
  std::string db_path = required_db(args, argv[0]);
  std::string format = chosen_format(args, {"table", "json", "csv"});
  auto fidelity = parse_fidelity_option(args["fidelity"].as<std::string>());
  db::Reader reader(db_path);
  Front front = compute_front(reader, args["run"].as<std::string>(), args["objectives"].as<std::string>(),
                              args.count("feasible-only") > 0, fidelity);
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
