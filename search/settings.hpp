#pragma once
// What a config asks of the search: the algorithm and its sizes, the
// objectives with their directions, the constraints and the hypervolume
// reference. Parsed from the config's "search", "objectives" and "constraints"
// keys (and the top-level "seed"); every error names file and JSON pointer.
//
//   "seed": 1,
//   "search": {"algorithm": "nsga2", "population": 16, "generations": 10,
//              "offspring": 16, "tournament_size": 2, "crossover_probability": 0.9,
//              "mutation_probability": 1.0, "aging_sample_size": 4, "max_evaluations": 0,
//              "fidelity": 1.0,                 (or "fidelities": [0.11, 0.33, 1.0], "eta": 3)
//              "max_train_seconds": 0, "candidate_timeout": 600,
//              "initial": ["transformer", "winner.json"],
//              "final": {"top": 8, "seeds": 3},
//              "hypervolume": {"reference": {"perplexity": 300, "params": 2e6},
//                              "ideal": {"perplexity": 1, "params": 0}}},
//   "objectives": ["perplexity", {"name": "params", "direction": "min"}],
//   "constraints": {"params": {"max": 2e6}}
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/json_reader.hpp"
#include "search/pareto.hpp"

namespace livs::search {

enum class Algorithm { nsga2, random, aging };
const char* to_string(Algorithm algorithm);

struct SearchSettings {
  Algorithm algorithm = Algorithm::nsga2;
  int population = 16;
  int generations = 10;  // generations after the initial population
  int offspring = 16;    // children per generation (default: the population size)
  int tournament_size = 2;
  double crossover_probability = 0.9;
  double mutation_probability = 1.0;  // probability that a child is mutated after crossover
  int aging_sample_size = 4;          // regularised evolution's tournament sample
  int64_t max_evaluations = 0;        // 0: no limit; else no generation starts beyond it
  // The share of the config's training budget each candidate is trained for
  // (EvalRequest::fidelity): a search can rank candidates on a cheaper budget
  // than `livsearch eval` trains a winner for.
  double fidelity = 1.0;
  // Rungs (successive halving, asynchronous as in ASHA): every new candidate
  // trains at fidelities[0]; one in the best 1/eta of its rung's results, by
  // constrained non-dominated rank and crowding, is promoted to the next
  // fidelity (search/rungs.hpp). Empty: one rung at `fidelity`.
  std::vector<double> fidelities;
  int eta = 3;
  // No evaluation of the search stage starts once its evaluations have taken
  // this many seconds together (wall_seconds summed, GPU-seconds with one
  // candidate per GPU); 0: no limit. The final stage comes after it.
  double max_train_seconds = 0.0;
  // Seconds one evaluation may run before it is cancelled and recorded as
  // failed with reason timeout (search/candidate_timeout.hpp); nullopt: the
  // default, learnt from the run's own evaluations; 0: no limit.
  std::optional<double> candidate_timeout;
  uint64_t seed = 0;

  // The rungs' fidelities, lowest first (one rung: `fidelity`).
  std::vector<double> rungs() const {
    return fidelities.empty() ? std::vector<double>{fidelity} : fidelities;
  }
  double top_fidelity() const { return rungs().back(); }

  // Warm start (Optuna's enqueue_trial): preset names and genome files, as
  // written; the CLI resolves them (files relative to the config, presets
  // sized by its model section) into the first members of generation 0.
  std::vector<std::string> initial;
  // The final stage: when the last generation ends, up to `final_top` members
  // of the front and every warm-start member are re-trained at fidelity 1.0
  // on `final_seeds` seeds, so the answer is a comparison with its spread.
  // Defaults: 8 finalists (a front of a 16-member population rarely holds
  // more that differ in a way a user acts on) and 3 seeds (the fewest that
  // give a spread; at byte-level perplexity the seed-to-seed spread is ~1%,
  // the size of the differences a front resolves). final_seeds 0: no stage.
  int final_top = 8;
  int final_seeds = 3;
  // "final": {"save_weights": true}: keep the trained weights of every
  // full-fidelity evaluation (so of every finalist's replicate, including the
  // replicate 0 a search at fidelity 1.0 trained itself) beside the database,
  // for `livsearch export --format pytorch`. The CLI acts on it; it changes
  // no result, so it is not part of a run's identity.
  bool final_save_weights = false;

  std::vector<Objective> objectives;
  std::vector<Constraint> constraints;

  // Hypervolume box in the objectives' own units and directions, one value
  // per objective (in objective order). A missing reference is derived from
  // the initial population and recorded; a missing ideal comes from the table
  // of known objectives or, failing that, from the initial population too.
  std::optional<std::vector<double>> hypervolume_reference;
  std::optional<std::vector<double>> hypervolume_ideal;
};

// The direction an objective has when a config names it without one
// (perplexity, loss, cache_bytes, params, flops, latencies, peak_memory: min;
// accuracy and *_accuracy: max). nullopt for an unknown name.
std::optional<Direction> default_direction(const std::string& objective_name);

// The best value an objective can take, when it is known (perplexity 1,
// accuracy 1, sizes and latencies 0).
std::optional<double> known_ideal(const std::string& objective_name);

SearchSettings parse_search_settings(const JsonReader& config_root);

}  // namespace livs::search
