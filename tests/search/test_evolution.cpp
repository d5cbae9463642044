#include <doctest/doctest.h>

#include <cmath>
#include <set>
#include <string>

#include "search/benchmark_problems.hpp"

using namespace livs;
using namespace livs::search;

namespace {
using Point = std::vector<double>;

double zdt1_hypervolume_ratio(const std::vector<Individual<Point>>& population) {
  const auto problem = make_benchmark_problem("zdt1");
  const Point reference = {1.1, 1.1};
  return hypervolume(first_front(population), reference) / hypervolume(problem.true_front(10000), reference);
}
}  // namespace

TEST_CASE("SBX and polynomial mutation keep children inside the bounds and vary them") {
  const RealBounds bounds = {{0.0, -5.0, 0.0}, {1.0, 5.0, 1.0}};
  Rng rng(3);
  int changed = 0;
  for (int trial = 0; trial < 500; ++trial) {
    const Point a = {rng.uniform(), rng.uniform(-5, 5), rng.uniform()};
    const Point b = {rng.uniform(), rng.uniform(-5, 5), rng.uniform()};
    auto [c1, c2] = sbx_crossover(a, b, bounds, 20.0, rng);
    const auto m = polynomial_mutation(c1, bounds, 20.0, 1.0, rng);
    for (std::size_t i = 0; i < 3; ++i) {
      CHECK(c1[i] >= bounds.lower[i]);
      CHECK(c1[i] <= bounds.upper[i]);
      CHECK(c2[i] >= bounds.lower[i]);
      CHECK(c2[i] <= bounds.upper[i]);
      CHECK(m[i] >= bounds.lower[i]);
      CHECK(m[i] <= bounds.upper[i]);
      if (m[i] != c1[i]) ++changed;
    }
  }
  CHECK(changed > 1000);  // rate 1.0: nearly every variable moves

  // A huge distribution index keeps children next to their parents.
  for (int trial = 0; trial < 100; ++trial) {
    const Point a = {rng.uniform(), rng.uniform(-5, 5), rng.uniform()};
    const Point b = {rng.uniform(), rng.uniform(-5, 5), rng.uniform()};
    auto [c1, c2] = sbx_crossover(a, b, bounds, 1e4, rng);
    for (std::size_t i = 0; i < 3; ++i) {
      const double gap = std::abs(a[i] - b[i]);
      const double near = std::min(std::abs(c1[i] - a[i]), std::abs(c1[i] - b[i]));
      CHECK(near <= 0.01 * gap + 1e-12);
    }
  }
}

TEST_CASE("benchmark problems: analytic fronts and IGD") {
  for (const auto& name : benchmark_problem_names()) {
    CAPTURE(name);
    const auto problem = make_benchmark_problem(name);
    const auto front = problem.true_front(500);
    CHECK(front.size() > 50);
    CHECK(inverted_generational_distance(front, front) == 0.0);
    // The front is non-dominated.
    CHECK(pareto_front_indices(front, std::vector<double>(front.size(), 0.0)).size() == front.size());
  }
  // ZDT1 at x = (0.25, 0, ..., 0) lies on the front f2 = 1 - sqrt(f1).
  const auto zdt1 = make_benchmark_problem("zdt1");
  Point x(30, 0.0);
  x[0] = 0.25;
  CHECK(zdt1.evaluate(x) == Point{0.25, 0.5});
  // DTLZ2 with x[2..] = 0.5 is on the unit sphere.
  const auto dtlz2 = make_benchmark_problem("dtlz2");
  const auto f = dtlz2.evaluate(Point{0.3, 0.7, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5});
  CHECK(f[0] * f[0] + f[1] * f[1] + f[2] * f[2] == doctest::Approx(1.0));
  // IGD of a set shifted by (0.1, 0) from the reference is 0.1 per point.
  CHECK(inverted_generational_distance({{0.1, 1.0}, {1.1, 0.0}}, {{0.0, 1.0}, {1.0, 0.0}}) ==
        doctest::Approx(0.1));
  CHECK_THROWS_AS(make_benchmark_problem("zdt5"), std::invalid_argument);
}

TEST_CASE("a short NSGA-II run on ZDT1 approaches the true front") {
  // Population 40, 150 generations: a cut-down version of bench/zdt's protocol.
  const auto problem = make_benchmark_problem("zdt1");
  const Evolution<Point> nsga2(benchmark_settings(40, 149, 1), real_problem_callbacks(problem));
  std::vector<double> history;
  const auto final_population = nsga2.run([&](int, const std::vector<Individual<Point>>& population) {
    history.push_back(zdt1_hypervolume_ratio(population));
  });
  CHECK(final_population.size() == 40);
  REQUIRE(history.size() == 150);
  CHECK(history.back() > 0.90);
  // (mu+lambda) elitism: the front's hypervolume never decreases by more than
  // crowding truncation can lose (a small amount), and it grows overall.
  for (std::size_t g = 1; g < history.size(); ++g) CHECK(history[g] >= history[g - 1] - 0.01);
  CHECK(history.back() > history.front() + 0.5);

  // Random search with the same number of evaluations is far worse.
  auto settings = benchmark_settings(40, 149, 1);
  settings.algorithm = Algorithm::random;
  const Evolution<Point> random(settings, real_problem_callbacks(problem));
  CHECK(zdt1_hypervolume_ratio(random.run()) < history.back() - 0.5);
}

TEST_CASE("the same seed gives the same run, another seed another run") {
  const auto problem = make_benchmark_problem("zdt2");
  auto run = [&](uint64_t seed) {
    return Evolution<Point>(benchmark_settings(20, 20, seed), real_problem_callbacks(problem)).run();
  };
  const auto a = run(42), b = run(42), c = run(43);
  REQUIRE(a.size() == b.size());
  bool all_equal = true, differs = false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    all_equal = all_equal && a[i].genome == b[i].genome && a[i].fitness.minimised == b[i].fitness.minimised;
    differs = differs || a[i].genome != c[i].genome;
  }
  CHECK(all_equal);
  CHECK(differs);
}

TEST_CASE("a generation rebuilt from its parent population is the same (what resume relies on)") {
  const auto problem = make_benchmark_problem("zdt1", 6);
  const Evolution<Point> nsga2(benchmark_settings(12, 5, 9), real_problem_callbacks(problem));
  std::vector<std::vector<Individual<Point>>> populations;
  nsga2.run([&](int, const auto& population) { populations.push_back(population); });
  REQUIRE(populations.size() == 6);
  // Generation 4 bred again from the stored generation-3 survivors, after
  // unrelated random draws, gives the same offspring and the same survivors.
  const auto children = nsga2.make_offspring(populations[3], 4);
  const auto again = nsga2.make_offspring(populations[3], 4);
  REQUIRE(children.size() == again.size());
  for (std::size_t i = 0; i < children.size(); ++i) {
    CHECK(children[i].genome == again[i].genome);
    CHECK(children[i].parents == again[i].parents);
    CHECK(children[i].operator_name == again[i].operator_name);
  }
  const auto survivors = nsga2.survive(populations[3], nsga2.evaluate(children, 4));
  REQUIRE(survivors.size() == populations[4].size());
  for (std::size_t i = 0; i < survivors.size(); ++i) CHECK(survivors[i].genome == populations[4][i].genome);
}

TEST_CASE("survival keeps whole fronts and cuts the last by crowding") {
  // Identity-free toy problem: genomes are their own objective vectors.
  ProblemCallbacks<Point> problem;
  SearchSettings settings;
  settings.population = 4;
  const Evolution<Point> evolution(settings, problem);
  auto member = [](Point f, double violation = 0.0) { return Individual<Point>{f, {f, violation}}; };
  // Front 0: (0,4) (1,2) (2,1) (4,0) plus (1.1,1.9) crowded between (1,2) and (2,1);
  // a dominated (5,5) and an infeasible (0,0).
  const std::vector<Individual<Point>> parents = {member({5, 5}), member({0, 4}), member({1, 2})};
  const std::vector<Individual<Point>> children = {member({2, 1}), member({4, 0}), member({1.1, 1.9}),
                                                   member({0, 0}, 0.5)};
  const auto survivors = evolution.survive(parents, children);
  REQUIRE(survivors.size() == 4);
  std::set<Point> kept;
  for (const auto& s : survivors) kept.insert(s.genome);
  CHECK(kept.count({0, 4}) == 1);  // boundary points always stay
  CHECK(kept.count({4, 0}) == 1);
  CHECK(kept.count({5, 5}) == 0);
  CHECK(kept.count({0, 0}) == 0);      // infeasible loses to feasible
  CHECK(kept.count({1.1, 1.9}) == 0);  // the most crowded of the front is cut
  // Best first: the boundary points (infinite crowding) lead.
  CHECK(std::isinf(rank_and_crowding(survivors).crowding[0]));
}

TEST_CASE("aging evolution drops the oldest, duplicates are refused") {
  // Genomes are integers 0..N-1 as one-element vectors; identity de-duplicates.
  ProblemCallbacks<Point> problem;
  problem.sample = [](Rng& rng) { return Point{static_cast<double>(rng.integer(0, 999))}; };
  problem.mutate = [](const Point& x, Rng& rng) {
    return Point{std::fmod(x[0] + static_cast<double>(rng.integer(1, 5)), 1000.0)};
  };
  problem.crossover = [](const Point& a, const Point& b, Rng&) { return std::vector<Point>{a, b}; };
  problem.identity = [](const Point& x) { return std::to_string(static_cast<int>(x[0])); };
  int evaluations = 0;
  problem.evaluate = [&](const std::vector<Point>& genomes, int) {
    std::vector<Fitness> out;
    for (const auto& g : genomes) out.push_back({{g[0], 1000.0 - g[0] * 0.5}, 0.0});
    evaluations += static_cast<int>(genomes.size());
    return out;
  };
  SearchSettings settings;
  settings.algorithm = Algorithm::aging;
  settings.population = 8;
  settings.offspring = 3;
  settings.generations = 4;
  settings.aging_sample_size = 3;
  settings.seed = 5;
  const Evolution<Point> aging(settings, problem);
  std::vector<std::vector<Individual<Point>>> populations;
  aging.run([&](int, const auto& population) { populations.push_back(population); });
  CHECK(evaluations == 8 + 4 * 3);
  for (std::size_t g = 1; g < populations.size(); ++g) {
    REQUIRE(populations[g].size() == 8);
    // The 5 youngest of the previous population are the 5 oldest now.
    for (std::size_t i = 0; i < 5; ++i) CHECK(populations[g][i].genome == populations[g - 1][i + 3].genome);
    std::set<Point> distinct;
    for (const auto& m : populations[g]) distinct.insert(m.genome);
    CHECK(distinct.size() == 8);
  }

  // A space of only three genomes: the loop lets duplicates through instead of hanging.
  problem.sample = [](Rng& rng) { return Point{static_cast<double>(rng.integer(0, 2))}; };
  settings.algorithm = Algorithm::random;
  settings.population = 5;
  const Evolution<Point> tiny(settings, problem);
  CHECK(tiny.run().size() == 5);
}
