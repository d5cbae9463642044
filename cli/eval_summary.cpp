#include "cli/eval_summary.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "cli/query_common.hpp"

namespace livs::cli {

std::map<std::string, SeedSummary> summarise_metrics(
    const std::vector<std::map<std::string, double>>& seeds) {
  std::map<std::string, std::vector<double>> columns;
  for (const auto& metrics : seeds)
    for (const auto& [name, value] : metrics) columns[name].push_back(value);
  std::map<std::string, SeedSummary> out;
  for (const auto& [name, values] : columns) out[name] = summarise_seeds(values);
  return out;
}

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
