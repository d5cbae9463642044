#include "search/analytic_screen.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "common/format_number.hpp"

namespace livs::search {

namespace {

std::string number(double value) { return format_number(value); }

// How far a value is from meeting a constraint (0 when it meets it).
double shortfall(const Constraint& c, double value) {
  if (c.max && value > *c.max) return value - *c.max;
  if (c.min && value < *c.min) return *c.min - value;
  return 0.0;
}

}  // namespace

AnalyticScreen::AnalyticScreen(AnalyticFunction analytic, const std::vector<Constraint>& constraints,
                               int64_t max_params)
    : analytic_(std::move(analytic)), constraints_(constraints) {
  const bool already = std::any_of(constraints_.begin(), constraints_.end(), [&](const Constraint& c) {
    return c.metric == "params" && c.max && *c.max <= static_cast<double>(max_params);
  });
  if (max_params > 0 && !already) {
    Constraint limit;
    limit.metric = "params";
    limit.max = static_cast<double>(max_params);
    constraints_.push_back(limit);
  }
  ever_met_.assign(constraints_.size(), false);
  closest_.assign(constraints_.size(), std::numeric_limits<double>::quiet_NaN());
}

std::vector<std::string> AnalyticScreen::violations(const genome::Genome& genome) const {
  std::vector<std::string> out;
  if (!analytic_) return out;
  const Metrics metrics = analytic_(genome);
  for (const auto& c : constraints_) {
    const auto found = metrics.find(c.metric);
    if (found == metrics.end()) continue;
    if (std::isfinite(found->second) && shortfall(c, found->second) == 0.0) continue;  // as admits() judges
    const bool above = c.max && found->second > *c.max;
    out.push_back(c.metric + " " + number(found->second) +
                  (above ? " > " + number(*c.max) : " < " + number(*c.min)));
  }
  return out;
}

bool AnalyticScreen::admits(const genome::Genome& genome) {
  if (!analytic_ || constraints_.empty()) return true;
  const Metrics metrics = analytic_(genome);
  bool ok = true;
  std::map<std::string, bool> broken;  // one count per metric, however many constraints name it
  for (std::size_t i = 0; i < constraints_.size(); ++i) {
    const auto& c = constraints_[i];
    const auto found = metrics.find(c.metric);
    if (found == metrics.end()) continue;  // measured, not analytic: constrained domination decides
    const double value = found->second;
    const double miss = std::isfinite(value) ? shortfall(c, value) : std::numeric_limits<double>::infinity();
    if (miss == 0.0) {
      ever_met_[i] = true;
      continue;
    }
    if (std::isnan(closest_[i]) || miss < shortfall(c, closest_[i])) closest_[i] = value;
    broken[c.metric] = true;
    ok = false;
  }
  if (!ok) {
    ++rejected_;
    for (const auto& [metric, yes] : broken) rejected_by_[metric] += yes;
  }
  return ok;
}

void AnalyticScreen::reset_counts() {
  rejected_ = 0;
  rejected_by_.clear();
}

std::string AnalyticScreen::explain_no_admissible(std::size_t draws) const {
  std::string unmet, closest;
  for (std::size_t i = 0; i < constraints_.size(); ++i) {
    if (ever_met_[i] || std::isnan(closest_[i])) continue;
    const auto& c = constraints_[i];
    unmet += (unmet.empty() ? "" : " and ") + describe(c);
    const char* which = c.max && closest_[i] > *c.max ? "smallest" : "largest";
    closest += (closest.empty() ? "" : ", ") + std::string("the ") + which + " drawn had " + c.metric + " " +
               number(closest_[i]);
  }
  if (unmet.empty()) {
    // Every constraint was met by some genome, never all by one.
    for (const auto& c : constraints_) unmet += (unmet.empty() ? "" : " and ") + describe(c);
    return "no genome of this space has " + unmet + " after " + std::to_string(draws) +
           " draws (each constraint was met by some genome, never all by one)";
  }
  return "no genome of this space has " + unmet + " after " + std::to_string(draws) + " draws; " + closest;
}

}  // namespace livs::search
