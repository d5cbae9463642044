#include "search/pareto.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <pagmo/utils/hypervolume.hpp>
#include <pagmo/utils/multi_objective.hpp>
#include <stdexcept>

#include "common/format_number.hpp"

namespace livs::search {

std::string describe(const Constraint& c) {
  if (c.min && c.max) return format_number(*c.min) + " <= " + c.metric + " <= " + format_number(*c.max);
  if (c.max) return c.metric + " <= " + format_number(*c.max);
  if (c.min) return c.metric + " >= " + format_number(*c.min);
  return c.metric;
}

namespace {
constexpr double kInfinity = std::numeric_limits<double>::infinity();

// A bound of 0 cannot scale its excess; 1 keeps the excess in the metric's unit.
double bound_scale(double bound) { return std::abs(bound) < 1e-12 ? 1.0 : std::abs(bound); }
}  // namespace

std::vector<double> minimised_objectives(const Metrics& metrics, const std::vector<Objective>& objectives) {
  std::vector<double> out;
  out.reserve(objectives.size());
  for (const auto& objective : objectives) {
    const auto it = metrics.find(objective.name);
    if (it == metrics.end() || !std::isfinite(it->second)) {
      out.push_back(kInfinity);
      continue;
    }
    out.push_back(objective.direction == Direction::maximise ? -it->second : it->second);
  }
  return out;
}

double constraint_violation(const Metrics& metrics, const std::vector<Constraint>& constraints) {
  double violation = 0.0;
  for (const auto& constraint : constraints) {
    const auto it = metrics.find(constraint.metric);
    if (it == metrics.end() || !std::isfinite(it->second)) return kInfinity;
    const double value = it->second;
    if (constraint.max && value > *constraint.max)
      violation += (value - *constraint.max) / bound_scale(*constraint.max);
    if (constraint.min && value < *constraint.min)
      violation += (*constraint.min - value) / bound_scale(*constraint.min);
  }
  return violation;
}

bool pareto_dominates(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size())
    throw std::invalid_argument("pareto_dominates: objective vectors differ in length");
  bool strictly_better = false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i] > b[i]) return false;
    if (a[i] < b[i]) strictly_better = true;
  }
  return strictly_better;
}

bool constrained_dominates(const std::vector<double>& a_minimised, double a_violation,
                           const std::vector<double>& b_minimised, double b_violation) {
  const bool a_feasible = a_violation <= 0.0;
  const bool b_feasible = b_violation <= 0.0;
  if (a_feasible != b_feasible) return a_feasible;
  if (!a_feasible) return a_violation < b_violation;
  return pareto_dominates(a_minimised, b_minimised);
}

Ranking constrained_nondominated_sort(const std::vector<std::vector<double>>& minimised,
                                      const std::vector<double>& violation) {
  if (minimised.size() != violation.size())
    throw std::invalid_argument("constrained_nondominated_sort: objectives and violations differ in count");
  Ranking ranking;
  ranking.rank.assign(minimised.size(), 0);

  std::vector<std::size_t> feasible;
  std::vector<std::size_t> infeasible;
  for (std::size_t i = 0; i < minimised.size(); ++i)
    (violation[i] <= 0.0 ? feasible : infeasible).push_back(i);

  if (feasible.size() == 1) {
    ranking.fronts.push_back(feasible);
  } else if (feasible.size() > 1) {
    std::vector<std::vector<double>> points;
    points.reserve(feasible.size());
    for (auto i : feasible) points.push_back(minimised[i]);
    const auto sorted = pagmo::fast_non_dominated_sorting(points);
    for (const auto& pagmo_front : std::get<0>(sorted)) {
      std::vector<std::size_t> front;
      for (auto local : pagmo_front) front.push_back(feasible[local]);
      std::sort(front.begin(), front.end());  // a stable, platform-independent order within a front
      ranking.fronts.push_back(std::move(front));
    }
  }

  // Infeasible candidates: less violation dominates; equal violation ties.
  std::stable_sort(infeasible.begin(), infeasible.end(),
                   [&](std::size_t a, std::size_t b) { return violation[a] < violation[b]; });
  for (std::size_t k = 0; k < infeasible.size(); ++k) {
    if (k == 0 || violation[infeasible[k]] != violation[infeasible[k - 1]]) ranking.fronts.emplace_back();
    ranking.fronts.back().push_back(infeasible[k]);
  }

  for (std::size_t f = 0; f < ranking.fronts.size(); ++f)
    for (auto i : ranking.fronts[f]) ranking.rank[i] = f;
  return ranking;
}

std::vector<double> crowding_distance(const std::vector<std::vector<double>>& front_points) {
  const std::size_t n = front_points.size();
  if (n <= 2) return std::vector<double>(n, kInfinity);
  const std::size_t m = front_points[0].size();

  std::vector<std::size_t> informative;
  for (std::size_t j = 0; j < m; ++j) {
    double lo = kInfinity, hi = -kInfinity;
    bool finite = true;
    for (const auto& p : front_points) {
      if (!std::isfinite(p[j])) finite = false;
      lo = std::min(lo, p[j]);
      hi = std::max(hi, p[j]);
    }
    if (finite && hi > lo) informative.push_back(j);
  }
  if (informative.empty()) return std::vector<double>(n, 0.0);

  // pagmo needs at least two objectives; one informative objective is given
  // twice and the sum halved, which is exactly the one-objective distance.
  const bool duplicated = informative.size() == 1;
  if (duplicated) informative.push_back(informative[0]);
  std::vector<std::vector<double>> reduced(n);
  for (std::size_t i = 0; i < n; ++i)
    for (auto j : informative) reduced[i].push_back(front_points[i][j]);
  auto distance = pagmo::crowding_distance(reduced);
  if (duplicated)
    for (auto& d : distance) d *= 0.5;
  return distance;
}

std::vector<double> crowding_distances(const std::vector<std::vector<double>>& minimised,
                                       const Ranking& ranking) {
  std::vector<double> out(minimised.size(), 0.0);
  for (const auto& front : ranking.fronts) {
    std::vector<std::vector<double>> points;
    points.reserve(front.size());
    for (auto i : front) points.push_back(minimised[i]);
    const auto distance = crowding_distance(points);
    for (std::size_t k = 0; k < front.size(); ++k) out[front[k]] = distance[k];
  }
  return out;
}

std::vector<std::size_t> pareto_front_indices(const std::vector<std::vector<double>>& minimised,
                                              const std::vector<double>& violation) {
  const auto ranking = constrained_nondominated_sort(minimised, violation);
  if (ranking.fronts.empty()) return {};
  return ranking.fronts[0];
}

double hypervolume(const std::vector<std::vector<double>>& points, const std::vector<double>& reference) {
  std::vector<std::vector<double>> inside;
  for (const auto& p : points) {
    if (p.size() != reference.size())
      throw std::invalid_argument("hypervolume: point and reference point differ in dimension");
    bool dominates_reference = true;
    for (std::size_t j = 0; j < p.size(); ++j)
      if (!(p[j] < reference[j]) || !std::isfinite(p[j])) dominates_reference = false;
    if (dominates_reference) inside.push_back(p);
  }
  if (inside.empty()) return 0.0;
  if (reference.size() == 1) {
    double best = reference[0];
    for (const auto& p : inside) best = std::min(best, p[0]);
    return reference[0] - best;
  }
  return pagmo::hypervolume(inside, true).compute(reference);
}

double normalised_hypervolume(const std::vector<std::vector<double>>& points,
                              const std::vector<double>& ideal, const std::vector<double>& reference) {
  if (ideal.size() != reference.size())
    throw std::invalid_argument("normalised_hypervolume: ideal and reference point differ in dimension");
  for (std::size_t j = 0; j < ideal.size(); ++j)
    if (!(reference[j] > ideal[j]))
      throw std::invalid_argument("normalised_hypervolume: reference point must exceed the ideal point");
  std::vector<std::vector<double>> scaled;
  scaled.reserve(points.size());
  for (const auto& p : points) {
    if (p.size() != ideal.size())
      throw std::invalid_argument("normalised_hypervolume: point and reference point differ in dimension");
    std::vector<double> q(p.size());
    for (std::size_t j = 0; j < p.size(); ++j) q[j] = (p[j] - ideal[j]) / (reference[j] - ideal[j]);
    scaled.push_back(std::move(q));
  }
  return hypervolume(scaled, std::vector<double>(ideal.size(), 1.0));
}

}  // namespace livs::search
