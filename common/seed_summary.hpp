#pragma once
// One metric over the seeds of repeated evaluations: the mean and the sample
// standard deviation (n - 1 in the denominator; 0 for a single seed), the
// numbers every "mean ± sd over seeds" table prints.
#include <cstddef>
#include <vector>

namespace livs {

struct SeedSummary {
  std::size_t n = 0;
  double mean = 0.0;
  double sd = 0.0;
  double min = 0.0;
  double max = 0.0;
};

// Non-finite values are skipped (a failed seed has no number to average).
SeedSummary summarise_seeds(const std::vector<double>& values);

}  // namespace livs
