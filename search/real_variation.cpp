#include "search/real_variation.hpp"

#include <algorithm>
#include <cmath>

namespace livs::search {

namespace {
// The spread factor of SBX for one side: alpha from the distance to the bound.
double sbx_betaq(double u, double beta, double eta) {
  const double alpha = 2.0 - std::pow(beta, -(eta + 1.0));
  if (u <= 1.0 / alpha) return std::pow(u * alpha, 1.0 / (eta + 1.0));
  return std::pow(1.0 / (2.0 - u * alpha), 1.0 / (eta + 1.0));
}
}  // namespace

std::pair<std::vector<double>, std::vector<double>> sbx_crossover(const std::vector<double>& a,
                                                                  const std::vector<double>& b,
                                                                  const RealBounds& bounds, double eta,
                                                                  Rng& rng) {
  std::vector<double> c1 = a, c2 = b;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!rng.bernoulli(0.5)) continue;
    if (std::abs(a[i] - b[i]) <= 1e-14) continue;
    const double y1 = std::min(a[i], b[i]), y2 = std::max(a[i], b[i]);
    const double lo = bounds.lower[i], hi = bounds.upper[i];
    const double u = rng.uniform();
    const double betaq1 = sbx_betaq(u, 1.0 + 2.0 * (y1 - lo) / (y2 - y1), eta);
    const double betaq2 = sbx_betaq(u, 1.0 + 2.0 * (hi - y2) / (y2 - y1), eta);
    const double low_child = std::clamp(0.5 * ((y1 + y2) - betaq1 * (y2 - y1)), lo, hi);
    const double high_child = std::clamp(0.5 * ((y1 + y2) + betaq2 * (y2 - y1)), lo, hi);
    if (rng.bernoulli(0.5)) {
      c1[i] = high_child;
      c2[i] = low_child;
    } else {
      c1[i] = low_child;
      c2[i] = high_child;
    }
  }
  return {std::move(c1), std::move(c2)};
}

std::vector<double> polynomial_mutation(std::vector<double> x, const RealBounds& bounds, double eta,
                                        double per_variable_probability, Rng& rng) {
  const double power = 1.0 / (eta + 1.0);
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (!rng.bernoulli(per_variable_probability)) continue;
    const double lo = bounds.lower[i], hi = bounds.upper[i];
    const double delta1 = (x[i] - lo) / (hi - lo), delta2 = (hi - x[i]) / (hi - lo);
    const double u = rng.uniform();
    double deltaq;
    if (u <= 0.5) {
      const double value = 2.0 * u + (1.0 - 2.0 * u) * std::pow(1.0 - delta1, eta + 1.0);
      deltaq = std::pow(value, power) - 1.0;
    } else {
      const double value = 2.0 * (1.0 - u) + 2.0 * (u - 0.5) * std::pow(1.0 - delta2, eta + 1.0);
      deltaq = 1.0 - std::pow(value, power);
    }
    x[i] = std::clamp(x[i] + deltaq * (hi - lo), lo, hi);
  }
  return x;
}

}  // namespace livs::search
