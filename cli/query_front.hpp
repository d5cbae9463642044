#pragma once
// The CLI's names for the Pareto-front query of a stored run, which lives in
// search/run_front.hpp so that `livsearch report` (report/, which may not
// depend on cli/) reads the same front as `pareto`, `status` and `export`.
#include "cli/eval_summary.hpp"
#include "search/run_front.hpp"

namespace livs::cli {

using search::Candidate;
using search::candidate_of;
using search::Candidates;
using search::compute_front;
using search::Front;
using search::front_note;
using search::FrontMember;
using search::load_candidates;
using search::parse_fidelity_option;
using search::plain_metrics;
using search::run_goals;
using search::RunGoals;
using search::select_objectives;

}  // namespace livs::cli
