#pragma once
// Mean and spread of metrics over seeds (the replicates of one architecture or
// candidate): what `livsearch eval --seeds N` reports, and what every table
// that shows a genome's seed-to-seed spread uses, so the numbers agree.
#include <map>
#include <string>
#include <vector>

namespace livs::cli {

struct SeedSummary {
  int n = 0;            // how many finite values were summarised
  double mean = 0.0;    // NaN when n == 0
  double stddev = 0.0;  // sample standard deviation (divides by n - 1); 0 when n < 2
  double min = 0.0;     // NaN when n == 0
  double max = 0.0;     // NaN when n == 0
};

// Non-finite values are skipped, as common/seed_summary.hpp's summarise_seeds
// (the search's final stage) skips them: a value that is not a number has
// nothing to add to a mean.
SeedSummary summarise(const std::vector<double>& values);

// One summary per metric name over the metric maps of several seeds; a metric
// that only some seeds report is summarised over those (its n says how many).
std::map<std::string, SeedSummary> summarise_metrics(const std::vector<std::map<std::string, double>>& seeds);

// "13.1229 ± 0.041": the mean (format_number), then the sample standard
// deviation to two significant digits; the mean alone when n == 1; "-" when n == 0.
std::string format_mean_sd(const SeedSummary& summary);

}  // namespace livs::cli
