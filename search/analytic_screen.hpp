#pragma once
// The check every genome passes before it may be trained: the metrics that
// are functions of the genome and the config alone (params, cache_bytes,
// flops per token: "analytic") against the constraints on them and the
// search space's max_params. A genome that breaks one is refused and drawn
// again, so no GPU time goes to a candidate whose verdict is known before
// training. Constraints on measured metrics (perplexity, latency, accuracy)
// are left to constrained domination after training.
//
// The screen counts what it refuses, per metric, for the generation's record
// and the progress line, and remembers the best value drawn of each screened
// metric, so that a space that cannot meet its budget at all fails with a
// message that says by how much.
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "genome/genome.hpp"
#include "search/pareto.hpp"

namespace livs::search {

// The analytic metrics of a genome (the evaluator's, wired in by the CLI).
using AnalyticFunction = std::function<Metrics(const genome::Genome&)>;

class AnalyticScreen {
 public:
  AnalyticScreen() = default;  // admits everything
  // Screens the constraints whose metric `analytic` reports; `max_params` > 0
  // adds "params <= max_params" (the search space's own limit).
  AnalyticScreen(AnalyticFunction analytic, const std::vector<Constraint>& constraints, int64_t max_params);

  // True when the genome meets every screened constraint. Counts refusals.
  bool admits(const genome::Genome& genome);

  // What has been refused since the last reset_counts().
  int64_t rejected() const { return rejected_; }
  const std::map<std::string, int64_t>& rejected_by() const { return rejected_by_; }
  void reset_counts();

  // "no genome of this space has params <= 5000 after 2200 draws; the
  // smallest drawn had params 16736" (the best value drawn of each
  // constraint that was never met).
  std::string explain_no_admissible(std::size_t draws) const;

  // The screened constraints a genome breaks, as "cache_bytes 32768 > 16384"
  // (empty: it is admissible). Counts nothing.
  std::vector<std::string> violations(const genome::Genome& genome) const;

 private:
  AnalyticFunction analytic_;
  std::vector<Constraint> constraints_;  // screened where `analytic` reports their metric
  int64_t rejected_ = 0;
  std::map<std::string, int64_t> rejected_by_;
  // Per constraint (by index): whether any drawn genome met it, and the drawn
  // value closest to meeting it.
  std::vector<bool> ever_met_;
  std::vector<double> closest_;
};

}  // namespace livs::search
