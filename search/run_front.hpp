#pragma once
// The Pareto front of a stored run, as `pareto`, `export --pareto`, `status`
// and `report` see it (read-only, from the database): the run's stored config gives objectives (with
// directions) and constraints, the database gives the candidates (every ok evaluation at one fidelity,
// db::Queries::ok_evaluations_at), each genome's seeds are averaged, and search/pareto.hpp's constrained
// domination picks the non-dominated ones.
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/seed_summary.hpp"
#include "db/store.hpp"
#include "search/pareto.hpp"

namespace livs::search {

struct RunGoals {
  std::vector<Objective> objectives;
  std::vector<Constraint> constraints;
  std::vector<double> rungs;  // the search's fidelities, lowest first (one: a single-fidelity search)
  int eta = 3;
};

// Objectives and constraints from a run's stored config; a config that does
// not parse is an InputError naming the database and the run.
RunGoals run_goals(const db::RunRecord& run, const std::string& db_path);

// The objectives named in a --objectives list ("a,b" or "a:max,b"): each must be
// one of the run's objectives, a known objective (default direction) or carry
// an explicit :min/:max. Empty list: the run's objectives.
std::vector<Objective> select_objectives(const RunGoals& goals, const std::string& list);

Metrics plain_metrics(const db::Metrics& metrics);

// One genome as a front query compares it: every ok evaluation it has at the
// chosen fidelity (one per seed), and each metric's mean and spread over them.
// Domination and constraints use the means.
struct Candidate {
  std::string hash;
  std::string label;                              // its name in the run ("preset lfm2"), "" when none
  std::vector<db::EvaluationRecord> evaluations;  // one per seed (the latest), in the order begun
  std::map<std::string, SeedSummary> metrics;     // over `evaluations`, finite values only
  std::map<std::string, std::string> units;       // as the evaluations stored them
  std::size_t seeds() const { return evaluations.size(); }
  const db::EvaluationRecord& latest() const;  // the most recently begun of them
  Metrics means() const;
};

// One genome's ok evaluations at one fidelity (in the order begun) as a
// Candidate: one evaluation per seed (a seed trained again is the same
// experiment, so the later one stands), metrics summarised over them.
Candidate candidate_of(const std::string& hash, std::vector<db::EvaluationRecord> ok_evaluations);

// A run's candidates at one fidelity: the highest at which it has successful
// evaluations, or the one asked for.
struct Candidates {
  double fidelity = 0.0;                       // 0 when the run has no ok evaluation at all
  std::vector<db::FidelityCounts> fidelities;  // those with ok evaluations, lowest first
  std::vector<Candidate> candidates;           // in the order first evaluated
};

// `fidelity` (from --fidelity) must match one at which the run has ok
// evaluations; otherwise an InputError that lists them.
Candidates load_candidates(const db::Queries& db, const db::RunRecord& run,
                           std::optional<double> fidelity = std::nullopt);

struct FrontMember {
  Candidate candidate;
  std::string summary;
  double violation = 0.0;  // 0: feasible
};

struct Front {
  db::RunRecord run;
  std::vector<Objective> objectives;
  std::vector<Constraint> constraints;
  double fidelity = 0.0;                       // the one compared at (0: none)
  std::vector<db::FidelityCounts> fidelities;  // every fidelity with ok evaluations
  std::size_t candidates = 0;                  // genomes compared
  std::size_t feasible = 0;                    // of which feasible
  bool feasible_only = false;
  std::vector<FrontMember> members;  // best first on the first objective
};

// The constrained non-dominated set of a run's candidates at one fidelity
// (default: the highest with ok evaluations). With feasible_only, infeasible
// candidates are dropped first (the front may then be empty). Objectives named
// in the list must have been recorded for some candidate.
Front compute_front(const db::Queries& db, const std::string& run_name, const std::string& objective_list,
                    bool feasible_only, std::optional<double> fidelity = std::nullopt);

// The --fidelity value: a positive number, nullopt when empty; InputError
// naming --fidelity otherwise.
std::optional<double> parse_fidelity_option(const std::string& text);

// Why a front is empty or holds only infeasible candidates, for stderr; empty
// when there is nothing to say.
std::string front_note(const Front& front);

}  // namespace livs::search
