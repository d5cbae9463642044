// livsearch status --db FILE [--run NAME] [--format table|json]: how far a run
// has come: generation, evaluations done/failed/running (per fidelity), the
// genomes refused before training, the labelled (warm-start) genomes, the best
// mean of each objective at the highest fidelity, how well each fidelity's
// ranking of the genomes predicts the next one's (Kendall's tau-b), the
// genomes per rung and promotions of a search over rungs, where the
// evaluations ran (several GPUs, MPI ranks), the latest hypervolume.
// Read-only; safe during a search.
#include <algorithm>
#include <cmath>
#include <iostream>
#include <limits>
#include <map>
#include <set>
#include <utility>

#include "cli/command.hpp"
#include "cli/eval_summary.hpp"
#include "cli/query_common.hpp"
#include "cli/query_front.hpp"
#include "common/evaluate_contract.hpp"
#include "db/store.hpp"
#include "search/rung_statistics.hpp"

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
  const Candidate* candidate = nullptr;  // none when no candidate has a finite value
  SeedSummary value;                     // over the candidate's seeds
  std::string unit;
};

// The best mean of each objective over the run's candidates at its highest
// fidelity; feasible candidates only when there are any (an infeasible
// optimum is no optimum).
std::vector<Best> best_values(const std::vector<Candidate>& candidates, const RunGoals& goals,
                              bool& among_feasible) {
  std::vector<const Candidate*> pool;
  for (const auto& c : candidates)
    if (search::constraint_violation(c.means(), goals.constraints) == 0.0) pool.push_back(&c);
  among_feasible = !pool.empty() || candidates.empty();
  if (pool.empty())
    for (const auto& c : candidates) pool.push_back(&c);
  std::vector<Best> out;
  for (const auto& o : goals.objectives) {
    Best best{o.name, o.direction, nullptr, {}, ""};
    for (const auto* c : pool) {
      auto it = c->metrics.find(o.name);
      if (it == c->metrics.end() || !std::isfinite(it->second.mean)) continue;
      double v = it->second.mean;
      bool better = !best.candidate ||
                    (o.direction == search::Direction::minimise ? v < best.value.mean : v > best.value.mean);
      if (better) best = {o.name, o.direction, c, it->second, c->units.at(o.name)};
    }
    out.push_back(best);
  }
  return out;
}

// Genomes the search drew and refused before training, over all generations.
struct Rejections {
  int64_t total = 0;
  std::map<std::string, int64_t> by_metric;
};

Rejections count_rejections(const std::vector<db::GenerationRecord>& generations) {
  Rejections out;
  for (const auto& g : generations) {
    out.total += g.rejected;
    if (!g.rejected_by.is_object()) continue;
    for (const auto& [metric, count] : g.rejected_by.items())
      if (count.is_number()) out.by_metric[metric] += count.get<int64_t>();
  }
  return out;
}

// "37 before training (params 35, cache_bytes 2)", most frequent first.
std::string describe_rejections(const Rejections& r) {
  std::vector<std::pair<std::string, int64_t>> metrics(r.by_metric.begin(), r.by_metric.end());
  std::stable_sort(metrics.begin(), metrics.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  std::string out = std::to_string(r.total) + " before training";
  for (std::size_t i = 0; i < metrics.size(); ++i)
    out += (i ? ", " : " (") + metrics[i].first + " " + std::to_string(metrics[i].second);
  return metrics.empty() ? out : out + ")";
}

// "fidelity 0.3: 96 ok, 2 failed; fidelity 1: 33 ok (11 genomes x 3 seeds)"
std::string describe_fidelities(const std::vector<db::FidelityCounts>& fidelities) {
  std::string out;
  for (const auto& f : fidelities) {
    if (!out.empty()) out += "; ";
    out += "fidelity " + format_number(f.fidelity) + ": " + std::to_string(f.evaluations.ok) + " ok";
    if (f.evaluations.failed) out += ", " + std::to_string(f.evaluations.failed) + " failed";
    if (f.evaluations.running) out += ", " + std::to_string(f.evaluations.running) + " running";
    if (f.evaluations.interrupted) out += ", " + std::to_string(f.evaluations.interrupted) + " interrupted";
    if (f.most_seeds > 1) {
      out += " (" + std::to_string(f.ok_genomes) + " genomes";
      out += f.fewest_seeds == f.most_seeds ? " x " + std::to_string(f.most_seeds) + " seeds)"
                                            : ", " + std::to_string(f.fewest_seeds) + " to " +
                                                  std::to_string(f.most_seeds) + " seeds each)";
    }
  }
  return out;
}

// "fidelity 0.3 -> 1: 6 genomes, Kendall tau perplexity 0.73, cache_bytes 1"
std::string describe_rank_stability(const search::RankStability& r) {
  std::string out = "fidelity " + format_number(r.from) + " -> " + format_number(r.to) + ": " +
                    std::to_string(r.genomes) + (r.genomes == 1 ? " genome" : " genomes") + ", Kendall tau";
  for (std::size_t i = 0; i < r.tau.size(); ++i) {
    const auto& [objective, tau] = r.tau[i];
    // Two decimals: over a few dozen genomes the third is noise. (+ 0.0: no "-0".)
    out +=
        (i ? ", " : " ") + objective + " " +
        (std::isnan(tau) ? std::string("undefined") : format_number(std::round(tau * 100.0) / 100.0 + 0.0));
  }
  return out;
}

// "fidelity 0.11: 48 genomes, 16 promoted (33%); fidelity 0.33: 16 genomes, 1 running, 5 promoted (31%); ..."
std::string describe_rungs(const std::vector<search::RungCounts>& rungs) {
  std::string out;
  for (std::size_t r = 0; r < rungs.size(); ++r) {
    const auto& c = rungs[r];
    out += (r ? "; " : "") + std::string("fidelity ") + format_number(c.fidelity) + ": " +
           std::to_string(c.candidates) + (c.candidates == 1 ? " genome" : " genomes");
    if (c.running) out += ", " + std::to_string(c.running) + " running";
    if (r + 1 < rungs.size()) {
      out += ", " + std::to_string(c.promoted) + " promoted";
      if (c.candidates)
        out += " (" + std::to_string(static_cast<int>(std::lround(100.0 * c.promoted / c.candidates))) + "%)";
    }
  }
  return out;
}

}  // namespace

int run_status(int argc, char** argv) {
  cxxopts::Options options(
      argv[0],
      "Progress of a run: generation, evaluations per fidelity, genomes rejected before\n"
      "training, labelled genomes, best values, rank stability between fidelities\n"
      "(Kendall's tau-b), hypervolume.");
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
  std::map<std::string, int> finished_on;  // device (and rank, with --mpi) -> evaluations finished there
  for (const auto& e : evaluations) {
    newest_evaluated_generation = std::max(newest_evaluated_generation, e.generation);
    if (e.status == db::EvaluationStatus::running) running.push_back(&e);
    if (e.status == db::EvaluationStatus::ok || e.status == db::EvaluationStatus::failed)
      ++finished_on[e.device];
  }
  Candidates candidates = load_candidates(reader, run);
  bool among_feasible = true;
  auto best = best_values(candidates.candidates, goals, among_feasible);
  auto fidelities = reader.fidelities(run.id);
  auto generations = reader.generations(run.id);
  Rejections rejected = count_rejections(generations);
  auto stability = search::rank_stability(reader, run, candidates.fidelities, goals.objectives);
  const auto rungs = goals.rungs.size() > 1 ? search::rung_counts(run, goals, evaluations)
                                            : std::vector<search::RungCounts>{};
  // Labelled genomes (the warm start), in label order.
  std::vector<std::pair<std::string, std::string>> labels;  // label, hash
  for (const auto& [hash, label] : reader.genome_labels(run.id)) labels.emplace_back(label, hash);
  std::sort(labels.begin(), labels.end());

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
    out["devices"] = finished_on;
    out["fidelities"] = Json::array();
    for (const auto& f : fidelities)
      out["fidelities"].push_back({{"fidelity", f.fidelity},
                                   {"ok", f.evaluations.ok},
                                   {"failed", f.evaluations.failed},
                                   {"running", f.evaluations.running},
                                   {"interrupted", f.evaluations.interrupted},
                                   {"genomes", f.ok_genomes},
                                   {"fewest_seeds", f.fewest_seeds},
                                   {"most_seeds", f.most_seeds}});
    out["rungs"] = Json::array();
    for (std::size_t r = 0; r < rungs.size(); ++r) {
      Json rung = {{"rung", r + 1},
                   {"fidelity", rungs[r].fidelity},
                   {"genomes", rungs[r].candidates},
                   {"running", rungs[r].running}};
      if (r + 1 < rungs.size()) rung["promoted"] = rungs[r].promoted;
      out["rungs"].push_back(rung);
    }
    if (!rungs.empty()) out["eta"] = goals.eta;
    Json per_generation = Json::array();
    for (const auto& g : generations)
      per_generation.push_back(
          {{"generation", g.generation}, {"rejected", g.rejected}, {"by_metric", g.rejected_by}});
    out["rejected_before_training"] = {
        {"total", rejected.total}, {"by_metric", rejected.by_metric}, {"per_generation", per_generation}};
    out["labels"] = Json::array();
    for (const auto& [label, hash] : labels) out["labels"].push_back({{"hash", hash}, {"label", label}});
    out["best_fidelity"] = candidates.candidates.empty() ? Json() : Json(candidates.fidelity);
    out["best_among_feasible"] = among_feasible;
    out["best"] = Json::object();
    for (const auto& b : best) {
      Json entry = {
          {"value", b.candidate ? Json(b.value.mean) : Json()},
          {"sd", b.candidate ? Json(b.value.sd) : Json()},
          {"seeds", b.candidate ? Json(b.value.n) : Json()},
          {"direction", b.direction == search::Direction::maximise ? "max" : "min"},
          {"unit", b.unit},
          {"hash", b.candidate ? b.candidate->hash : ""},
          {"label", b.candidate && !b.candidate->label.empty() ? Json(b.candidate->label) : Json()}};
      out["best"][b.objective] = std::move(entry);
    }
    out["rank_stability"] = Json::array();
    for (const auto& r : stability) {
      Json tau = Json::object();
      for (const auto& [objective, value] : r.tau) tau[objective] = std::isnan(value) ? Json() : Json(value);
      out["rank_stability"].push_back({{"from", r.from}, {"to", r.to}, {"genomes", r.genomes}, {"tau", tau}});
    }
    out["hypervolume"] = history.empty() ? Json() : Json(history.back().hypervolume);
    out["hypervolume_history"] = Json::array();
    for (const auto& h : history)
      out["hypervolume_history"].push_back({{"generation", h.generation}, {"hypervolume", h.hypervolume}});
    out["running"] = Json::array();
    for (const auto* e : running) {
      auto age = seconds_since(e->heartbeat_at);
      out["running"].push_back({{"hash", e->genome_hash},
                                {"generation", e->generation},
                                {"fidelity", e->fidelity},
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
  // A finished run evaluates nothing: its final stage's evaluations carry the
  // generation after the last recorded one.
  if (run.status != db::RunStatus::finished && newest_evaluated_generation > (generation ? *generation : -1))
    std::cout << " (evaluating generation " << newest_evaluated_generation << ")";
  std::cout << "\n";
  std::cout << "evaluations  " << counts.ok << " done, " << counts.failed << " failed, " << counts.running
            << " running";
  if (counts.interrupted) std::cout << ", " << counts.interrupted << " interrupted (re-run on resume)";
  std::cout << "\n";
  // Per fidelity only when it says more than the line above: several
  // fidelities, or several seeds of a genome.
  bool several_seeds = std::any_of(fidelities.begin(), fidelities.end(),
                                   [](const db::FidelityCounts& f) { return f.most_seeds > 1; });
  if (fidelities.size() > 1 || several_seeds)
    std::cout << "             " << describe_fidelities(fidelities) << "\n";
  // Where they ran, when that was more than one place (several GPUs, MPI ranks).
  if (finished_on.size() > 1) {
    std::string line;
    for (const auto& [device, count] : finished_on)
      line += (line.empty() ? "" : ", ") + device + ": " + std::to_string(count);
    std::cout << "devices      " << line << "\n";
  }
  if (!rungs.empty()) std::cout << "rungs        " << describe_rungs(rungs) << " (eta " << goals.eta << ")\n";
  for (const auto& r : stability) std::cout << "rank stability  " << describe_rank_stability(r) << "\n";
  std::size_t stale = 0;
  for (const auto* e : running) stale += is_stale(*e) ? 1 : 0;
  if (stale)
    std::cout << "             " << stale << " running evaluation(s) without a heartbeat for over "
              << format_age(kStaleHeartbeatSeconds)
              << ": the search may have stopped; `livsearch search CONFIG --resume` re-runs them\n";
  if (rejected.total) std::cout << "rejected     " << describe_rejections(rejected) << "\n";
  std::cout << "hypervolume  " << (history.empty() ? "-" : format_number(history.back().hypervolume)) << "\n";
  if (!labels.empty()) {
    std::cout << "labels       ";
    for (std::size_t i = 0; i < labels.size(); ++i)
      std::cout << (i ? ", " : "") << labels[i].first << " (" << short_hash(labels[i].second) << ")";
    std::cout << "\n";
  }
  if (!best.empty()) {
    std::cout << "\nbest values";
    if (!candidates.candidates.empty()) std::cout << " at fidelity " << format_number(candidates.fidelity);
    std::cout << (among_feasible ? "" : " (no candidate is feasible; over all candidates)") << ":\n";
    TextTable table;
    table.header = {"objective", "best", "seeds", "unit", "hash", "name"};
    for (const auto& b : best) {
      const Candidate* c = b.candidate;
      table.rows.push_back({b.objective + (b.direction == search::Direction::maximise ? " (max)" : " (min)"),
                            c ? format_mean_sd(b.value) : "-", c ? std::to_string(b.value.n) : "-",
                            b.unit.empty() ? "-" : b.unit, c ? short_hash(c->hash) : "-",
                            c && !c->label.empty() ? c->label : "-"});
    }
    std::cout << table.render();
  }
  if (!running.empty()) {
    std::cout << "\nrunning now:\n";
    TextTable table;
    table.header = {"hash", "gen", "fidelity", "device", "started", "last heartbeat"};
    for (const auto* e : running) {
      auto age = seconds_since(e->heartbeat_at);
      std::string heartbeat = age ? format_age(*age) + " ago" : e->heartbeat_at;
      if (is_stale(*e)) heartbeat += " (stale)";
      table.rows.push_back({short_hash(e->genome_hash), std::to_string(e->generation),
                            format_number(e->fidelity), e->device, e->started_at, heartbeat});
    }
    std::cout << table.render();
  }
  return 0;
}

}  // namespace livs::cli
