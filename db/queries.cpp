// The read side of the database, shared by Reader and Store.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <functional>
#include <map>

#include "common/input_error.hpp"
#include "db/connection.hpp"
#include "db/store.hpp"
#include "db/writer_lock.hpp"

namespace livs::db {

namespace {

// Seeds are decimal text (SQLite's integers are signed; seeds use all 64
// bits). A cell that is not one is a damaged file, said as such (stoull
// said only "stoull").
uint64_t parse_seed(const std::string& text) {
  if (text.empty()) return 0;
  uint64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size())
    throw std::runtime_error("seed '" + text + "' in the database is not an unsigned 64-bit integer");
  return value;
}

// Column lists and row readers kept side by side so they cannot drift apart.
constexpr const char* kRunColumns = "id, name, config, seed, status, tool_version, created_at, updated_at";

RunRecord read_run(const Statement& row, const std::string& file) {
  RunRecord run;
  run.id = row.int64(0);
  run.name = row.text(1);
  run.config = parse_json_text(row.text(2), file + " (config of run '" + run.name + "')");
  run.seed = parse_seed(row.text(3));
  run.status = parse_run_status(row.text(4));
  run.tool_version = row.text(5);
  run.created_at = row.text(6);
  run.updated_at = row.text(7);
  return run;
}

constexpr const char* kEvaluationColumns =
    "id, run_id, genome_hash, generation, fidelity, seed, status, device, error, started_at, "
    "finished_at, heartbeat_at, wall_seconds";

EvaluationRecord read_evaluation(const Statement& row) {
  EvaluationRecord e;
  e.id = row.int64(0);
  e.run_id = row.int64(1);
  e.genome_hash = row.text(2);
  e.generation = static_cast<int>(row.int64(3));
  e.fidelity = row.real(4);
  e.seed = parse_seed(row.text(5));
  e.status = parse_evaluation_status(row.text(6));
  e.device = row.text(7);
  e.error = row.text(8);
  e.started_at = row.text(9);
  e.finished_at = row.text(10);
  e.heartbeat_at = row.text(11);
  e.wall_seconds = row.is_null(12) ? 0.0 : row.real(12);
  return e;
}

// Runs an evaluation query (bound by `bind`) and attaches every row's metrics.
template <typename Bind>
std::vector<EvaluationRecord> load_evaluations(Connection& connection, const std::string& where, Bind bind) {
  // One snapshot for both statements, so a concurrent writer's commit cannot
  // fall between an evaluation and its metrics.
  Savepoint snapshot(connection);
  std::vector<EvaluationRecord> out;
  std::map<int64_t, std::size_t> index_of;
  {
    Statement query(connection, std::string("SELECT ") + kEvaluationColumns + " FROM evaluations WHERE " +
                                    where + " ORDER BY id");
    bind(query);
    while (query.step()) {
      out.push_back(read_evaluation(query));
      index_of[out.back().id] = out.size() - 1;
    }
  }
  if (out.empty()) return out;
  {
    Statement metrics(connection,
                      "SELECT m.evaluation_id, m.name, m.value, m.unit FROM metrics m "
                      "JOIN evaluations ON evaluations.id = m.evaluation_id WHERE " +
                          where);
    bind(metrics);
    while (metrics.step()) {
      auto it = index_of.find(metrics.int64(0));
      if (it == index_of.end()) continue;
      out[it->second].metrics[metrics.text(1)] = Metric{metrics.real(2), metrics.text(3)};
    }
  }
  snapshot.commit();
  return out;
}

}  // namespace

Queries::Queries(std::unique_ptr<WriterLock> lock, std::unique_ptr<Connection> connection)
    : writer_lock_(std::move(lock)), connection_(std::move(connection)) {}

Queries::~Queries() = default;

const std::string& Queries::path() const { return connection_->path(); }

int Queries::schema_version() const { return connection_->schema_version; }

std::vector<RunRecord> Queries::runs() const {
  Statement query(*connection_, std::string("SELECT ") + kRunColumns + " FROM runs ORDER BY id");
  std::vector<RunRecord> out;
  while (query.step()) out.push_back(read_run(query, path()));
  return out;
}

std::optional<RunRecord> Queries::run_by_name(const std::string& name) const {
  Statement query(*connection_, std::string("SELECT ") + kRunColumns + " FROM runs WHERE name = ?1");
  query.bind(1, name);
  if (!query.step()) return std::nullopt;
  return read_run(query, path());
}

std::optional<RunRecord> Queries::run_by_id(int64_t id) const {
  Statement query(*connection_, std::string("SELECT ") + kRunColumns + " FROM runs WHERE id = ?1");
  query.bind(1, id);
  if (!query.step()) return std::nullopt;
  return read_run(query, path());
}

RunRecord Queries::resolve_run(const std::string& name) const {
  if (!name.empty()) {
    if (auto run = run_by_name(name)) return *run;
    std::string known;
    for (const auto& r : runs()) known += (known.empty() ? "" : ", ") + r.name;
    throw InputError(path(), "",
                     "no run named '" + name + "' (runs: " + (known.empty() ? "none" : known) + ")");
  }
  Statement query(*connection_, std::string("SELECT ") + kRunColumns + " FROM runs ORDER BY id DESC LIMIT 1");
  if (!query.step()) throw InputError(path(), "", "the database holds no runs yet");
  return read_run(query, path());
}

std::optional<GenomeRecord> Queries::genome(const std::string& hash) const {
  Statement query(*connection_, "SELECT hash, genome, summary, first_seen_at FROM genomes WHERE hash = ?1");
  query.bind(1, hash);
  if (!query.step()) return std::nullopt;
  GenomeRecord g;
  g.hash = query.text(0);
  g.genome = parse_json_text(query.text(1), path() + " (genome " + g.hash + ")");
  g.summary = query.text(2);
  g.first_seen_at = query.text(3);
  return g;
}

GenomeRecord Queries::genome_by_prefix(const std::string& prefix) const {
  std::string lower = prefix;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  bool hex = !lower.empty() && std::all_of(lower.begin(), lower.end(), [](unsigned char c) {
    return std::isdigit(c) || (c >= 'a' && c <= 'f');
  });
  if (!hex || lower.size() < 4)
    throw InputError(path(), "",
                     "genome hash '" + prefix + "': expected at least 4 hexadecimal digits of a genome hash");
  Statement query(*connection_,
                  "SELECT hash FROM genomes WHERE substr(hash, 1, ?2) = ?1 ORDER BY hash LIMIT 6");
  query.bind(1, lower).bind(2, static_cast<int64_t>(lower.size()));
  std::vector<std::string> matches;
  while (query.step()) matches.push_back(query.text(0));
  if (matches.empty()) throw InputError(path(), "", "no genome with hash '" + prefix + "'");
  if (matches.size() > 1) {
    std::string list;
    for (std::size_t i = 0; i < matches.size() && i < 5; ++i) list += (i ? ", " : "") + matches[i];
    if (matches.size() > 5) list += ", ...";
    throw InputError(
        path(), "",
        "genome hash prefix '" + prefix + "' is ambiguous: it matches " + list + " (give more digits)");
  }
  return *genome(matches.front());
}

std::vector<EvaluationRecord> Queries::evaluations(int64_t run_id) const {
  return load_evaluations(*connection_, "evaluations.run_id = ?1", [&](Statement& s) { s.bind(1, run_id); });
}

std::vector<EvaluationRecord> Queries::evaluations_of_genome(const std::string& hash) const {
  return load_evaluations(*connection_, "evaluations.genome_hash = ?1",
                          [&](Statement& s) { s.bind(1, hash); });
}

std::optional<EvaluationRecord> Queries::evaluation(int64_t evaluation_id) const {
  auto found =
      load_evaluations(*connection_, "evaluations.id = ?1", [&](Statement& s) { s.bind(1, evaluation_id); });
  if (found.empty()) return std::nullopt;
  return found.front();
}

std::optional<EvaluationRecord> Queries::finished_evaluation(int64_t run_id, const std::string& hash,
                                                             double fidelity) const {
  // The latest finished one, should a failed evaluation ever be repeated.
  auto found = load_evaluations(
      *connection_,
      "evaluations.run_id = ?1 AND evaluations.genome_hash = ?2 AND evaluations.fidelity = ?3 AND "
      "evaluations.status IN ('ok', 'failed')",
      [&](Statement& s) { s.bind(1, run_id).bind(2, hash).bind(3, fidelity); });
  if (found.empty()) return std::nullopt;
  return found.back();
}

std::vector<EvaluationRecord> Queries::ok_evaluations_at(int64_t run_id, double fidelity) const {
  return load_evaluations(
      *connection_, "evaluations.run_id = ?1 AND evaluations.fidelity = ?2 AND evaluations.status = 'ok'",
      [&](Statement& s) { s.bind(1, run_id).bind(2, fidelity); });
}

std::vector<FidelityCounts> Queries::fidelities(int64_t run_id) const {
  // Seeds are counted distinct, so an evaluation repeated with the same seed
  // does not pass for another seed.
  Statement query(*connection_,
                  "WITH by_status AS ("
                  "  SELECT fidelity, sum(status = 'ok') AS ok, sum(status = 'failed') AS failed, "
                  "  sum(status = 'running') AS running, sum(status = 'interrupted') AS interrupted "
                  "  FROM evaluations WHERE run_id = ?1 GROUP BY fidelity), "
                  "per_genome AS ("
                  "  SELECT fidelity, count(DISTINCT seed) AS seeds FROM evaluations "
                  "  WHERE run_id = ?1 AND status = 'ok' GROUP BY fidelity, genome_hash), "
                  "spread AS ("
                  "  SELECT fidelity, count(*) AS genomes, min(seeds) AS fewest, max(seeds) AS most "
                  "  FROM per_genome GROUP BY fidelity) "
                  "SELECT b.fidelity, b.ok, b.failed, b.running, b.interrupted, coalesce(s.genomes, 0), "
                  "coalesce(s.fewest, 0), coalesce(s.most, 0) "
                  "FROM by_status b LEFT JOIN spread s ON s.fidelity = b.fidelity ORDER BY b.fidelity");
  query.bind(1, run_id);
  std::vector<FidelityCounts> out;
  while (query.step()) {
    FidelityCounts f;
    f.fidelity = query.real(0);
    f.evaluations.ok = query.int64(1);
    f.evaluations.failed = query.int64(2);
    f.evaluations.running = query.int64(3);
    f.evaluations.interrupted = query.int64(4);
    f.ok_genomes = query.int64(5);
    f.fewest_seeds = query.int64(6);
    f.most_seeds = query.int64(7);
    out.push_back(f);
  }
  return out;
}

EvaluationCounts Queries::evaluation_counts(int64_t run_id) const {
  Statement query(*connection_, "SELECT status, count(*) FROM evaluations WHERE run_id = ?1 GROUP BY status");
  query.bind(1, run_id);
  EvaluationCounts counts;
  while (query.step()) {
    int64_t n = query.int64(1);
    switch (parse_evaluation_status(query.text(0))) {
      case EvaluationStatus::ok:
        counts.ok = n;
        break;
      case EvaluationStatus::failed:
        counts.failed = n;
        break;
      case EvaluationStatus::running:
        counts.running = n;
        break;
      case EvaluationStatus::interrupted:
        counts.interrupted = n;
        break;
    }
  }
  return counts;
}

namespace {

std::vector<LineageRecord> load_lineage(Connection& connection, const std::string& where,
                                        const std::function<void(Statement&)>& bind) {
  Savepoint snapshot(connection);
  std::vector<LineageRecord> out;
  {
    Statement query(connection, "SELECT run_id, child_hash, generation, operator FROM lineage WHERE " +
                                    where + " ORDER BY run_id");
    bind(query);
    while (query.step()) {
      LineageRecord l;
      l.run_id = query.int64(0);
      l.child_hash = query.text(1);
      l.generation = static_cast<int>(query.int64(2));
      l.operator_name = query.text(3);
      out.push_back(std::move(l));
    }
  }
  for (auto& l : out) {
    Statement parents(connection,
                      "SELECT parent_hash FROM lineage_parents WHERE run_id = ?1 AND child_hash = ?2 "
                      "ORDER BY position");
    parents.bind(1, l.run_id).bind(2, l.child_hash);
    while (parents.step()) l.parent_hashes.push_back(parents.text(0));
  }
  snapshot.commit();
  return out;
}

}  // namespace

std::vector<LineageRecord> Queries::lineage(const std::string& child_hash) const {
  return load_lineage(*connection_, "child_hash = ?1", [&](Statement& s) { s.bind(1, child_hash); });
}

std::optional<LineageRecord> Queries::lineage(int64_t run_id, const std::string& child_hash) const {
  auto found = load_lineage(*connection_, "run_id = ?1 AND child_hash = ?2",
                            [&](Statement& s) { s.bind(1, run_id).bind(2, child_hash); });
  if (found.empty()) return std::nullopt;
  return found.front();
}

namespace {

std::vector<GenerationRecord> load_generations(Connection& connection, int64_t run_id,
                                               std::optional<int> only) {
  Savepoint snapshot(connection);
  std::vector<GenerationRecord> out;
  {
    Statement query(
        connection,
        "SELECT generation, hypervolume, hypervolume_reference, recorded_at, rejected, rejected_by "
        "FROM generations "
        "WHERE run_id = ?1 AND (?2 IS NULL OR generation = ?2) ORDER BY generation");
    query.bind(1, run_id);
    if (only)
      query.bind(2, *only);
    else
      query.bind_null(2);
    while (query.step()) {
      GenerationRecord g;
      g.generation = static_cast<int>(query.int64(0));
      g.hypervolume = query.real(1);
      g.hypervolume_reference =
          parse_json_text(query.text(2), connection.path() + " (hypervolume reference)");
      g.recorded_at = query.text(3);
      g.rejected = query.int64(4);
      g.rejected_by = parse_json_text(query.text(5), connection.path() + " (generations.rejected_by)");
      out.push_back(std::move(g));
    }
  }
  for (auto& g : out) {
    Statement members(connection,
                      "SELECT genome_hash, rank, crowding FROM population WHERE run_id = ?1 AND "
                      "generation = ?2 ORDER BY position");
    members.bind(1, run_id).bind(2, g.generation);
    while (members.step())
      g.population.push_back({members.text(0), static_cast<int>(members.int64(1)), members.real(2)});
  }
  snapshot.commit();
  return out;
}

}  // namespace

std::vector<GenerationRecord> Queries::generations(int64_t run_id) const {
  return load_generations(*connection_, run_id, std::nullopt);
}

std::optional<GenerationRecord> Queries::generation(int64_t run_id, int generation) const {
  auto found = load_generations(*connection_, run_id, generation);
  if (found.empty()) return std::nullopt;
  return found.front();
}

std::optional<int> Queries::latest_generation(int64_t run_id) const {
  Statement query(*connection_, "SELECT max(generation) FROM generations WHERE run_id = ?1");
  query.bind(1, run_id);
  if (!query.step() || query.is_null(0)) return std::nullopt;
  return static_cast<int>(query.int64(0));
}

std::vector<HypervolumePoint> Queries::hypervolume_history(int64_t run_id) const {
  Statement query(*connection_,
                  "SELECT generation, hypervolume FROM generations WHERE run_id = ?1 ORDER BY generation");
  query.bind(1, run_id);
  std::vector<HypervolumePoint> out;
  while (query.step()) out.push_back({static_cast<int>(query.int64(0)), query.real(1)});
  return out;
}

std::map<std::string, std::string> Queries::genome_labels(int64_t run_id) const {
  Statement query(*connection_, "SELECT genome_hash, label FROM genome_labels WHERE run_id = ?1");
  query.bind(1, run_id);
  std::map<std::string, std::string> out;
  while (query.step()) out[query.text(0)] = query.text(1);
  return out;
}

std::vector<GenomeLabel> Queries::labels_of_genome(const std::string& hash) const {
  Statement query(
      *connection_,
      "SELECT run_id, genome_hash, label FROM genome_labels WHERE genome_hash = ?1 ORDER BY run_id");
  query.bind(1, hash);
  std::vector<GenomeLabel> out;
  while (query.step()) out.push_back({query.int64(0), query.text(1), query.text(2)});
  return out;
}

}  // namespace livs::db
