#include "search/rank_correlation.hpp"

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

namespace livs::search {

namespace {

// -1, 0 or 1; comparisons rather than a subtraction, so infinities order too.
int order(double a, double b) { return (a < b) - (b < a); }

}  // namespace

double kendall_tau_b(const std::vector<double>& x, const std::vector<double>& y) {
  if (x.size() != y.size())
    throw std::invalid_argument("kendall_tau_b: " + std::to_string(x.size()) + " values against " +
                                std::to_string(y.size()));
  constexpr double nan = std::numeric_limits<double>::quiet_NaN();
  const std::size_t n = x.size();
  if (n < 2) return nan;
  for (std::size_t i = 0; i < n; ++i)
    if (std::isnan(x[i]) || std::isnan(y[i])) return nan;
  int64_t concordant = 0, discordant = 0, tied_x = 0, tied_y = 0;
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = i + 1; j < n; ++j) {
      int s = order(x[i], x[j]) * order(y[i], y[j]);
      tied_x += x[i] == x[j];
      tied_y += y[i] == y[j];
      concordant += s > 0;
      discordant += s < 0;
    }
  const int64_t pairs = static_cast<int64_t>(n) * static_cast<int64_t>(n - 1) / 2;
  // One square root of the product: exact when the product is a square (as it
  // is for perfect agreement), so agreement is 1, not 1 - 1e-16. The product
  // of pair counts is an exact double up to n of about 10^4.
  const double denominator =
      std::sqrt(static_cast<double>(pairs - tied_x) * static_cast<double>(pairs - tied_y));
  if (denominator == 0.0) return nan;
  return static_cast<double>(concordant - discordant) / denominator;
}

}  // namespace livs::search
