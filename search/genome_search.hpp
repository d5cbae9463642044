#pragma once
// The architecture search: the generational loop of search/evolution.hpp over
// genomes, with every genome, evaluation, population, lineage record and
// hypervolume written to the database, and resume after a stop or a crash.
//
// The driver wires the rooms of search/ to the database: the strategy
// (evolution.hpp: which genomes), the analytic screen (analytic_screen.hpp:
// which genomes may be trained at all), the executor (executor.hpp: where
// evaluations run), the ledger (evaluation_ledger.hpp: what is paid for) and
// the final stage (final_stage.hpp: finalists re-trained over seeds).
//
// Why a resumed run ends where an uninterrupted one would: the offspring of
// generation g depend only on Rng(derive_seed(seed, g)) and the survivors of
// generation g-1, which are recorded; every evaluation's seed is
// evaluation_seed(run seed, genome hash, replicate); a (hash, fidelity, seed)
// already evaluated in the run is read back, never re-run. So after a SIGKILL
// the loop reloads the last recorded population, breeds the same offspring
// again, reuses those whose evaluation had finished and re-runs only the
// interrupted ones; a killed final stage recomputes the same finalists from
// the last generation and trains only the replicates still missing.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/evaluate_contract.hpp"
#include "common/rng.hpp"
#include "db/store.hpp"
#include "genome/genome.hpp"
#include "genome/search_space.hpp"
#include "search/analytic_screen.hpp"
#include "search/evolution.hpp"
#include "search/executor.hpp"
#include "search/settings.hpp"

namespace livs::search {

// The variation operators the genome module provides for a search space;
// each returns a valid (repaired) genome.
struct GenomeOperators {
  std::function<genome::Genome(Rng&)> sample;
  std::function<genome::Genome(const genome::Genome&, Rng&)> mutate;
  std::function<std::vector<genome::Genome>(const genome::Genome&, const genome::Genome&, Rng&)> crossover;
};

// The genome module's operators over one search space.
GenomeOperators genome_operators(const genome::SearchSpace& space);

// A warm-start member: a genome the user already builds, named.
struct WarmStart {
  std::string label;  // "preset transformer", "file winner.json"
  genome::Genome genome;
};

struct GenomeSearchOptions {
  std::string run_name;
  std::string config_path;     // for error messages
  Json config;                 // stored with the run; a resumed run must be given the same
  Json eval_settings;          // EvalRequest::settings: data, training, objectives, ...
  std::string device = "cpu";  // recorded with the run (and each request's device when `lanes` is empty)
  int workers = 1;             // evaluations in flight at once (the evaluate function must be thread-safe)
  // Where evaluations run (several GPUs, MPI ranks); empty: `workers` lanes on `device`.
  std::vector<Lane> lanes;
  bool resume = false;  // continue the run of that name; without it an existing run is an error
  double heartbeat_seconds = 15.0;
  double abandon_grace_seconds = -1.0;          // ExecutorOptions::abandon_grace_seconds
  std::shared_ptr<const FaultPlan> faults;      // tests only (LIVSEARCH_FAULT_INJECT); may be empty
  std::function<void(const std::string&)> log;  // progress lines; may be empty
  // Called once the run is created or found fit to resume, before any work:
  // a run refused (already there, another config) prints nothing but its error.
  std::function<void()> on_run_opened;
  // Polled between evaluations (e.g. set by SIGINT): when true, no new
  // evaluation starts, those in flight finish and are stored, the run is
  // marked interrupted and run_genome_search returns with `stopped`.
  std::function<bool()> stop_requested;
  // The analytic metrics of a genome (params, cache_bytes, flops per token),
  // known before training; constraints on them are met by construction.
  // Empty: nothing is screened.
  AnalyticFunction analytic;
  int64_t max_params = 0;  // the search space's own limit (0: none), screened like a constraint
  // The first members of generation 0 (SearchSettings::initial, resolved).
  std::vector<WarmStart> warm_start;
};

struct GenomeSearchResult {
  int64_t run_id = 0;
  int last_generation = -1;  // the last generation recorded
  std::vector<Individual<genome::Genome>> population;
  double hypervolume = 0.0;
  int evaluations_run = 0;     // in this process
  int evaluations_reused = 0;  // found finished in the database (resume) or earlier in the run
  int64_t rejected = 0;        // genomes refused before training, in the generations this process bred
  bool finished =
      false;  // every generation and the final stage done (false when stopped by stop_after_generation)
  bool stopped = false;                  // stop_requested() ended it early
  std::vector<std::string> finalists;    // the final stage's genomes (hashes), when it ran
  std::vector<std::string> final_table;  // its result as text lines
};

// Runs (or resumes) the search to the end, or until `stop_after_generation`
// (>= 0) has been recorded, which is how tests stop a run halfway.
GenomeSearchResult run_genome_search(const SearchSettings& settings, const GenomeOperators& operators,
                                     const EvaluateFunction& evaluate, db::Store& store,
                                     const GenomeSearchOptions& options, int stop_after_generation = -1);

// The final stage alone, for a run that ended without it (`livsearch
// finalize`): the run must exist and have a recorded generation; its
// finalists are re-trained with settings.final_top and final_seeds.
GenomeSearchResult finalize_run(const SearchSettings& settings, const EvaluateFunction& evaluate,
                                db::Store& store, const GenomeSearchOptions& options);

// The hypervolume box in minimisation space: the configured reference and
// ideal where given, else the known ideal of the objective, else values
// derived from `initial` (the generation-0 population): its best value as
// ideal, its worst plus 10% of the range as reference.
struct HypervolumeBox {
  std::vector<double> ideal;
  std::vector<double> reference;
};
HypervolumeBox hypervolume_box(const SearchSettings& settings,
                               const std::vector<std::vector<double>>& initial);

// Normalised hypervolume of the first front of a population (feasible members
// only; 0 when none is feasible).
double population_hypervolume(const std::vector<Fitness>& population, const HypervolumeBox& box);

}  // namespace livs::search
