#include "search/benchmark_problems.hpp"

#include <cmath>
#include <limits>
#include <numbers>
#include <stdexcept>

namespace livs::search {

namespace {
using Point = std::vector<double>;
constexpr double kPi = std::numbers::pi;

// Mean of x[1..n-1], the distance variables of the ZDT problems.
double tail_mean(const Point& x) {
  double sum = 0.0;
  for (std::size_t i = 1; i < x.size(); ++i) sum += x[i];
  return sum / static_cast<double>(x.size() - 1);
}

// A two-objective front f2 = shape(f1) sampled at `count` values of f1 in
// [lo, hi], keeping the non-dominated points (ZDT3's front is disconnected).
std::vector<Point> sample_2d_front(std::size_t count, double lo, double hi,
                                   const std::function<double(double)>& shape) {
  std::vector<Point> points;
  for (std::size_t i = 0; i < count; ++i) {
    const double f1 = lo + (hi - lo) * static_cast<double>(i) / static_cast<double>(count - 1);
    points.push_back({f1, shape(f1)});
  }
  // f1 increases along the list, so a point is non-dominated iff its f2 is
  // below every earlier point's.
  std::vector<Point> front;
  double best_f2 = std::numeric_limits<double>::infinity();
  for (const auto& p : points) {
    if (p[1] < best_f2) {
      front.push_back(p);
      best_f2 = p[1];
    }
  }
  return front;
}

BenchmarkProblem zdt(const std::string& name, int n) {
  BenchmarkProblem p;
  p.name = name;
  p.objectives = 2;
  p.bounds.lower.assign(static_cast<std::size_t>(n), 0.0);
  p.bounds.upper.assign(static_cast<std::size_t>(n), 1.0);
  const auto convex = [](double f1) { return 1.0 - std::sqrt(f1); };
  const auto concave = [](double f1) { return 1.0 - f1 * f1; };
  if (name == "zdt1") {
    p.evaluate = [](const Point& x) {
      const double g = 1.0 + 9.0 * tail_mean(x);
      return Point{x[0], g * (1.0 - std::sqrt(x[0] / g))};
    };
    p.true_front = [=](std::size_t count) { return sample_2d_front(count, 0.0, 1.0, convex); };
  } else if (name == "zdt2") {
    p.evaluate = [](const Point& x) {
      const double g = 1.0 + 9.0 * tail_mean(x);
      return Point{x[0], g * (1.0 - (x[0] / g) * (x[0] / g))};
    };
    p.true_front = [=](std::size_t count) { return sample_2d_front(count, 0.0, 1.0, concave); };
  } else if (name == "zdt3") {
    p.evaluate = [](const Point& x) {
      const double g = 1.0 + 9.0 * tail_mean(x);
      const double r = x[0] / g;
      return Point{x[0], g * (1.0 - std::sqrt(r) - r * std::sin(10.0 * kPi * x[0]))};
    };
    p.true_front = [](std::size_t count) {
      return sample_2d_front(count, 0.0, 1.0,
                             [](double f1) { return 1.0 - std::sqrt(f1) - f1 * std::sin(10.0 * kPi * f1); });
    };
  } else if (name == "zdt4") {
    for (int i = 1; i < n; ++i) {
      p.bounds.lower[static_cast<std::size_t>(i)] = -5.0;
      p.bounds.upper[static_cast<std::size_t>(i)] = 5.0;
    }
    p.evaluate = [](const Point& x) {
      double g = 1.0 + 10.0 * static_cast<double>(x.size() - 1);
      for (std::size_t i = 1; i < x.size(); ++i) g += x[i] * x[i] - 10.0 * std::cos(4.0 * kPi * x[i]);
      return Point{x[0], g * (1.0 - std::sqrt(x[0] / g))};
    };
    p.true_front = [=](std::size_t count) { return sample_2d_front(count, 0.0, 1.0, convex); };
  } else if (name == "zdt6") {
    p.evaluate = [](const Point& x) {
      const double f1 = 1.0 - std::exp(-4.0 * x[0]) * std::pow(std::sin(6.0 * kPi * x[0]), 6);
      const double g = 1.0 + 9.0 * std::pow(tail_mean(x), 0.25);
      return Point{f1, g * (1.0 - (f1 / g) * (f1 / g))};
    };
    // f1's smallest value on [0, 1] (at x1 = 0.0817...).
    p.true_front = [=](std::size_t count) { return sample_2d_front(count, 0.2807753191, 1.0, concave); };
  }
  return p;
}

// DTLZ2 with three objectives: the front is the positive octant of the unit
// sphere; its reference set is Das and Dennis's simplex lattice projected on it.
BenchmarkProblem dtlz2(int n) {
  BenchmarkProblem p;
  p.name = "dtlz2";
  p.objectives = 3;
  p.bounds.lower.assign(static_cast<std::size_t>(n), 0.0);
  p.bounds.upper.assign(static_cast<std::size_t>(n), 1.0);
  p.evaluate = [](const Point& x) {
    double g = 0.0;
    for (std::size_t i = 2; i < x.size(); ++i) g += (x[i] - 0.5) * (x[i] - 0.5);
    const double a = x[0] * kPi / 2.0, b = x[1] * kPi / 2.0;
    return Point{(1.0 + g) * std::cos(a) * std::cos(b), (1.0 + g) * std::cos(a) * std::sin(b),
                 (1.0 + g) * std::sin(a)};
  };
  p.true_front = [](std::size_t count) {
    // (H+1)(H+2)/2 lattice points; pick the H that gives about `count`.
    std::size_t h = 1;
    while ((h + 2) * (h + 3) / 2 <= count) ++h;
    std::vector<Point> front;
    for (std::size_t i = 0; i <= h; ++i) {
      for (std::size_t j = 0; i + j <= h; ++j) {
        Point w = {static_cast<double>(i), static_cast<double>(j), static_cast<double>(h - i - j)};
        const double norm = std::sqrt(w[0] * w[0] + w[1] * w[1] + w[2] * w[2]);
        for (auto& v : w) v /= norm;
        front.push_back(w);
      }
    }
    return front;
  };
  return p;
}
}  // namespace

const std::vector<std::string>& benchmark_problem_names() {
  static const std::vector<std::string> names = {"zdt1", "zdt2", "zdt3", "zdt4", "zdt6", "dtlz2"};
  return names;
}

BenchmarkProblem make_benchmark_problem(const std::string& name, int variables) {
  if (name == "zdt1" || name == "zdt2" || name == "zdt3") return zdt(name, variables > 0 ? variables : 30);
  if (name == "zdt4" || name == "zdt6") return zdt(name, variables > 0 ? variables : 10);
  if (name == "dtlz2") return dtlz2(variables > 0 ? variables : 12);
  throw std::invalid_argument("unknown benchmark problem '" + name + "'");
}

double inverted_generational_distance(const std::vector<std::vector<double>>& front,
                                      const std::vector<std::vector<double>>& reference_front) {
  if (front.empty() || reference_front.empty()) return std::numeric_limits<double>::infinity();
  double total = 0.0;
  for (const auto& r : reference_front) {
    double nearest = std::numeric_limits<double>::infinity();
    for (const auto& p : front) {
      double d2 = 0.0;
      for (std::size_t j = 0; j < r.size(); ++j) d2 += (p[j] - r[j]) * (p[j] - r[j]);
      nearest = std::min(nearest, d2);
    }
    total += std::sqrt(nearest);
  }
  return total / static_cast<double>(reference_front.size());
}

ProblemCallbacks<std::vector<double>> real_problem_callbacks(const BenchmarkProblem& problem, double eta_c,
                                                             double eta_m) {
  ProblemCallbacks<std::vector<double>> callbacks;
  const RealBounds bounds = problem.bounds;
  const double rate = 1.0 / static_cast<double>(bounds.lower.size());
  callbacks.sample = [bounds](Rng& rng) {
    Point x(bounds.lower.size());
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = rng.uniform(bounds.lower[i], bounds.upper[i]);
    return x;
  };
  callbacks.crossover = [bounds, eta_c](const Point& a, const Point& b, Rng& rng) {
    auto [c1, c2] = sbx_crossover(a, b, bounds, eta_c, rng);
    return std::vector<Point>{std::move(c1), std::move(c2)};
  };
  callbacks.mutate = [bounds, eta_m, rate](const Point& x, Rng& rng) {
    return polynomial_mutation(x, bounds, eta_m, rate, rng);
  };
  const auto objective = problem.evaluate;
  callbacks.evaluate = [objective](const std::vector<Point>& genomes, int) {
    std::vector<Fitness> out;
    out.reserve(genomes.size());
    for (const auto& x : genomes) out.push_back({objective(x), 0.0});
    return out;
  };
  return callbacks;
}

SearchSettings benchmark_settings(int population, int generations, uint64_t seed) {
  SearchSettings s;
  s.algorithm = Algorithm::nsga2;
  s.population = population;
  s.offspring = population;
  s.generations = generations;
  s.tournament_size = 2;
  s.crossover_probability = 0.9;
  s.mutation_probability = 1.0;
  s.seed = seed;
  return s;
}

std::vector<std::vector<double>> first_front(const std::vector<Individual<std::vector<double>>>& population) {
  std::vector<std::vector<double>> points;
  std::vector<double> violation;
  for (const auto& member : population) {
    points.push_back(member.fitness.minimised);
    violation.push_back(member.fitness.violation);
  }
  std::vector<std::vector<double>> front;
  for (auto i : pareto_front_indices(points, violation)) front.push_back(points[i]);
  return front;
}

}  // namespace livs::search
