#pragma once
// The evaluate contract: the only thing that crosses between the search and
// the evaluator. evaluate(request) -> result is a pure function of the request
// (which carries its own seed), and both sides are plain JSON so a request can
// run in-process, on another GPU or on another MPI rank.
#include <cstdint>
#include <map>
#include <string>

#include "common/json_reader.hpp"

namespace livs {

struct EvalRequest {
  Json genome;              // canonical genome JSON
  std::string genome_hash;  // its hash
  double fidelity = 1.0;    // fraction of the training budget
  uint64_t seed = 0;        // derived from the run seed by the search
  Json settings;            // the config's evaluation settings: data, training, objectives, ...
  std::string device = "cpu";
};

enum class EvalStatus { ok, failed };

struct EvalResult {
  EvalStatus status = EvalStatus::ok;
  std::map<std::string, double> metrics;  // objective name -> value
  std::string error;                      // why it failed (non-finite loss, out of memory, ...)
  std::string device;
  double wall_seconds = 0.0;
  // Where wall_seconds went, by phase (proxies::evaluate: setup, build,
  // training, validation, checks, tasks), for benchmarks and logs; not
  // objectives, not stored in the database.
  std::map<std::string, double> phase_seconds;
};

// A failed evaluation: its reason, where it ran and how long it took.
EvalResult failed_evaluation(std::string why, std::string device, double seconds = 0.0);

Json to_json(const EvalRequest& request);
EvalRequest eval_request_from_json(const Json& json);
Json to_json(const EvalResult& result);
EvalResult eval_result_from_json(const Json& json);
const char* to_string(EvalStatus status);

// The training seed of replicate `replicate` (0, 1, ...) of a genome in a run
// (or in `livsearch eval`, whose run seed is the config's): a pure function of
// its inputs, so a resumed run, a final stage and `eval` train a genome the
// same way. Replicate 0 is the seed the search itself trains with, so the
// final stage's first seed reuses a full-budget search evaluation.
uint64_t evaluation_seed(uint64_t run_seed, const std::string& genome_hash, int replicate = 0);

}  // namespace livs
