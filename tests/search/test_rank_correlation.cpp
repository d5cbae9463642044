// Kendall's tau-b against values worked out by hand (each pair listed in the
// comments) and scipy.stats.kendalltau's documented example.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "search/rank_correlation.hpp"

using livs::search::kendall_tau_b;

TEST_CASE("kendall tau-b: perfect agreement is 1, a reversal -1") {
  const std::vector<double> x = {0.5, 1.0, 2.0, 3.5, 9.0};
  CHECK(kendall_tau_b(x, {10, 20, 30, 40, 50}) == 1.0);
  CHECK(kendall_tau_b(x, {50, 40, 30, 20, 10}) == -1.0);
  // Ranks, not values: any increasing transform agrees perfectly.
  CHECK(kendall_tau_b(x, {std::exp(0.5), std::exp(1.0), std::exp(2.0), std::exp(3.5), std::exp(9.0)}) == 1.0);
  CHECK(kendall_tau_b({1, 2}, {7, 3}) == -1.0);  // two observations: one pair
  const double inf = std::numeric_limits<double>::infinity();
  CHECK(kendall_tau_b({1, 2, 3}, {-inf, 0, inf}) == 1.0);  // infinities are ordered
}

TEST_CASE("kendall tau-b without ties: (concordant - discordant) / pairs") {
  // x = 1..5, y = 3 1 2 5 4. Pairs (i, j), y_i -> y_j: (1,2) 3->1 D, (1,3) 3->2 D,
  // (1,4) 3->5 C, (1,5) 3->4 C, (2,3) C, (2,4) C, (2,5) C, (3,4) C, (3,5) C,
  // (4,5) 5->4 D. C = 7, D = 3: tau = 4 / 10.
  CHECK(kendall_tau_b({1, 2, 3, 4, 5}, {3, 1, 2, 5, 4}) == doctest::Approx(0.4).epsilon(1e-15));
}

TEST_CASE("kendall tau-b with ties: a pair tied on either side counts in the denominator only") {
  // x = 1 2 2 3, y = 1 3 2 2. Pairs: (1,2) C, (1,3) C, (1,4) C, (2,3) tied in x,
  // (2,4) x up, y 3->2 down: D, (3,4) tied in y. n0 = 6, n1 = 1, n2 = 1:
  // tau-b = (3 - 1) / sqrt(5 * 5) = 0.4 (tau-a, without the correction, would be 2/6).
  CHECK(kendall_tau_b({1, 2, 2, 3}, {1, 3, 2, 2}) == doctest::Approx(0.4).epsilon(1e-15));

  // scipy.stats.kendalltau's documented example: x = 12 2 1 12 2, y = 1 4 7 1 0,
  // statistic -0.47140452079103173. By hand: (1,2) x down y up D, (1,3) D,
  // (1,4) tied in both, (1,5) x down y down C, (2,3) x down y up D, (2,4) x up
  // y down D, (2,5) tied in x, (3,4) D, (3,5) D, (4,5) C. C = 2, D = 6, n0 = 10,
  // n1 = 2 ((1,4), (2,5)), n2 = 1 ((1,4)): tau-b = -4 / sqrt(8 * 9).
  const double scipy = -0.47140452079103173;
  CHECK(kendall_tau_b({12, 2, 1, 12, 2}, {1, 4, 7, 1, 0}) == doctest::Approx(scipy).epsilon(1e-14));
  CHECK(kendall_tau_b({12, 2, 1, 12, 2}, {1, 4, 7, 1, 0}) == doctest::Approx(-4.0 / std::sqrt(72.0)));

  // Two binary variables: tau-b is the phi coefficient of their 2 x 2 table,
  // (ad - bc) / sqrt((a+b)(c+d)(a+c)(b+d)). Here a = 3 (0,0), b = 1 (0,1),
  // c = 2 (1,0), d = 4 (1,1): (12 - 2) / sqrt(4 * 6 * 5 * 5).
  const std::vector<double> x = {0, 0, 0, 0, 1, 1, 1, 1, 1, 1};
  const std::vector<double> y = {0, 0, 0, 1, 0, 0, 1, 1, 1, 1};
  CHECK(kendall_tau_b(x, y) == doctest::Approx(10.0 / std::sqrt(600.0)).epsilon(1e-15));
}

TEST_CASE("kendall tau-b is symmetric in its arguments and flips sign with one side negated") {
  const std::vector<double> x = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3};
  const std::vector<double> y = {2, 7, 1, 8, 2, 8, 1, 8, 2, 8};
  std::vector<double> minus_y;
  for (double v : y) minus_y.push_back(-v);
  const double tau = kendall_tau_b(x, y);
  REQUIRE(std::isfinite(tau));
  CHECK(tau > -1.0);
  CHECK(tau < 1.0);
  CHECK(kendall_tau_b(y, x) == doctest::Approx(tau).epsilon(1e-15));
  CHECK(kendall_tau_b(x, minus_y) == doctest::Approx(-tau).epsilon(1e-15));
}

TEST_CASE("kendall tau-b is undefined when nothing can be ordered") {
  CHECK(std::isnan(kendall_tau_b({}, {})));
  CHECK(std::isnan(kendall_tau_b({1.0}, {2.0})));
  CHECK(std::isnan(kendall_tau_b({1, 2, 3}, {5, 5, 5})));  // y constant
  CHECK(std::isnan(kendall_tau_b({4, 4}, {1, 2})));        // x constant
  CHECK(std::isnan(kendall_tau_b({1, 2, 3}, {1, std::nan(""), 3})));
  CHECK_THROWS_AS(kendall_tau_b({1, 2, 3}, {1, 2}), std::invalid_argument);
}
