#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "search/pareto.hpp"

using namespace livs::search;

namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();
}

TEST_CASE("minimised objectives negate maximised ones and punish missing metrics") {
  const std::vector<Objective> objectives = {{"perplexity", Direction::minimise},
                                             {"accuracy", Direction::maximise},
                                             {"params", Direction::minimise}};
  const auto v = minimised_objectives({{"perplexity", 12.5}, {"accuracy", 0.75}}, objectives);
  REQUIRE(v.size() == 3);
  CHECK(v[0] == 12.5);
  CHECK(v[1] == -0.75);
  CHECK(v[2] == kInf);
  CHECK(minimised_objectives({{"perplexity", std::nan("")}}, objectives)[0] == kInf);
}

TEST_CASE("constraint violation is the normalised excess summed over bounds") {
  const std::vector<Constraint> constraints = {{"params", std::nullopt, 2e6},
                                               {"accuracy", 0.5, std::nullopt}};
  CHECK(constraint_violation({{"params", 1e6}, {"accuracy", 0.9}}, constraints) == 0.0);
  CHECK(constraint_violation({{"params", 2e6}, {"accuracy", 0.5}}, constraints) == 0.0);  // bounds inclusive
  CHECK(constraint_violation({{"params", 3e6}, {"accuracy", 0.9}}, constraints) == doctest::Approx(0.5));
  CHECK(constraint_violation({{"params", 3e6}, {"accuracy", 0.25}}, constraints) == doctest::Approx(1.0));
  CHECK(constraint_violation({{"accuracy", 0.9}}, constraints) == kInf);
  // A bound at zero scales by one instead of dividing by zero.
  CHECK(constraint_violation({{"x", 0.25}}, {{"x", std::nullopt, 0.0}}) == doctest::Approx(0.25));
}

TEST_CASE("constrained domination follows Deb 2002") {
  const std::vector<double> good = {1.0, 1.0};
  const std::vector<double> bad = {2.0, 2.0};
  const std::vector<double> other = {0.5, 3.0};
  // Both feasible: Pareto dominance.
  CHECK(constrained_dominates(good, 0.0, bad, 0.0));
  CHECK_FALSE(constrained_dominates(bad, 0.0, good, 0.0));
  CHECK_FALSE(constrained_dominates(good, 0.0, other, 0.0));
  CHECK_FALSE(constrained_dominates(other, 0.0, good, 0.0));
  CHECK_FALSE(constrained_dominates(good, 0.0, good, 0.0));
  // Feasible beats infeasible whatever the objectives.
  CHECK(constrained_dominates(bad, 0.0, good, 0.1));
  CHECK_FALSE(constrained_dominates(good, 0.1, bad, 0.0));
  // Both infeasible: less violation wins, objectives do not matter.
  CHECK(constrained_dominates(bad, 0.1, good, 0.2));
  CHECK_FALSE(constrained_dominates(good, 0.2, bad, 0.1));
  CHECK_FALSE(constrained_dominates(good, 0.2, bad, 0.2));
}

TEST_CASE("non-dominated sorting of a hand-made set") {
  // Front 0: (1,4) (2,2) (4,1); front 1: (3,3) (2,5); front 2: (4,4);
  // (1,4) duplicated in index 6 is non-dominated too.
  const std::vector<std::vector<double>> points = {{1, 4}, {3, 3}, {2, 2}, {4, 4}, {4, 1}, {2, 5}, {1, 4}};
  const std::vector<double> violation(points.size(), 0.0);
  const auto ranking = constrained_nondominated_sort(points, violation);
  REQUIRE(ranking.fronts.size() == 3);
  CHECK(ranking.fronts[0] == std::vector<std::size_t>{0, 2, 4, 6});
  CHECK(ranking.fronts[1] == std::vector<std::size_t>{1, 5});
  CHECK(ranking.fronts[2] == std::vector<std::size_t>{3});
  CHECK(ranking.rank == std::vector<std::size_t>{0, 1, 0, 2, 0, 1, 0});
  CHECK(pareto_front_indices(points, violation) == std::vector<std::size_t>{0, 2, 4, 6});
}

TEST_CASE("infeasible candidates rank after feasible ones, by violation") {
  const std::vector<std::vector<double>> points = {{0, 0}, {5, 5}, {1, 1}, {6, 6}, {0.5, 9}};
  const std::vector<double> violation = {0.3, 0.0, 0.1, 0.0, 0.3};
  const auto ranking = constrained_nondominated_sort(points, violation);
  REQUIRE(ranking.fronts.size() == 4);
  CHECK(ranking.fronts[0] == std::vector<std::size_t>{1});
  CHECK(ranking.fronts[1] == std::vector<std::size_t>{3});
  CHECK(ranking.fronts[2] == std::vector<std::size_t>{2});
  CHECK(ranking.fronts[3] == std::vector<std::size_t>{0, 4});  // equal violation: a tie
  CHECK(pareto_front_indices(points, violation) == std::vector<std::size_t>{1});
  // No feasible candidate at all: the least violating ones form the front.
  CHECK(pareto_front_indices(points, {0.3, 0.2, 0.1, 0.4, 0.1}) == std::vector<std::size_t>{2, 4});
  CHECK(pareto_front_indices({}, {}).empty());
  CHECK(pareto_front_indices({{1, 1}}, {0.0}) == std::vector<std::size_t>{0});
}

TEST_CASE("crowding distance of a hand-made front") {
  // Sorted by f1: 0, 1, 3, 4 (f1 range 4); by f2: 4, 3, 1, 0 (f2 range 8).
  const std::vector<std::vector<double>> front = {{0, 8}, {1, 6}, {3, 2}, {4, 0}};
  const auto d = crowding_distance(front);
  REQUIRE(d.size() == 4);
  CHECK(d[0] == kInf);
  CHECK(d[3] == kInf);
  CHECK(d[1] == doctest::Approx((3.0 - 0.0) / 4 + (8.0 - 2.0) / 8));
  CHECK(d[2] == doctest::Approx((4.0 - 1.0) / 4 + (6.0 - 0.0) / 8));
  // Small fronts are all boundary.
  CHECK(crowding_distance({{1, 2}, {2, 1}}) == std::vector<double>{kInf, kInf});
  // A constant objective is ignored rather than dividing by zero.
  const auto flat = crowding_distance({{0, 5}, {1, 5}, {3, 5}, {4, 5}});
  CHECK(flat[1] == doctest::Approx(3.0 / 4));
  CHECK(flat[2] == doctest::Approx(3.0 / 4));
  CHECK(flat[0] == kInf);
  const auto same = crowding_distance({{1, 1}, {1, 1}, {1, 1}});
  CHECK(same == std::vector<double>{0.0, 0.0, 0.0});
}

TEST_CASE("crowding distances per front") {
  const std::vector<std::vector<double>> points = {{0, 8}, {1, 6}, {3, 2}, {4, 0}, {5, 9}};
  const std::vector<double> violation(points.size(), 0.0);
  const auto ranking = constrained_nondominated_sort(points, violation);
  const auto d = crowding_distances(points, ranking);
  CHECK(d[4] == kInf);  // alone in its front
  CHECK(d[1] == doctest::Approx(3.0 / 4 + 6.0 / 8));
}

TEST_CASE("hypervolume against hand-computed areas and volumes") {
  // Staircase: (1,3) (2,2) (3,1) with reference (4,4): 3 + 2 + 1 = 6.
  CHECK(hypervolume({{1, 3}, {2, 2}, {3, 1}}, {4, 4}) == doctest::Approx(6.0));
  // Dominated and outside points add nothing.
  CHECK(hypervolume({{1, 3}, {2, 2}, {3, 1}, {3, 3}, {5, 0}, {0, 4}}, {4, 4}) == doctest::Approx(6.0));
  CHECK(hypervolume({}, {4, 4}) == 0.0);
  CHECK(hypervolume({{4, 1}}, {4, 4}) == 0.0);
  // 3-D: a unit-cube corner point at the origin with reference 1 fills it.
  CHECK(hypervolume({{0, 0, 0}}, {1, 1, 1}) == doctest::Approx(1.0));
  // Two boxes 0.5x1x1 and 1x0.5x1 overlap in 0.5x0.5x1: 0.5 + 0.5 - 0.25.
  CHECK(hypervolume({{0.5, 0, 0}, {0, 0.5, 0}}, {1, 1, 1}) == doctest::Approx(0.75));
  CHECK(hypervolume({{2}, {3}}, {5}) == doctest::Approx(3.0));
  // Normalised: ideal (0,0), reference (10, 100); point (5, 50) covers a quarter.
  CHECK(normalised_hypervolume({{5, 50}}, {0, 0}, {10, 100}) == doctest::Approx(0.25));
}
