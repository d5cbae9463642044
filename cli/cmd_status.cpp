// livsearch status --db FILE [--run NAME] [--format table|json]: how far a run
// has come: generation, evaluations done/failed/running, the best value of
// each objective, the latest hypervolume. Read-only; safe during a search.
#include <algorithm>
#include <cmath>
#include <iostream>

#include "cli/command.hpp"
#include "cli/query_common.hpp"
#include "cli/query_front.hpp"
#include "db/store.hpp"

namespace livs::cli {

namespace {

// The search heartbeats running evaluations every 15 s by default; one silent
// for much longer belongs to a search that stopped or died.
constexpr double kStaleHeartbeatSeconds = 120.0;

bool is_stale(const db::EvaluationRecord& e) {
  auto age = seconds_since(e.heartbeat_at);
  return age && *age > kStaleHeartbeatSeconds;
}

struct Best {
  std::string objective;
  search::Direction direction = search::Direction::minimise;
  std::optional<double> value;
  std::string unit;
  std::string hash;
};

// The best value of each objective over the run's candidates; feasible
// candidates only when there are any (an infeasible optimum is no optimum).
std::vector<Best> best_values(const std::vector<db::EvaluationRecord>& candidates, const RunGoals& goals,
                              bool& among_feasible) {
  std::vector<const db::EvaluationRecord*> pool;
  for (const auto& e : candidates)
    if (search::constraint_violation(plain_metrics(e.metrics), goals.constraints) == 0.0) pool.push_back(&e);
  among_feasible = !pool.empty() || candidates.empty();
  if (pool.empty())
    for (const auto& e : candidates) pool.push_back(&e);
  std::vector<Best> out;
  for (const auto& o : goals.objectives) {
    Best best{o.name, o.direction, std::nullopt, "", ""};
    for (const auto* e : pool) {
      auto it = e->metrics.find(o.name);
      if (it == e->metrics.end() || !std::isfinite(it->second.value)) continue;
      double v = it->second.value;
      bool better =
          !best.value || (o.direction == search::Direction::minimise ? v < *best.value : v > *best.value);
      if (better) best = {o.name, o.direction, v, it->second.unit, e->genome_hash};
    }
    out.push_back(best);
  }
  return out;
}

}  // namespace

int run_status(int argc, char** argv) {
  cxxopts::Options options(argv[0], "Progress of a run: generation, evaluations, best values, hypervolume.");
  options.add_options()("db", "the database file", cxxopts::value<std::string>())(
      "run", "the run (default: the most recent)", cxxopts::value<std::string>()->default_value(""))(
      "format", "table or json", cxxopts::value<std::string>()->default_value("table"))("h,help",
                                                                                        "show this help");
  cxxopts::ParseResult args;
  if (!parse_arguments(options, argc, argv, args)) return 0;
  std::string db_path = required_db(args, argv[0]);
  std::string format = chosen_format(args, {"table", "json"});
  db::Reader reader(db_path);
  auto run = reader.resolve_run(args["run"].as<std::string>());
  RunGoals goals = run_goals(run, db_path);
  auto counts = reader.evaluation_counts(run.id);
  auto generation = reader.latest_generation(run.id);
  auto history = reader.hypervolume_history(run.id);
  auto evaluations = reader.evaluations(run.id);
  int newest_evaluated_generation = -1;
  std::vector<const db::EvaluationRecord*> running;
  for (const auto& e : evaluations) {
    newest_evaluated_generation = std::max(newest_evaluated_generation, e.generation);
    if (e.status == db::EvaluationStatus::running) running.push_back(&e);
  }
  bool among_feasible = true;
  auto best = best_values(reader.front_candidates(run.id), goals, among_feasible);

  if (format == "json") {
    Json out;
    out["run"] = run.name;
    out["status"] = db::to_string(run.status);
    out["seed"] = run.seed;
    out["generation"] = generation ? Json(*generation) : Json();
    out["evaluations"] = {{"ok", counts.ok},
                          {"failed", counts.failed},
                          {"running", counts.running},
                          {"interrupted", counts.interrupted},
                          {"total", counts.total()}};
    out["best_among_feasible"] = among_feasible;
    out["best"] = Json::object();
    for (const auto& b : best)
      out["best"][b.objective] = {{"value", b.value ? Json(*b.value) : Json()},
                                  {"direction", b.direction == search::Direction::maximise ? "max" : "min"},
                                  {"unit", b.unit},
                                  {"hash", b.hash}};
    out["hypervolume"] = history.empty() ? Json() : Json(history.back().hypervolume);
    out["hypervolume_history"] = Json::array();
    for (const auto& h : history)
      out["hypervolume_history"].push_back({{"generation", h.generation}, {"hypervolume", h.hypervolume}});
    out["running"] = Json::array();
    for (const auto* e : running) {
      auto age = seconds_since(e->heartbeat_at);
      out["running"].push_back({{"hash", e->genome_hash},
                                {"generation", e->generation},
                                {"device", e->device},
                                {"started_at", e->started_at},
                                {"heartbeat_at", e->heartbeat_at},
                                {"heartbeat_age_seconds", age ? Json(*age) : Json()},
                                {"stale", is_stale(*e)}});
    }
    std::cout << out.dump(2) << "\n";
    return 0;
  }

  std::cout << "run          " << run.name << " (" << db::to_string(run.status) << ", seed " << run.seed
            << ")\n";
  std::cout << "generation   " << (generation ? std::to_string(*generation) : "none recorded yet");
  if (newest_evaluated_generation > (generation ? *generation : -1))
    std::cout << " (evaluating generation " << newest_evaluated_generation << ")";
  std::cout << "\n";
  std::cout << "evaluations  " << counts.ok << " done, " << counts.failed << " failed, " << counts.running
            << " running";
  if (counts.interrupted) std::cout << ", " << counts.interrupted << " interrupted (re-run on resume)";
  std::cout << "\n";
  std::size_t stale = 0;
  for (const auto* e : running) stale += is_stale(*e) ? 1 : 0;
  if (stale)
    std::cout << "             " << stale << " running evaluation(s) without a heartbeat for over "
              << format_age(kStaleHeartbeatSeconds)
              << ": the search may have stopped; `livsearch search CONFIG --resume` re-runs them\n";
  std::cout << "hypervolume  " << (history.empty() ? "-" : format_number(history.back().hypervolume)) << "\n";
  if (!best.empty()) {
    std::cout << "\nbest values" << (among_feasible ? "" : " (no candidate is feasible; over all candidates)")
              << ":\n";
    TextTable table;
    table.header = {"objective", "best", "unit", "hash"};
    for (const auto& b : best)
      table.rows.push_back({b.objective + (b.direction == search::Direction::maximise ? " (max)" : " (min)"),
                            b.value ? format_number(*b.value) : "-", b.unit.empty() ? "-" : b.unit,
                            b.hash.empty() ? "-" : short_hash(b.hash)});
    std::cout << table.render();
  }
  if (!running.empty()) {
    std::cout << "\nrunning now:\n";
    TextTable table;
    table.header = {"hash", "gen", "device", "started", "last heartbeat"};
    for (const auto* e : running) {
      auto age = seconds_since(e->heartbeat_at);
      std::string heartbeat = age ? format_age(*age) + " ago" : e->heartbeat_at;
      if (is_stale(*e)) heartbeat += " (stale)";
      table.rows.push_back(
          {short_hash(e->genome_hash), std::to_string(e->generation), e->device, e->started_at, heartbeat});
    }
    std::cout << table.render();
  }
  return 0;
}

}  // namespace livs::cli
