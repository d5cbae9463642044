#include "search/run_front.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <set>

#include "common/format_number.hpp"
#include "common/input_error.hpp"
#include "search/settings.hpp"

namespace livs::search {

namespace {

std::string trim(const std::string& text) {
  auto begin = text.find_first_not_of(" \t");
  if (begin == std::string::npos) return {};
  return text.substr(begin, text.find_last_not_of(" \t") - begin + 1);
}

std::string names_of(const std::vector<Objective>& objectives) {
  std::string out;
  for (const auto& o : objectives) out += (out.empty() ? "" : ", ") + o.name;
  return out.empty() ? "none" : out;
}

}  // namespace

RunGoals run_goals(const db::RunRecord& run, const std::string& db_path) {
  JsonReader root(run.config, db_path + " (config of run '" + run.name + "')");
  auto settings = parse_search_settings(root);
  return {settings.objectives, settings.constraints, settings.rungs(), settings.eta};
}

std::vector<Objective> select_objectives(const RunGoals& goals, const std::string& list) {
  if (trim(list).empty()) return goals.objectives;
  std::vector<Objective> chosen;
  std::set<std::string> seen;
  std::size_t start = 0;
  while (start <= list.size()) {
    std::size_t comma = std::min(list.find(',', start), list.size());
    std::string item = trim(list.substr(start, comma - start));
    start = comma + 1;
    if (item.empty()) throw InputError("--objectives", "", "empty objective name in '" + list + "'");
    Objective objective;
    std::optional<Direction> direction;
    if (auto colon = item.rfind(':'); colon != std::string::npos) {
      std::string dir = item.substr(colon + 1);
      if (dir == "min")
        direction = Direction::minimise;
      else if (dir == "max")
        direction = Direction::maximise;
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
    if (!direction) direction = default_direction(item);
    if (!direction)
      throw InputError("--objectives", "",
                       "'" + item + "' is not an objective of this run (" + names_of(goals.objectives) +
                           ") and has no known direction; write " + item + ":min or " + item + ":max");
    objective.direction = *direction;
    chosen.push_back(objective);
  }
  return chosen;
}

Metrics plain_metrics(const db::Metrics& metrics) {
  Metrics out;
  for (const auto& [name, metric] : metrics) out[name] = metric.value;
  return out;
}

const db::EvaluationRecord& Candidate::latest() const { return evaluations.back(); }

Metrics Candidate::means() const {
  Metrics out;
  for (const auto& [name, summary] : metrics) out[name] = summary.mean;
  return out;
}

std::optional<double> parse_fidelity_option(const std::string& text) {
  std::string value = trim(text);
  if (value.empty()) return std::nullopt;
  char* end = nullptr;
  double fidelity = std::strtod(value.c_str(), &end);
  if (end != value.c_str() + value.size() || !std::isfinite(fidelity) || fidelity <= 0.0)
    throw InputError("--fidelity", "",
                     "expected a share of the training budget such as 0.3 or 1, got '" + text + "'");
  return fidelity;
}

Candidate candidate_of(const std::string& hash, std::vector<db::EvaluationRecord> ok_evaluations) {
  Candidate c;
  c.hash = hash;
  for (auto& e : ok_evaluations) {
    c.evaluations.erase(
        std::remove_if(c.evaluations.begin(), c.evaluations.end(),
                       [&](const db::EvaluationRecord& other) { return other.seed == e.seed; }),
        c.evaluations.end());
    c.evaluations.push_back(std::move(e));
  }
  std::vector<Metrics> seeds;
  for (const auto& e : c.evaluations) {
    seeds.push_back(plain_metrics(e.metrics));
    for (const auto& [name, metric] : e.metrics)
      if (c.units[name].empty()) c.units[name] = metric.unit;
  }
  c.metrics = summarise_metrics(seeds);
  return c;
}

Candidates load_candidates(const db::Queries& db, const db::RunRecord& run, std::optional<double> fidelity) {
  Candidates out;
  for (const auto& f : db.fidelities(run.id))
    if (f.evaluations.ok > 0) out.fidelities.push_back(f);
  if (fidelity) {
    // The nearest stored fidelity, if it is the one meant: stored values come
    // from arithmetic, the option from 6 printed digits.
    const db::FidelityCounts* match = nullptr;
    for (const auto& f : out.fidelities)
      if (std::fabs(f.fidelity - *fidelity) <= 1e-6 * f.fidelity &&
          (!match || std::fabs(f.fidelity - *fidelity) < std::fabs(match->fidelity - *fidelity)))
        match = &f;
    if (!match) {
      std::string list;
      for (const auto& f : out.fidelities) list += (list.empty() ? "" : ", ") + format_number(f.fidelity);
      throw InputError(db.path(), "",
                       "run '" + run.name + "' has no successful evaluation at fidelity " +
                           format_number(*fidelity) + " (" +
                           (list.empty() ? "it has none at any fidelity" : "it has fidelity " + list) + ")");
    }
    out.fidelity = match->fidelity;
  } else if (!out.fidelities.empty()) {
    out.fidelity = out.fidelities.back().fidelity;
  } else {
    return out;
  }

  auto labels = db.genome_labels(run.id);
  std::vector<std::string> order;  // genomes in the order first evaluated
  std::map<std::string, std::vector<db::EvaluationRecord>> by_genome;
  for (auto& e : db.ok_evaluations_at(run.id, out.fidelity)) {
    auto& evaluations = by_genome[e.genome_hash];
    if (evaluations.empty()) order.push_back(e.genome_hash);
    evaluations.push_back(std::move(e));
  }
  for (const auto& hash : order) {
    out.candidates.push_back(candidate_of(hash, std::move(by_genome[hash])));
    if (auto label = labels.find(hash); label != labels.end()) out.candidates.back().label = label->second;
  }
  return out;
}

Front compute_front(const db::Queries& db, const std::string& run_name, const std::string& objective_list,
                    bool feasible_only, std::optional<double> fidelity) {
  Front front;
  front.run = db.resolve_run(run_name);
  RunGoals goals = run_goals(front.run, db.path());
  front.objectives = select_objectives(goals, objective_list);
  front.constraints = goals.constraints;
  front.feasible_only = feasible_only;
  Candidates loaded = load_candidates(db, front.run, fidelity);
  front.fidelity = loaded.fidelity;
  front.fidelities = loaded.fidelities;
  const auto& candidates = loaded.candidates;
  front.candidates = candidates.size();

  if (!candidates.empty()) {
    std::set<std::string> recorded;
    for (const auto& c : candidates)
      for (const auto& e : c.evaluations)
        for (const auto& [name, metric] : e.metrics) recorded.insert(name);
    for (const auto& o : front.objectives) {
      if (recorded.count(o.name)) continue;
      std::string list;
      for (const auto& name : recorded) list += (list.empty() ? "" : ", ") + name;
      throw InputError(db.path(), "",
                       "objective '" + o.name + "' was not recorded for any evaluation of run '" +
                           front.run.name + "' at fidelity " + format_number(front.fidelity) +
                           " (recorded: " + list + ")");
    }
  }

  std::vector<std::vector<double>> minimised;
  std::vector<double> violation;
  std::vector<std::size_t> kept;  // index into candidates
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    auto means = candidates[i].means();
    double v = constraint_violation(means, front.constraints);
    if (v == 0.0) ++front.feasible;
    if (feasible_only && v != 0.0) continue;
    kept.push_back(i);
    minimised.push_back(minimised_objectives(means, front.objectives));
    violation.push_back(v);
  }
  std::vector<std::size_t> order = pareto_front_indices(minimised, violation);
  // Best first on the first objective, ties by hash so the order is stable.
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    if (minimised[a] != minimised[b]) return minimised[a] < minimised[b];
    return candidates[kept[a]].hash < candidates[kept[b]].hash;
  });
  for (std::size_t index : order) {
    FrontMember member;
    member.candidate = candidates[kept[index]];
    member.violation = violation[index];
    if (auto genome = db.genome(member.candidate.hash)) member.summary = genome->summary;
    front.members.push_back(std::move(member));
  }
  return front;
}

std::string front_note(const Front& front) {
  std::string run = "run '" + front.run.name + "'";
  if (front.candidates == 0) return run + " has no successful evaluation yet";
  if (front.feasible > 0) return {};
  std::string constraints;
  for (const auto& c : front.constraints) constraints += (constraints.empty() ? "" : ", ") + describe(c);
  std::string why = "no candidate of " + run + " is feasible: none of its " +
                    std::to_string(front.candidates) + " evaluated candidates at fidelity " +
                    format_number(front.fidelity) + " meets " + constraints;
  if (front.feasible_only) return why;
  return why + "; showing the least-violating candidates";
}

}  // namespace livs::search
