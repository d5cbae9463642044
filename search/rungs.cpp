#include "search/rungs.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>

namespace livs::search {

Fitness fitness_of(const Outcome& outcome, const SearchSettings& settings) {
  if (!outcome.ok)
    return {std::vector<double>(settings.objectives.size(), std::numeric_limits<double>::infinity()),
            std::numeric_limits<double>::infinity()};
  return {minimised_objectives(outcome.metrics, settings.objectives),
          constraint_violation(outcome.metrics, settings.constraints)};
}

Rungs::Rungs(std::vector<double> fidelities, int eta)
    : fidelities_(std::move(fidelities)),
      eta_(std::max(2, eta)),
      results_(fidelities_.size()),
      taken_(fidelities_.size()),
      where_(fidelities_.size()) {}

void Rungs::add(std::size_t rung, const std::string& hash, const Fitness& fitness) {
  if (where_.at(rung).count(hash)) return;
  where_[rung][hash] = results_[rung].size();
  results_[rung].push_back({hash, fitness});
  taken_[rung].insert(hash);
}

bool Rungs::has_result(std::size_t rung, const std::string& hash) const {
  return where_.at(rung).count(hash) > 0;
}

std::optional<Rungs::Promotion> Rungs::next_promotion() const {
  for (std::size_t rung = top(); rung-- > 0;) {
    const auto& here = results_[rung];
    const std::size_t quota = here.size() / static_cast<std::size_t>(eta_);
    // Every genome at rung + 1 came from this rung: the promotions so far.
    if (taken_[rung + 1].size() >= quota) continue;
    std::vector<std::vector<double>> points;
    std::vector<double> violation;
    for (const auto& result : here) {
      points.push_back(result.fitness.minimised);
      violation.push_back(result.fitness.violation);
    }
    const auto ranking = constrained_nondominated_sort(points, violation);
    const RankCrowding keys{ranking.rank, crowding_distances(points, ranking)};
    std::vector<std::size_t> order(here.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    // Stable: equal keys keep arrival order.
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return crowded_better(keys, a, b); });
    for (std::size_t k = 0; k < quota; ++k) {
      const auto& result = here[order[k]];
      if (!std::isfinite(result.fitness.violation)) continue;  // failed: never promoted
      if (!taken(rung + 1, result.hash)) return Promotion{rung + 1, result.hash};
    }
  }
  return std::nullopt;
}

std::optional<Rungs::Standing> Rungs::standing(const std::string& hash) const {
  for (std::size_t rung = count(); rung-- > 0;) {
    const auto found = where_[rung].find(hash);
    if (found != where_[rung].end()) return Standing{rung, results_[rung][found->second].fitness};
  }
  return std::nullopt;
}

}  // namespace livs::search
