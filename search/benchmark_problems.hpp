#pragma once
// Real-valued multi-objective test problems with known Pareto fronts (ZDT1-4,
// ZDT6 from Zitzler, Deb & Thiele 2000; DTLZ2 from Deb et al. 2002), the
// quality indicators used against them (IGD, hypervolume ratio) and NSGA-II
// set up for them with the paper's operators. They validate our NSGA-II loop:
// bench/zdt runs the full protocol, tests/search a short version.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "search/evolution.hpp"
#include "search/real_variation.hpp"

namespace livs::search {

struct BenchmarkProblem {
  std::string name;
  RealBounds bounds;
  int objectives = 2;
  std::function<std::vector<double>(const std::vector<double>&)> evaluate;
  // About `count` points of the analytic Pareto front, all non-dominated.
  std::function<std::vector<std::vector<double>>(std::size_t count)> true_front;
};

// "zdt1", "zdt2", "zdt3", "zdt4", "zdt6", "dtlz2"; `variables` 0 means the
// paper's size (30, 30, 30, 10, 10, 12). Throws std::invalid_argument on an unknown name.
BenchmarkProblem make_benchmark_problem(const std::string& name, int variables = 0);
const std::vector<std::string>& benchmark_problem_names();

// Inverted generational distance: mean distance from each reference point to
// its nearest point of `front`.
double inverted_generational_distance(const std::vector<std::vector<double>>& front,
                                      const std::vector<std::vector<double>>& reference_front);

// NSGA-II callbacks for a benchmark problem: uniform sampling, SBX with
// distribution index eta_c, polynomial mutation with eta_m at rate 1/n.
ProblemCallbacks<std::vector<double>> real_problem_callbacks(const BenchmarkProblem& problem,
                                                             double eta_c = 20.0, double eta_m = 20.0);

// The paper's NSGA-II settings for these problems: crossover 0.9, every child
// through polynomial mutation (whose per-variable rate is 1/n).
SearchSettings benchmark_settings(int population, int generations, uint64_t seed);

// The first front of a final population, as objective vectors.
std::vector<std::vector<double>> first_front(const std::vector<Individual<std::vector<double>>>& population);

}  // namespace livs::search
