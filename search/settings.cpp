#include "search/settings.hpp"

#include <algorithm>
#include <limits>
#include <set>

#include "common/objective_catalogue.hpp"

namespace livs::search {

const char* to_string(Algorithm algorithm) {
  switch (algorithm) {
    case Algorithm::nsga2:
      return "nsga2";
    case Algorithm::random:
      return "random";
    case Algorithm::aging:
      return "aging";
  }
  return "?";
}

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::vector<Objective> parse_objectives(const JsonReader& root) {
  const auto list = root.at("objectives");
  list.expect_array();
  if (list.size() == 0) list.fail("a non-empty array of objectives");
  std::vector<Objective> objectives;
  std::set<std::string> seen;
  for (std::size_t i = 0; i < list.size(); ++i) {
    const auto item = list.index(i);
    Objective objective;
    if (item.value().is_string()) {
      objective.name = item.string();
      const auto direction = default_direction(objective.name);
      if (!direction)
        item.fail_message("objective \"" + objective.name +
                          "\" has no default direction; write {\"name\": \"" + objective.name +
                          "\", \"direction\": \"min\"} or \"max\"");
      objective.direction = *direction;
    } else if (item.value().is_object()) {
      item.expect_keys({"name", "direction"});
      objective.name = item.at("name").string();
      if (objective.name.empty()) item.at("name").fail("a non-empty objective name");
      if (const auto direction = item.find("direction")) {
        objective.direction =
            direction->choice({"min", "max"}) == "max" ? Direction::maximise : Direction::minimise;
      } else {
        const auto fallback = default_direction(objective.name);
        if (!fallback) item.fail_message("missing required key \"direction\" (\"min\" or \"max\")");
        objective.direction = *fallback;
      }
    } else {
      item.fail("an objective name or {\"name\": ..., \"direction\": \"min\"|\"max\"}");
    }
    if (!seen.insert(objective.name).second)
      item.fail_message("objective \"" + objective.name + "\" is listed twice");
    objectives.push_back(std::move(objective));
  }
  return objectives;
}

std::vector<Constraint> parse_constraints(const JsonReader& root) {
  std::vector<Constraint> constraints;
  const auto section = root.find("constraints");
  if (!section) return constraints;
  section->expect_object();
  for (const auto& metric : section->keys()) {
    const auto bounds = section->at(metric);
    bounds.expect_keys({"min", "max"});
    Constraint constraint;
    constraint.metric = metric;
    if (const auto min = bounds.find("min")) constraint.min = min->number();
    if (const auto max = bounds.find("max")) constraint.max = max->number();
    if (!constraint.min && !constraint.max) bounds.fail("an object with \"min\" and/or \"max\"");
    if (constraint.min && constraint.max && *constraint.min > *constraint.max)
      bounds.fail_message("\"min\" is greater than \"max\"");
    constraints.push_back(std::move(constraint));
  }
  return constraints;
}

// {"perplexity": 300, ...} with exactly the objectives' names, in objective order.
std::vector<double> parse_point(const JsonReader& point, const std::vector<Objective>& objectives) {
  point.expect_object();
  for (const auto& key : point.keys()) {
    const bool known =
        std::any_of(objectives.begin(), objectives.end(), [&](const Objective& o) { return o.name == key; });
    if (!known) point.at(key).fail_message("\"" + key + "\" is not one of the objectives");
  }
  std::vector<double> values;
  for (const auto& objective : objectives) values.push_back(point.at(objective.name).number());
  return values;
}

// A count that fits an int; without an upper bound the error reads ">= min".
int count_or(const JsonReader& section, std::string_view key, int fallback, int min) {
  const auto found = section.find(key);
  if (!found) return fallback;
  const int64_t value = found->integer(min);
  if (value > std::numeric_limits<int>::max())
    found->fail("an integer in [" + std::to_string(min) + ", 2147483647]");
  return static_cast<int>(value);
}

}  // namespace

// Directions and ideals come from the objective catalogue (common/), which
// proxies/ measures; any other "accuracy" metric is maximised with ideal 1.
std::optional<Direction> default_direction(const std::string& name) {
  if (const auto* info = find_objective(name))
    return info->maximise ? Direction::maximise : Direction::minimise;
  if (name == "accuracy" || ends_with(name, "_accuracy")) return Direction::maximise;
  return std::nullopt;
}

std::optional<double> known_ideal(const std::string& name) {
  if (const auto* info = find_objective(name)) return info->ideal;
  if (name == "accuracy" || ends_with(name, "_accuracy")) return 1.0;
  return std::nullopt;
}

SearchSettings parse_search_settings(const JsonReader& root) {
  root.expect_object();
  SearchSettings s;
  s.seed = static_cast<uint64_t>(root.integer_or("seed", 0, 0));
  s.objectives = parse_objectives(root);
  s.constraints = parse_constraints(root);

  const auto search = root.find("search");
  if (!search) return s;
  search->expect_keys({"algorithm", "population", "generations", "offspring", "tournament_size",
                       "crossover_probability", "mutation_probability", "aging_sample_size",
                       "max_evaluations", "fidelity", "fidelities", "eta", "max_train_seconds",
                       "candidate_timeout", "hypervolume", "initial", "final"});
  if (const auto algorithm = search->find("algorithm")) {
    const auto name = algorithm->choice({"nsga2", "random", "aging"});
    s.algorithm = name == "random"  ? Algorithm::random
                  : name == "aging" ? Algorithm::aging
                                    : Algorithm::nsga2;
  }
  s.population = count_or(*search, "population", 16, 2);
  s.generations = count_or(*search, "generations", 10, 0);
  s.offspring = count_or(*search, "offspring", s.population, 1);
  s.tournament_size = static_cast<int>(search->integer_or("tournament_size", 2, 1, s.population));
  s.crossover_probability = search->number_or("crossover_probability", 0.9, 0.0, 1.0);
  s.mutation_probability = search->number_or("mutation_probability", 1.0, 0.0, 1.0);
  s.aging_sample_size = static_cast<int>(
      search->integer_or("aging_sample_size", std::max(2, s.population / 4), 1, s.population));
  s.max_evaluations = search->integer_or("max_evaluations", 0, 0);
  if (const auto fidelity = search->find("fidelity")) {
    s.fidelity = fidelity->number();
    if (!(s.fidelity > 0.0 && s.fidelity <= 1.0)) fidelity->fail("a number in (0, 1]");
  }
  if (const auto fidelities = search->find("fidelities")) {
    if (search->find("fidelity"))
      fidelities->fail_message("give either \"fidelity\" (one rung) or \"fidelities\" (rungs), not both");
    fidelities->expect_array();
    if (fidelities->size() == 0) fidelities->fail("a non-empty array of increasing fidelities in (0, 1]");
    for (std::size_t i = 0; i < fidelities->size(); ++i) {
      const auto entry = fidelities->index(i);
      const double value = entry.number();
      if (!(value > 0.0 && value <= 1.0)) entry.fail("a number in (0, 1]");
      if (!s.fidelities.empty() && !(value > s.fidelities.back()))
        entry.fail("a fidelity greater than the one before it");
      s.fidelities.push_back(value);
    }
    if (s.fidelities.size() == 1) {  // one rung is the single-fidelity search
      s.fidelity = s.fidelities.front();
      s.fidelities.clear();
    }
  }
  s.eta = static_cast<int>(search->integer_or("eta", 3, 2, 1000));
  s.max_train_seconds = search->number_or("max_train_seconds", 0.0, 0.0, 1e12);
  if (const auto timeout = search->find("candidate_timeout")) {
    const double seconds = timeout->number();
    if (!(seconds >= 0.0 && seconds <= 1e9))
      timeout->fail("a number of seconds in [0, 1e9] (0: no limit; leave it out for the default)");
    s.candidate_timeout = seconds;
  }

  if (const auto initial = search->find("initial")) {
    initial->expect_array();
    for (std::size_t i = 0; i < initial->size(); ++i) {
      const std::string entry = initial->index(i).string();
      if (entry.empty()) initial->index(i).fail("a preset name or a genome file");
      s.initial.push_back(entry);
    }
  }
  if (const auto final_stage = search->find("final")) {
    if (final_stage->value().is_boolean()) {
      if (!final_stage->value().get<bool>()) s.final_seeds = 0;
    } else {
      final_stage->expect_keys({"top", "seeds", "save_weights"});
      s.final_top = static_cast<int>(final_stage->integer_or("top", s.final_top, 1, 1000));
      s.final_seeds = static_cast<int>(final_stage->integer_or("seeds", s.final_seeds, 0, 100));
      if (const auto save = final_stage->find("save_weights")) s.final_save_weights = save->boolean();
    }
  }

  if (const auto hv = search->find("hypervolume")) {
    hv->expect_keys({"reference", "ideal"});
    if (const auto reference = hv->find("reference"))
      s.hypervolume_reference = parse_point(*reference, s.objectives);
    if (const auto ideal = hv->find("ideal")) s.hypervolume_ideal = parse_point(*ideal, s.objectives);
    if (s.hypervolume_reference && s.hypervolume_ideal) {
      for (std::size_t i = 0; i < s.objectives.size(); ++i) {
        const double ref = (*s.hypervolume_reference)[i], ideal = (*s.hypervolume_ideal)[i];
        const bool worse = s.objectives[i].direction == Direction::minimise ? ref > ideal : ref < ideal;
        if (!worse)
          hv->at("reference")
              .at(s.objectives[i].name)
              .fail_message(
                  "the reference must be worse than the ideal (" +
                  std::string(s.objectives[i].direction == Direction::minimise ? "greater" : "smaller") +
                  ")");
      }
    }
  }
  return s;
}

}  // namespace livs::search
