#pragma once
// One metric over the seeds of repeated evaluations: the mean and the sample
// standard deviation (n - 1 in the denominator; 0 for a single seed), the
// numbers every "mean ± sd over seeds" table prints (the final stage's log,
// `eval`, `pareto`, `show`, `status`), so they all agree.
#include <map>
#include <string>
#include <vector>

namespace livs {

struct SeedSummary {
  int n = 0;          // how many finite values were summarised
  double mean = 0.0;  // NaN when n == 0
  double sd = 0.0;    // sample standard deviation; 0 when n < 2
  double min = 0.0;   // NaN when n == 0
  double max = 0.0;   // NaN when n == 0
};

// Non-finite values are skipped: a failed seed has no number to average.
SeedSummary summarise_seeds(const std::vector<double>& values);

// One summary per metric name over the metric maps of several seeds; a metric
// that only some seeds report is summarised over those (its n says how many).
std::map<std::string, SeedSummary> summarise_metrics(const std::vector<std::map<std::string, double>>& seeds);

}  // namespace livs
