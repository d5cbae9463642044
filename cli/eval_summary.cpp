#include "cli/eval_summary.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "cli/query_common.hpp"

namespace livs::cli {

std::string format_mean_sd(const SeedSummary& summary) {
  if (summary.n == 0) return "-";
  std::string text = format_number(summary.mean);
  if (summary.n == 1) return text;
  char spread[32];
  // Two significant digits, without an exponent for large spreads.
  std::snprintf(spread, sizeof spread, summary.sd >= 10 ? "%.0f" : "%.2g", summary.sd);
  return text + " \u00b1 " + spread;
}

}  // namespace livs::cli
