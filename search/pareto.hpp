#pragma once
// Multi-objective bookkeeping shared by every search algorithm and by the
// read-only queries: objectives turned into minimisation vectors, constraint
// violation, Deb's constrained domination, non-dominated sorting, crowding
// distance and hypervolume. Sorting and hypervolume come from pagmo2; the
// constrained-domination layer (feasible first, then less violation) is ours,
// because pagmo's utilities know only unconstrained Pareto dominance.
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace livs::search {

enum class Direction { minimise, maximise };

struct Objective {
  std::string name;
  Direction direction = Direction::minimise;
};

// A bound on one metric; a candidate outside it is infeasible.
struct Constraint {
  std::string metric;
  std::optional<double> min;
  std::optional<double> max;
};

using Metrics = std::map<std::string, double>;

// "params <= 850000", "accuracy >= 0.5", "1 <= x <= 2".
std::string describe(const Constraint& constraint);

// The objective vector to minimise: maximised objectives are negated. A
// missing or non-finite metric becomes +infinity (the worst possible value),
// so a failed candidate can never look good.
std::vector<double> minimised_objectives(const Metrics& metrics, const std::vector<Objective>& objectives);

// Sum over constraints of the excess over each bound, normalised by the bound's
// magnitude (so `params <= 2e6` and `decode_ms <= 1.5` weigh alike); 0 means
// feasible. A missing or non-finite constrained metric is infinitely violating.
double constraint_violation(const Metrics& metrics, const std::vector<Constraint>& constraints);

// Plain Pareto dominance on minimisation vectors: a is no worse everywhere and
// better somewhere.
bool pareto_dominates(const std::vector<double>& a, const std::vector<double>& b);

// Deb 2002 constrained domination: a feasible candidate beats an infeasible one,
// of two infeasible ones the one with less violation wins, of two feasible ones
// Pareto dominance decides.
bool constrained_dominates(const std::vector<double>& a_minimised, double a_violation,
                           const std::vector<double>& b_minimised, double b_violation);

// Non-dominated sorting under constrained domination. fronts[0] is the best
// front; rank[i] is the index of the front that holds candidate i. Feasible
// candidates are sorted by pagmo's fast non-dominated sorting; infeasible ones
// follow, one front per distinct violation value, least violation first.
struct Ranking {
  std::vector<std::vector<std::size_t>> fronts;
  std::vector<std::size_t> rank;
};
Ranking constrained_nondominated_sort(const std::vector<std::vector<double>>& minimised,
                                      const std::vector<double>& violation);

// Crowding distance (Deb 2002) of the points of one front, in the front's order.
// Boundary points get +infinity. Objectives that are constant across the front
// or hold non-finite values carry no spacing information and are ignored.
std::vector<double> crowding_distance(const std::vector<std::vector<double>>& front_points);

// Crowding distance for every candidate, computed front by front.
std::vector<double> crowding_distances(const std::vector<std::vector<double>>& minimised,
                                       const Ranking& ranking);

// Indices of the constrained-non-dominated candidates (the first front), in
// increasing index order.
std::vector<std::size_t> pareto_front_indices(const std::vector<std::vector<double>>& minimised,
                                              const std::vector<double>& violation);

// Hypervolume dominated by `points` (minimisation) up to `reference`. Points
// that do not strictly dominate the reference contribute nothing and are
// skipped. Empty input gives 0.
double hypervolume(const std::vector<std::vector<double>>& points, const std::vector<double>& reference);

// Hypervolume after mapping each objective f to (f - ideal) / (reference - ideal),
// so the box between ideal and reference has volume 1 and values of runs with
// different units compare. Requires reference > ideal on every objective.
double normalised_hypervolume(const std::vector<std::vector<double>>& points,
                              const std::vector<double>& ideal, const std::vector<double>& reference);

}  // namespace livs::search
