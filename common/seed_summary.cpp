#include "common/seed_summary.hpp"

#include <algorithm>
#include <cmath>

namespace livs {

SeedSummary summarise_seeds(const std::vector<double>& values) {
  SeedSummary s;
  double sum = 0.0;
  for (double v : values) {
    if (!std::isfinite(v)) continue;
    s.min = s.n == 0 ? v : std::min(s.min, v);
    s.max = s.n == 0 ? v : std::max(s.max, v);
    sum += v;
    ++s.n;
  }
  if (s.n == 0) return s;
  s.mean = sum / static_cast<double>(s.n);
  if (s.n > 1) {
    double squares = 0.0;
    for (double v : values)
      if (std::isfinite(v)) squares += (v - s.mean) * (v - s.mean);
    s.sd = std::sqrt(squares / static_cast<double>(s.n - 1));
  }
  return s;
}

}  // namespace livs
