#pragma once
// Everything a report shows, read from the database in one go (read-only:
// db::Reader, which a running search's WAL writer never waits for) before any
// HTML is written, so the page is one consistent picture of the run and the
// rendering code never touches SQLite.
//
// The front, the candidates per fidelity, the rank correlation between rungs
// and the rung counts are the same queries `pareto` and `status` answer
// (search/run_front.hpp, search/rung_statistics.hpp).
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/seed_summary.hpp"
#include "db/store.hpp"
#include "search/pareto.hpp"
#include "search/rung_statistics.hpp"

namespace livs::report {

// One genome at one fidelity, as the scatter plots draw it.
struct CandidatePoint {
  std::string hash;
  std::string label;    // the run's name for it ("preset lfm2"), "" when none
  std::string summary;  // genome summary line
  double fidelity = 1.0;
  int generation = 0;                          // of its first evaluation at this fidelity
  std::map<std::string, SeedSummary> metrics;  // over its seeds, finite values only
  double violation = 0.0;                      // 0: feasible
  bool on_front = false;                       // a member of the run's front (highest fidelity only)
  bool finalist = false;                       // re-trained by the final stage
};

// A front member as the table lists it, with what opening its row shows.
struct FrontRow {
  std::size_t point = 0;  // index into ReportData::points
  Json genome;            // canonical genome JSON (null when the genome row is missing)
  // Ancestry, nearest first: each ancestor's hash, the operator that made its
  // child, and its generation; breadth-first, at most kMaxAncestors.
  struct Ancestor {
    std::string hash, child_hash, operator_name, summary;
    int generation = 0;
    int depth = 1;  // 1: a parent
  };
  std::string operator_name;  // how this genome itself was made ("" when not recorded)
  std::vector<Ancestor> ancestors;
};

struct HypervolumeStep {
  int generation = 0;
  double hypervolume = 0.0;
  double evaluation_seconds = 0.0;  // summed evaluation time of generations <= this one
};

struct FailureGroup {
  std::string reason;  // the error text (first line)
  std::size_t count = 0;
  std::vector<std::string> hashes;  // of the first few failures
  std::vector<double> fidelities;   // distinct, lowest first
};

// How many operators of each LIV class a set of genomes holds, over all
// slots and per slot position.
struct Composition {
  std::size_t genomes = 0;
  std::map<std::string, std::size_t> by_class;
  std::vector<std::map<std::string, std::size_t>> by_slot;
};

struct ReportData {
  db::RunRecord run;
  std::string db_path;
  std::vector<search::Objective> objectives;
  std::vector<search::Constraint> constraints;
  std::map<std::string, std::string> units;  // metric -> unit as stored
  std::vector<double> rungs;                 // the config's fidelities (one: single fidelity)
  double front_fidelity = 0.0;               // the fidelity the front was computed at (0: none)
  std::vector<CandidatePoint> points;        // every candidate at every fidelity with an ok evaluation
  std::vector<FrontRow> front;               // best first on the first objective
  std::vector<HypervolumeStep> hypervolume;
  std::vector<search::RungCounts> rung_counts;        // empty for a single-fidelity search
  std::vector<search::RankStability> rank_stability;  // between consecutive fidelities
  std::vector<FailureGroup> failures;                 // most frequent first
  std::size_t failed_evaluations = 0;
  db::EvaluationCounts counts;
  std::optional<int> latest_generation;
  Composition front_composition, run_composition;
  std::vector<std::string> devices;  // distinct, in the order first seen
  double evaluation_seconds = 0.0;   // summed over every finished evaluation
  std::string first_started_at, last_finished_at;
  std::string tool_version;  // of the livsearch writing this report
};

inline constexpr std::size_t kMaxAncestors = 24;

// A candidate's mean of a metric over its seeds; NaN when it has none.
double mean_of(const CandidatePoint& point, const std::string& metric);
// The unit a metric was stored with ("" when unknown).
std::string unit_of(const ReportData& data, const std::string& metric);

// Reads the run (the named one, or the most recent when `run_name` is empty).
// InputError when the run does not exist or its config does not parse.
ReportData gather_report_data(const db::Queries& db, const std::string& run_name);

// The classes of a canonical genome's operators per slot ({"sa"}, {"sa",
// "gconv"} for a fusion slot); empty for JSON that is not a genome. Works on
// the JSON, so a class added later is shown by its name.
std::vector<std::vector<std::string>> slot_classes(const Json& genome);

}  // namespace livs::report
