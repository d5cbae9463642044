#pragma once
// The Pareto front of a run, as `pareto`, `export --pareto` and `status` see
// it: the run's stored config gives objectives (with directions) and
// constraints, the database gives the candidates (db::Queries::front_candidates),
// search/pareto.hpp's constrained domination picks the non-dominated ones.
#include <string>
#include <vector>

#include "db/store.hpp"
#include "search/pareto.hpp"

namespace livs::cli {

struct RunGoals {
  std::vector<search::Objective> objectives;
  std::vector<search::Constraint> constraints;
};

// Objectives and constraints from a run's stored config; a config that does
// not parse is an InputError naming the database and the run.
RunGoals run_goals(const db::RunRecord& run, const std::string& db_path);

// The objectives named in a --objectives list ("a,b" or "a:max,b"): each must be
// one of the run's objectives, a known objective (default direction) or carry
// an explicit :min/:max. Empty list: the run's objectives.
std::vector<search::Objective> select_objectives(const RunGoals& goals, const std::string& list);

// "params <= 2e+06", "accuracy >= 0.5", "1 <= x <= 2".
std::string describe_constraint(const search::Constraint& constraint);

search::Metrics plain_metrics(const db::Metrics& metrics);

struct FrontMember {
  db::EvaluationRecord evaluation;
  std::string summary;
  double violation = 0.0;  // 0: feasible
};

struct Front {
  db::RunRecord run;
  std::vector<search::Objective> objectives;
  std::vector<search::Constraint> constraints;
  std::size_t candidates = 0;  // evaluations compared
  std::size_t feasible = 0;    // of which feasible
  bool feasible_only = false;
  std::vector<FrontMember> members;  // best first on the first objective
};

// The constrained non-dominated set of a run's candidates. With feasible_only,
// infeasible candidates are dropped first (the front may then be empty).
// Objectives named in the list must have been recorded for some candidate.
Front compute_front(const db::Queries& db, const std::string& run_name, const std::string& objective_list,
                    bool feasible_only);

// Why a front is empty or holds only infeasible candidates, for stderr; empty
// when there is nothing to say.
std::string front_note(const Front& front);

}  // namespace livs::cli
