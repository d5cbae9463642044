#pragma once
// The rows of a livsearch database as plain C++ values. The db module stores
// JSON (configs, genomes) as text and knows nothing of what is inside, so the
// search, the evaluator and the CLI can change their JSON without a migration.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/json_reader.hpp"

namespace livs::db {

// Written into every run row; the tool version that created the run.
inline constexpr std::string_view kToolVersion = "0.1.0";

enum class RunStatus { running, finished, interrupted };
// running: started and not finished; interrupted: the process died (or was
// stopped) while it ran, marked on resume so that it is evaluated again.
enum class EvaluationStatus { running, ok, failed, interrupted };

const char* to_string(RunStatus status);
const char* to_string(EvaluationStatus status);
// Throw std::runtime_error on an unknown name (only the database stores them).
RunStatus parse_run_status(std::string_view text);
EvaluationStatus parse_evaluation_status(std::string_view text);

struct RunRecord {
  int64_t id = 0;
  std::string name;
  Json config;  // the search config as given (objectives, constraints, ...)
  uint64_t seed = 0;
  RunStatus status = RunStatus::running;
  std::string tool_version;
  std::string created_at;  // ISO 8601 UTC, e.g. 2026-11-23T18:43:25.123Z
  std::string updated_at;
};

struct GenomeRecord {
  std::string hash;  // genome_hash: SHA-256 hex of the canonical JSON
  Json genome;       // canonical JSON
  std::string summary;
  std::string first_seen_at;
};

struct Metric {
  double value = 0.0;  // NaN is stored as NULL and read back as NaN
  std::string unit;    // "bytes", "ms", "count", "" when dimensionless
};
using Metrics = std::map<std::string, Metric>;

struct EvaluationStart {
  int64_t run_id = 0;
  std::string genome_hash;  // the genome must have been upserted first
  int generation = 0;
  double fidelity = 1.0;  // fraction of the training budget
  std::string device;
  uint64_t seed = 0;  // the evaluation's derived seed, recorded for reproduction
};

struct EvaluationOutcome {
  EvaluationStatus status = EvaluationStatus::ok;  // ok or failed
  Metrics metrics;
  std::string error;  // why it failed; empty when ok
  double wall_seconds = 0.0;
};

struct EvaluationRecord {
  int64_t id = 0;
  int64_t run_id = 0;
  std::string genome_hash;
  int generation = 0;
  double fidelity = 1.0;
  uint64_t seed = 0;
  EvaluationStatus status = EvaluationStatus::running;
  std::string device;
  std::string error;
  std::string started_at;
  std::string finished_at;   // empty while running
  std::string heartbeat_at;  // last sign of life
  double wall_seconds = 0.0;
  Metrics metrics;
};

struct PopulationMember {
  std::string genome_hash;
  int rank = 0;           // non-domination rank, 0 = first front
  double crowding = 0.0;  // may be +infinity (boundary points)
};

struct GenerationRecord {
  int generation = 0;
  double hypervolume = 0.0;
  Json hypervolume_reference;  // the reference point used (array), or null
  std::vector<PopulationMember> population;
  std::string recorded_at;
  // Genomes drawn for this generation and refused before any training because
  // an analytic metric (params, cache_bytes, ...) broke a constraint, in all
  // and per metric ({"params": 12, ...}).
  int64_t rejected = 0;
  Json rejected_by = Json::object();
};

// A name a run gives one of its genomes: the warm-start members carry the
// preset or file they came from ("preset transformer", "file winner.json").
struct GenomeLabel {
  int64_t run_id = 0;
  std::string genome_hash;
  std::string label;
};

struct LineageRecord {
  int64_t run_id = 0;
  std::string child_hash;
  int generation = 0;
  std::vector<std::string> parent_hashes;  // in order; empty for sampled genomes
  std::string operator_name;               // "sample", "mutate", "crossover+mutate", ...
};

struct HypervolumePoint {
  int generation = 0;
  double hypervolume = 0.0;
};

struct EvaluationCounts {
  int64_t ok = 0;
  int64_t failed = 0;
  int64_t running = 0;
  int64_t interrupted = 0;
  int64_t total() const { return ok + failed + running + interrupted; }
};

// What a run has at one fidelity: evaluations by status, and how the
// successful ones spread over genomes and seeds (the search trains a genome
// once at its fidelity; the final stage trains front members on S seeds).
struct FidelityCounts {
  double fidelity = 1.0;
  EvaluationCounts evaluations;
  int64_t ok_genomes = 0;    // genomes with at least one ok evaluation here
  int64_t fewest_seeds = 0;  // distinct seeds of ok evaluations, over those genomes
  int64_t most_seeds = 0;
};

}  // namespace livs::db
