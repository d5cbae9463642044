#pragma once
// Statistics of a stored search over several fidelities (rungs), shared by
// `livsearch status` and `livsearch report`: how well each fidelity's ranking
// predicts the next one's, and how many genomes each rung saw and promoted.
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "db/store.hpp"
#include "search/pareto.hpp"
#include "search/run_front.hpp"

namespace livs::search {

// Whether the cheap fidelity predicts the expensive one: for two consecutive
// fidelities of a run, Kendall's tau-b between each objective's values at the
// lower and at the higher, over the genomes with an ok evaluation at both (a
// genome's value at a fidelity: its mean over seeds, as `pareto` ranks it).
// A genome without a finite value of an objective at either fidelity is left
// out of that objective's tau only.
struct RankStability {
  double from = 0.0;
  double to = 0.0;
  std::size_t genomes = 0;
  std::vector<std::pair<std::string, double>> tau;  // per objective, in the run's order; NaN: undefined
};

std::vector<RankStability> rank_stability(const db::Queries& db, const db::RunRecord& run,
                                          const std::vector<db::FidelityCounts>& fidelities,
                                          const std::vector<Objective>& objectives);

// The rungs of a search over several fidelities: per rung, the genomes with
// a finished search-stage result there (replicate 0: the final stage's other
// seeds are not rung results), those being trained there now, and how many
// of them went on to the next rung.
struct RungCounts {
  double fidelity = 0.0;
  std::size_t candidates = 0;
  std::size_t running = 0;
  std::size_t promoted = 0;  // candidates with a result or a training at the next rung
};

std::vector<RungCounts> rung_counts(const db::RunRecord& run, const RunGoals& goals,
                                    const std::vector<db::EvaluationRecord>& evaluations);

}  // namespace livs::search
