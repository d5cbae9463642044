#include "cli/query_front.hpp"

#include <algorithm>
#include <set>

#include "cli/query_common.hpp"
#include "common/input_error.hpp"
#include "search/settings.hpp"

namespace livs::cli {

namespace {

std::string trim(const std::string& text) {
  auto begin = text.find_first_not_of(" \t");
  if (begin == std::string::npos) return {};
  return text.substr(begin, text.find_last_not_of(" \t") - begin + 1);
}

std::string names_of(const std::vector<search::Objective>& objectives) {
  std::string out;
  for (const auto& o : objectives) out += (out.empty() ? "" : ", ") + o.name;
  return out.empty() ? "none" : out;
}

}  // namespace

RunGoals run_goals(const db::RunRecord& run, const std::string& db_path) {
  JsonReader root(run.config, db_path + " (config of run '" + run.name + "')");
  auto settings = search::parse_search_settings(root);
  return {settings.objectives, settings.constraints};
}

std::vector<search::Objective> select_objectives(const RunGoals& goals, const std::string& list) {
  if (trim(list).empty()) return goals.objectives;
  std::vector<search::Objective> chosen;
  std::set<std::string> seen;
  std::size_t start = 0;
  while (start <= list.size()) {
    std::size_t comma = std::min(list.find(',', start), list.size());
    std::string item = trim(list.substr(start, comma - start));
    start = comma + 1;
    if (item.empty()) throw InputError("--objectives", "", "empty objective name in '" + list + "'");
    search::Objective objective;
    std::optional<search::Direction> direction;
    if (auto colon = item.rfind(':'); colon != std::string::npos) {
      std::string dir = item.substr(colon + 1);
      if (dir == "min")
        direction = search::Direction::minimise;
      else if (dir == "max")
        direction = search::Direction::maximise;
      else
        throw InputError("--objectives", "", "'" + item + "': expected a direction :min or :max");
      item = trim(item.substr(0, colon));
    }
    objective.name = item;
    if (!seen.insert(item).second) throw InputError("--objectives", "", "'" + item + "' is named twice");
    if (!direction) {
      for (const auto& o : goals.objectives)
        if (o.name == item) direction = o.direction;
    }
    if (!direction) direction = search::default_direction(item);
    if (!direction)
      throw InputError("--objectives", "",
                       "'" + item + "' is not an objective of this run (" + names_of(goals.objectives) +
                           ") and has no known direction; write " + item + ":min or " + item + ":max");
    objective.direction = *direction;
    chosen.push_back(objective);
  }
  return chosen;
}

std::string describe_constraint(const search::Constraint& c) {
  if (c.min && c.max) return format_number(*c.min) + " <= " + c.metric + " <= " + format_number(*c.max);
  if (c.max) return c.metric + " <= " + format_number(*c.max);
  if (c.min) return c.metric + " >= " + format_number(*c.min);
  return c.metric;
}

search::Metrics plain_metrics(const db::Metrics& metrics) {
  search::Metrics out;
  for (const auto& [name, metric] : metrics) out[name] = metric.value;
  return out;
}

Front compute_front(const db::Queries& db, const std::string& run_name, const std::string& objective_list,
                    bool feasible_only) {
  Front front;
  front.run = db.resolve_run(run_name);
  RunGoals goals = run_goals(front.run, db.path());
  front.objectives = select_objectives(goals, objective_list);
  front.constraints = goals.constraints;
  front.feasible_only = feasible_only;
  auto candidates = db.front_candidates(front.run.id);
  front.candidates = candidates.size();

  if (!candidates.empty()) {
    std::set<std::string> recorded;
    for (const auto& e : candidates)
      for (const auto& [name, metric] : e.metrics) recorded.insert(name);
    for (const auto& o : front.objectives) {
      if (recorded.count(o.name)) continue;
      std::string list;
      for (const auto& name : recorded) list += (list.empty() ? "" : ", ") + name;
      throw InputError(db.path(), "",
                       "objective '" + o.name + "' was not recorded for any evaluation of run '" +
                           front.run.name + "' (recorded: " + list + ")");
    }
  }

  std::vector<std::vector<double>> minimised;
  std::vector<double> violation;
  std::vector<std::size_t> kept;  // index into candidates
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    auto metrics = plain_metrics(candidates[i].metrics);
    double v = search::constraint_violation(metrics, front.constraints);
    if (v == 0.0) ++front.feasible;
    if (feasible_only && v != 0.0) continue;
    kept.push_back(i);
    minimised.push_back(search::minimised_objectives(metrics, front.objectives));
    violation.push_back(v);
  }
  std::vector<std::size_t> order = search::pareto_front_indices(minimised, violation);
  // Best first on the first objective, ties by hash so the order is stable.
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    if (minimised[a] != minimised[b]) return minimised[a] < minimised[b];
    return candidates[kept[a]].genome_hash < candidates[kept[b]].genome_hash;
  });
  for (std::size_t index : order) {
    FrontMember member;
    member.evaluation = candidates[kept[index]];
    member.violation = violation[index];
    if (auto genome = db.genome(member.evaluation.genome_hash)) member.summary = genome->summary;
    front.members.push_back(std::move(member));
  }
  return front;
}

std::string front_note(const Front& front) {
  std::string run = "run '" + front.run.name + "'";
  if (front.candidates == 0) return run + " has no successful evaluation yet";
  if (front.feasible > 0) return {};
  std::string constraints;
  for (const auto& c : front.constraints)
    constraints += (constraints.empty() ? "" : ", ") + describe_constraint(c);
  std::string why = "no candidate of " + run + " is feasible: none of its " +
                    std::to_string(front.candidates) + " evaluated candidates meets " + constraints;
  if (front.feasible_only) return why;
  return why + "; showing the least-violating candidates";
}

}  // namespace livs::cli
