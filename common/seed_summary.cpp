#include "common/seed_summary.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace livs {

SeedSummary summarise_seeds(const std::vector<double>& values) {
  std::vector<double> finite;
  for (double v : values)
    if (std::isfinite(v)) finite.push_back(v);
  SeedSummary s;
  s.n = static_cast<int>(finite.size());
  if (finite.empty()) {
    s.mean = s.min = s.max = std::numeric_limits<double>::quiet_NaN();
    return s;
  }
  double sum = 0.0;
  for (double v : finite) sum += v;
  s.mean = sum / s.n;
  // Two passes: the squared deviations from the mean, not sum(x^2) - n mean^2,
  // which cancels badly when the spread is small next to the mean (perplexity).
  if (s.n > 1) {
    double squares = 0.0;
    for (double v : finite) squares += (v - s.mean) * (v - s.mean);
    s.sd = std::sqrt(squares / (s.n - 1));
  }
  const auto [lo, hi] = std::minmax_element(finite.begin(), finite.end());
  s.min = *lo;
  s.max = *hi;
  return s;
}

std::map<std::string, SeedSummary> summarise_metrics(
    const std::vector<std::map<std::string, double>>& seeds) {
  std::map<std::string, std::vector<double>> columns;
  for (const auto& metrics : seeds)
    for (const auto& [name, value] : metrics) columns[name].push_back(value);
  std::map<std::string, SeedSummary> out;
  for (const auto& [name, values] : columns) out[name] = summarise_seeds(values);
  return out;
}

}  // namespace livs
