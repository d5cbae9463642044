#pragma once
// Variation operators for real-valued genomes, as in Deb's NSGA-II reference
// code: simulated binary crossover (SBX, Deb & Agrawal 1995) and polynomial
// mutation, both bounded. Used by the ZDT/DTLZ benchmark and its tests.
#include <utility>
#include <vector>

#include "common/rng.hpp"

namespace livs::search {

struct RealBounds {
  std::vector<double> lower;
  std::vector<double> upper;
};

// Two children of two parents. Each variable is recombined with probability
// 0.5 (when the parents differ in it), with distribution index `eta`.
std::pair<std::vector<double>, std::vector<double>> sbx_crossover(const std::vector<double>& a,
                                                                  const std::vector<double>& b,
                                                                  const RealBounds& bounds, double eta,
                                                                  Rng& rng);

// Each variable mutated with probability `per_variable_probability`
// (1/n in the paper), with distribution index `eta`.
std::vector<double> polynomial_mutation(std::vector<double> x, const RealBounds& bounds, double eta,
                                        double per_variable_probability, Rng& rng);

}  // namespace livs::search
