#pragma once
// Rungs of fidelity and the rule that promotes a candidate from one to the
// next: asynchronous successive halving (ASHA, Li et al. 2020) with the
// multi-objective rule of MO-ASHA (Schmucker et al. 2021).
//
// Every candidate's first result is at the lowest rung. A candidate is
// promotable from rung r when it is among the best floor(n_r / eta) of the
// n_r results rung r holds so far, ordered by constrained non-dominated rank
// and then crowding distance (NSGA-II's crowded comparison, so constraints
// and every objective count, and the spread of the front survives the cut),
// and has no result at rung r + 1 yet and is not being trained there, and
// rung r has promoted fewer than floor(n_r / eta) so far. Failed results count
// in n_r (they are the worst) and are never promoted. Nothing waits for a rung
// to fill: the rule is asked whenever a worker is free, and as a rung grows,
// candidates that missed an earlier cut can still be promoted.
//
// The cap departs from ASHA, which promotes whatever is in the top 1/eta at
// the time: under evolution the stream of candidates improves, each newcomer
// pushes into the top third, and uncapped ASHA promoted half of them in our
// tests instead of a third. With the cap, a rung spends exactly what
// successive halving budgets for it, and a newcomer that stays in the top
// 1/eta is promoted as soon as the rung has grown by eta.
//
// Results at different rungs are never compared on their objectives (a
// perplexity after 10% of the steps is not one after 100%): a candidate's
// standing is its highest rung first (see rank_and_crowding in evolution.hpp).
#include <cstddef>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "search/evaluation_ledger.hpp"
#include "search/evolution.hpp"
#include "search/settings.hpp"

namespace livs::search {

// How the search scores an evaluation: its minimised objectives and its
// constraint violation (a failed evaluation is infinitely bad in both).
Fitness fitness_of(const Outcome& outcome, const SearchSettings& settings);

class Rungs {
 public:
  Rungs(std::vector<double> fidelities, int eta);

  std::size_t count() const { return fidelities_.size(); }
  double fidelity(std::size_t rung) const { return fidelities_.at(rung); }
  std::size_t top() const { return fidelities_.size() - 1; }

  // A result of `hash` at `rung`, in the order results arrive (which breaks
  // ties in the promotion order). A second result for the same pair is ignored.
  void add(std::size_t rung, const std::string& hash, const Fitness& fitness);
  // Being trained at `rung` now: not to be promoted there again.
  void start(std::size_t rung, const std::string& hash) { taken_.at(rung).insert(hash); }
  bool has_result(std::size_t rung, const std::string& hash) const;
  // Has a result or is being trained at `rung`.
  bool taken(std::size_t rung, const std::string& hash) const { return taken_.at(rung).count(hash) > 0; }

  // The next promotion due, highest rung first and the best candidate of
  // that rung first: the rung it goes to and the genome. nullopt: none due.
  struct Promotion {
    std::size_t rung = 0;  // the rung it is promoted to
    std::string hash;
  };
  std::optional<Promotion> next_promotion() const;

  // A genome's highest rung with a result, and that result (nullopt: none).
  struct Standing {
    std::size_t rung = 0;
    Fitness fitness;
  };
  std::optional<Standing> standing(const std::string& hash) const;

  std::size_t results(std::size_t rung) const { return results_.at(rung).size(); }

 private:
  struct Result {
    std::string hash;
    Fitness fitness;
  };
  std::vector<double> fidelities_;
  int eta_;
  std::vector<std::vector<Result>> results_;               // per rung, in arrival order
  std::vector<std::set<std::string>> taken_;               // per rung: results and started
  std::vector<std::map<std::string, std::size_t>> where_;  // per rung: hash -> index in results_
};

}  // namespace livs::search
