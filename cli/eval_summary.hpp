#pragma once
// Mean and spread of metrics over seeds (the replicates of one architecture or
// candidate) as the CLI's tables print them; the arithmetic is
// common/seed_summary.hpp's, which the search's final stage uses too.
#include <map>
#include <string>
#include <vector>

#include "common/seed_summary.hpp"

namespace livs::cli {

using livs::SeedSummary;
using livs::summarise_metrics;  // common/seed_summary.hpp

// "13.1229 ± 0.041": the mean (format_number), then the sample standard
// deviation to two significant digits; the mean alone when n == 1; "-" when n == 0.
std::string format_mean_sd(const SeedSummary& summary);

}  // namespace livs::cli
