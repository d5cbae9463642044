#include "search/final_stage.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <numeric>
#include <set>

#include "common/duration_text.hpp"
#include "common/seed_summary.hpp"

namespace livs::search {

namespace {

// A genome's search-stage evaluation at the highest rung it reached (ok or
// failed), and that rung's fidelity; null when it has none.
const Outcome* highest_rung_outcome(const std::string& hash, const EvaluationLedger& ledger,
                                    const SearchSettings& settings, double& fidelity) {
  const auto rungs = settings.rungs();
  for (auto rung = rungs.rbegin(); rung != rungs.rend(); ++rung)
    if (const Outcome* outcome = ledger.find({hash, *rung, evaluation_seed(settings.seed, hash)})) {
      fidelity = *rung;
      return outcome;
    }
  return nullptr;
}

// The violation of a member's search-stage evaluation at the highest rung it
// reached (failed: infinite).
double violation_of(const std::string& hash, const EvaluationLedger& ledger, const SearchSettings& settings) {
  double fidelity = 0.0;
  const Outcome* outcome = highest_rung_outcome(hash, ledger, settings, fidelity);
  return outcome && outcome->ok ? constraint_violation(outcome->metrics, settings.constraints)
                                : std::numeric_limits<double>::infinity();
}

std::string significant(double value, int digits) {
  char text[32];
  std::snprintf(text, sizeof text, "%.*g", digits, value);
  return text;
}

}  // namespace

std::vector<std::string> finalists(const db::GenerationRecord& last, const EvaluationLedger& ledger,
                                   const SearchSettings& settings,
                                   const std::map<std::string, std::string>& labels, int top) {
  std::vector<std::size_t> front, feasible;
  for (std::size_t i = 0; i < last.population.size(); ++i) {
    if (last.population[i].rank != 0) continue;
    front.push_back(i);
    if (violation_of(last.population[i].genome_hash, ledger, settings) == 0.0) feasible.push_back(i);
  }
  if (!feasible.empty()) front = std::move(feasible);
  // Crowding distance keeps the front's spread when it is cut: its ends
  // (infinite distance) first, then the members with the emptiest neighbourhoods.
  std::stable_sort(front.begin(), front.end(), [&](std::size_t a, std::size_t b) {
    return last.population[a].crowding > last.population[b].crowding;
  });
  std::vector<std::string> out;
  std::set<std::string> listed;
  for (std::size_t i : front) {
    if (static_cast<int>(out.size()) >= top) break;
    if (listed.insert(last.population[i].genome_hash).second) out.push_back(last.population[i].genome_hash);
  }
  std::vector<std::pair<std::string, std::string>> named(labels.begin(), labels.end());
  std::sort(named.begin(), named.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
  for (const auto& [hash, label] : named)
    if (listed.insert(hash).second) out.push_back(hash);
  return out;
}

double expected_full_seconds(const std::string& hash, const EvaluationLedger& ledger,
                             const SearchSettings& settings) {
  double fidelity = 0.0;
  const Outcome* outcome = highest_rung_outcome(hash, ledger, settings, fidelity);
  if (!outcome || !outcome->ok || fidelity <= 0.0) return std::numeric_limits<double>::infinity();
  const auto train = outcome->metrics.find("train_seconds");
  const double training = train != outcome->metrics.end() ? std::min(train->second, outcome->wall_seconds)
                                                          : outcome->wall_seconds;
  return (outcome->wall_seconds - training) + training / fidelity;
}

double expected_stage_seconds(const std::vector<double>& durations, int lanes) {
  if (durations.empty() || lanes < 1) return 0.0;
  // Each training goes to the lane that frees up first: the least loaded.
  std::vector<double> load(static_cast<std::size_t>(std::min<std::size_t>(lanes, durations.size())), 0.0);
  for (const double d : durations) *std::min_element(load.begin(), load.end()) += d;
  return *std::max_element(load.begin(), load.end());
}

FinalStageCounts run_final_stage(const std::vector<std::string>& finalist_hashes,
                                 const SearchSettings& settings, const EvaluateFunction& evaluate,
                                 db::Store& store, EvaluationLedger& ledger, const FinalStageRun& run) {
  FinalStageCounts counts;
  std::vector<EvaluationJob> jobs;
  for (const auto& hash : finalist_hashes) {
    const auto stored = store.genome(hash);
    if (!stored)
      throw db::DatabaseError(store.path() + ": finalist " + hash + " is not in the genomes table");
    for (int k = 0; k < settings.final_seeds; ++k) {
      EvaluationJob job;
      job.request.genome = stored->genome;
      job.request.genome_hash = hash;
      job.request.fidelity = 1.0;
      job.request.seed = evaluation_seed(settings.seed, hash, k);
      job.request.settings = run.eval_settings;
      job.request.device = run.device;
      if (ledger.contains({hash, 1.0, job.request.seed})) {
        ++counts.evaluations_reused;
        continue;
      }
      job.generation = run.generation;
      job.summary = stored->summary + " (seed " + std::to_string(k + 1) + "/" +
                    std::to_string(settings.final_seeds) + ")";
      jobs.push_back(std::move(job));
    }
  }
  // Longest first (stable: ties keep finalist and seed order).
  std::map<std::string, double> expected;
  for (const auto& hash : finalist_hashes) expected[hash] = expected_full_seconds(hash, ledger, settings);
  std::stable_sort(jobs.begin(), jobs.end(), [&](const EvaluationJob& a, const EvaluationJob& b) {
    return expected.at(a.request.genome_hash) > expected.at(b.request.genome_hash);
  });
  if (run.executor.log) {
    std::string line = "final stage: " + std::to_string(finalist_hashes.size()) + " finalists x " +
                       std::to_string(settings.final_seeds) +
                       " seeds at fidelity 1: " + std::to_string(jobs.size()) + " to train, " +
                       std::to_string(counts.evaluations_reused) + " already done";
    // From the finalists' search-stage runs; said only when every one is known.
    std::vector<double> durations;
    for (const auto& job : jobs) durations.push_back(expected.at(job.request.genome_hash));
    const int lanes = lane_count(run.executor);
    const double seconds = expected_stage_seconds(durations, lanes);
    if (!jobs.empty() && std::isfinite(seconds))
      line += ", expected about " + format_duration(seconds) + " on " + std::to_string(lanes) +
              (lanes == 1 ? " lane" : " lanes");
    run.executor.log(line);
  }
  run_evaluations(jobs, evaluate, store, run.run_id, run.executor,
                  [&](std::size_t j, const db::EvaluationOutcome& outcome) {
                    const auto& request = jobs[j].request;
                    ledger.record({request.genome_hash, 1.0, request.seed}, outcome, run.generation);
                    ++counts.evaluations_run;
                  });
  return counts;
}

std::vector<std::string> final_table(const std::vector<std::string>& finalist_hashes,
                                     const SearchSettings& settings, const EvaluationLedger& ledger,
                                     const std::map<std::string, std::string>& labels) {
  struct Row {
    std::string name;
    std::vector<SeedSummary> objectives;
    int ok = 0;
  };
  std::vector<Row> rows;
  for (const auto& hash : finalist_hashes) {
    Row row;
    const auto label = labels.find(hash);
    row.name = label != labels.end() ? label->second : hash.substr(0, 12);
    std::vector<std::vector<double>> values(settings.objectives.size());
    for (int k = 0; k < settings.final_seeds; ++k) {
      const Outcome* outcome = ledger.find({hash, 1.0, evaluation_seed(settings.seed, hash, k)});
      if (!outcome || !outcome->ok) continue;
      ++row.ok;
      for (std::size_t j = 0; j < settings.objectives.size(); ++j) {
        const auto metric = outcome->metrics.find(settings.objectives[j].name);
        values[j].push_back(metric == outcome->metrics.end() ? std::nan("") : metric->second);
      }
    }
    for (const auto& v : values) row.objectives.push_back(summarise_seeds(v));
    rows.push_back(std::move(row));
  }
  const bool first_max =
      !settings.objectives.empty() && settings.objectives[0].direction == Direction::maximise;
  std::stable_sort(rows.begin(), rows.end(), [&](const Row& a, const Row& b) {
    if ((a.ok > 0) != (b.ok > 0)) return a.ok > 0;
    if (a.objectives.empty() || a.ok == 0) return false;
    return first_max ? a.objectives[0].mean > b.objectives[0].mean
                     : a.objectives[0].mean < b.objectives[0].mean;
  });
  // Columns padded by characters, not bytes ("±" is two bytes in UTF-8).
  auto pad = [](std::string text, std::size_t width) {
    std::size_t chars = 0;
    for (unsigned char c : text) chars += (c & 0xC0) != 0x80;
    if (chars < width) text.append(width - chars, ' ');
    return text;
  };
  std::size_t name_width = 4;
  for (const auto& row : rows) name_width = std::max(name_width, row.name.size());
  std::vector<std::size_t> widths;
  std::string head = "  " + pad("name", name_width);
  for (const auto& objective : settings.objectives) {
    const std::string title = objective.name + " (mean ± sd)";
    widths.push_back(std::max<std::size_t>(title.size(), 22));
    head += "  " + pad(title, widths.back());
  }
  std::vector<std::string> lines{head + "  seeds ok"};
  for (const auto& row : rows) {
    std::string line = "  " + pad(row.name, name_width);
    for (std::size_t j = 0; j < row.objectives.size(); ++j) {
      const auto& s = row.objectives[j];
      line += "  " + pad(s.n == 0 ? "-" : significant(s.mean, 5) + " ± " + significant(s.sd, 2), widths[j]);
    }
    lines.push_back(line + "  " + std::to_string(row.ok) + "/" + std::to_string(settings.final_seeds));
  }
  return lines;
}

}  // namespace livs::search
