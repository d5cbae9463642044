#include "search/rung_statistics.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>

#include "common/evaluate_contract.hpp"
#include "search/rank_correlation.hpp"

namespace livs::search {

std::vector<RankStability> rank_stability(const db::Queries& db, const db::RunRecord& run,
                                          const std::vector<db::FidelityCounts>& fidelities,
                                          const std::vector<Objective>& objectives) {
  std::vector<std::map<std::string, Candidate>> at;  // per fidelity, by hash
  for (const auto& f : fidelities) {
    std::map<std::string, Candidate> by_hash;
    for (auto& c : load_candidates(db, run, f.fidelity).candidates) by_hash.emplace(c.hash, std::move(c));
    at.push_back(std::move(by_hash));
  }
  auto mean_of = [](const Candidate& c, const std::string& objective) {
    auto it = c.metrics.find(objective);
    return it == c.metrics.end() || it->second.n == 0 ? std::numeric_limits<double>::quiet_NaN()
                                                      : it->second.mean;
  };
  std::vector<RankStability> out;
  for (std::size_t i = 0; i + 1 < fidelities.size(); ++i) {
    RankStability pair{fidelities[i].fidelity, fidelities[i + 1].fidelity, 0, {}};
    std::vector<std::pair<const Candidate*, const Candidate*>> both;
    for (const auto& [hash, low] : at[i])
      if (auto high = at[i + 1].find(hash); high != at[i + 1].end()) both.emplace_back(&low, &high->second);
    pair.genomes = both.size();
    for (const auto& o : objectives) {
      std::vector<double> low, high;
      for (const auto& [l, h] : both) {
        double a = mean_of(*l, o.name), b = mean_of(*h, o.name);
        if (!std::isfinite(a) || !std::isfinite(b)) continue;
        low.push_back(a);
        high.push_back(b);
      }
      pair.tau.emplace_back(o.name, kendall_tau_b(low, high));
    }
    out.push_back(std::move(pair));
  }
  return out;
}

std::vector<RungCounts> rung_counts(const db::RunRecord& run, const RunGoals& goals,
                                    const std::vector<db::EvaluationRecord>& evaluations) {
  std::vector<std::set<std::string>> finished(goals.rungs.size()), running(goals.rungs.size());
  for (const auto& e : evaluations) {
    if (e.seed != evaluation_seed(run.seed, e.genome_hash)) continue;
    const auto at = std::find(goals.rungs.begin(), goals.rungs.end(), e.fidelity);
    if (at == goals.rungs.end()) continue;
    const auto rung = static_cast<std::size_t>(at - goals.rungs.begin());
    if (e.status == db::EvaluationStatus::ok || e.status == db::EvaluationStatus::failed)
      finished[rung].insert(e.genome_hash);
    else if (e.status == db::EvaluationStatus::running)
      running[rung].insert(e.genome_hash);
  }
  std::vector<RungCounts> out;
  for (std::size_t r = 0; r < goals.rungs.size(); ++r) {
    RungCounts counts{goals.rungs[r], finished[r].size(), running[r].size(), 0};
    if (r + 1 < goals.rungs.size())
      for (const auto& hash : finished[r])
        counts.promoted += finished[r + 1].count(hash) + running[r + 1].count(hash);
    out.push_back(counts);
  }
  return out;
}

}  // namespace livs::search
