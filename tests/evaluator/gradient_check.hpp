#pragma once
// Finite-difference checks for the evaluator tests.
//
// The kernels are fp32, so the reference is a central difference of a loss
// summed in double: (L(x + eps) - L(x - eps)) / (2 eps) with eps = 1e-2 by
// default. An analytic value a passes against the numeric value n when
//   |a - n| <= rtol * (|a| + |n|) + atol * scale,
// scale being the largest |a| checked, with rtol = 1e-2 and atol = 1e-3: fp32
// rounding and the O(eps^2) truncation stay well inside that, while a wrong
// term in a backward pass is off by O(1).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "common/rng.hpp"

namespace livs::evaluator::testing {

inline std::vector<float> random_vector(std::size_t n, uint64_t seed, double stddev = 1.0,
                                        double mean = 0.0) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = float(rng.normal(mean, stddev));
  return v;
}

// Sum of out[i] * weights[i] in double: a scalar loss with a known gradient (weights).
inline double weighted_sum(const float* out, const std::vector<float>& weights) {
  double s = 0.0;
  for (std::size_t i = 0; i < weights.size(); ++i) s += double(out[i]) * double(weights[i]);
  return s;
}

struct GradientCheck {
  double eps = 1e-2;
  double rtol = 1e-2;
  double atol = 1e-3;
  std::size_t max_points = 64;  // spread evenly over the tensor
};

// `values` is perturbed in place (and restored); `analytic` is its gradient.
inline void check_gradient(const std::string& what, float* values, const std::vector<float>& analytic,
                           const std::function<double()>& loss, const GradientCheck& c = {}) {
  const std::size_t n = analytic.size();
  const std::size_t stride = std::max<std::size_t>(1, n / c.max_points);
  double scale = 0.0;
  for (float a : analytic) scale = std::max(scale, double(std::fabs(a)));
  REQUIRE_MESSAGE(scale > 0.0, what << ": the analytic gradient is all zero");
  int failures = 0;
  for (std::size_t i = 0; i < n; i += stride) {
    const float saved = values[i];
    values[i] = float(saved + c.eps);
    const double up = loss();
    values[i] = float(saved - c.eps);
    const double down = loss();
    values[i] = saved;
    const double numeric = (up - down) / (2.0 * c.eps);
    const double a = analytic[i];
    const bool ok = std::fabs(a - numeric) <= c.rtol * (std::fabs(a) + std::fabs(numeric)) + c.atol * scale;
    if (!ok && failures++ < 5) {
      MESSAGE(what << "[" << i << "]: analytic " << a << ", numeric " << numeric);
    }
  }
  CHECK_MESSAGE(failures == 0,
                what << ": " << failures << " gradient entries differ from finite differences");
}

}  // namespace livs::evaluator::testing
