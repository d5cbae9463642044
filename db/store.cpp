// Opening databases (Reader, Store) and the writer's operations.
#include "db/store.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <system_error>

#include "common/input_error.hpp"
#include "db/connection.hpp"
#include "db/schema.hpp"
#include "db/writer_lock.hpp"

namespace livs::db {

namespace {

std::unique_ptr<Connection> open_read_only(const std::string& path, int busy_timeout_ms) {
  std::error_code error;
  if (!std::filesystem::exists(path, error))
    throw InputError(path, "", "no such database file (create one with `livsearch search CONFIG --db FILE`)");
  if (std::filesystem::is_directory(path, error))
    throw InputError(path, "", "is a directory, expected a livsearch database file");
  auto connection = std::make_unique<Connection>(path, SQLITE_OPEN_READONLY, busy_timeout_ms);
  int version = check_database_file(*connection, current_schema_version());
  if (version == 0) throw InputError(path, "", "an empty file, not a livsearch database");
  if (version < current_schema_version())
    throw InputError(path, "",
                     "written by an older livsearch (schema version " + std::to_string(version) +
                         ", current " + std::to_string(current_schema_version()) +
                         "): resume its search once with this livsearch to migrate it");
  return connection;
}

// Problems with the path itself are the user's, and are reported before the
// writer lock file is created next to it.
void check_writable_path(const std::string& path) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error))
    throw InputError(path, "", "is a directory, expected a livsearch database file");
  auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty() && !std::filesystem::is_directory(parent, error))
    throw InputError(path, "", "the folder " + parent.string() + " does not exist");
  // SQLite would open a read-only file and fail at the first write, after
  // the run had started; say so before anything is touched.
  if (std::filesystem::exists(path, error) && ::access(path.c_str(), W_OK) != 0) {
    std::string why = "the database file is read-only (";
    why += std::strerror(errno);
    why += "); a search writes to it: make it writable, or query it with runs, status, pareto or show";
    throw InputError(path, "", why);
  }
}

std::unique_ptr<WriterLock> lock_for_writing(const std::string& path) {
  check_writable_path(path);
  return std::make_unique<WriterLock>(path);
}

std::unique_ptr<Connection> open_writable(const std::string& path, int busy_timeout_ms) {
  auto connection =
      std::make_unique<Connection>(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, busy_timeout_ms);
  check_database_file(*connection, current_schema_version());  // before touching a foreign file
  configure_writer(*connection);
  migrate(*connection, migrations());
  return connection;
}

std::string seed_text(uint64_t seed) { return std::to_string(seed); }

}  // namespace

Reader::Reader(const std::string& path, int busy_timeout_ms)
    : Queries(nullptr, open_read_only(path, busy_timeout_ms)) {}

Reader::Snapshot::Snapshot(Reader& reader) : reader_(reader) { reader_.connection_->exec("BEGIN"); }

Reader::Snapshot::~Snapshot() {
  // A read transaction has nothing to commit; ending it cannot lose anything.
  sqlite3_exec(reader_.connection_->handle(), "COMMIT", nullptr, nullptr, nullptr);
}

// The lock is taken before the file is opened (the argument is built first),
// so two writers never both migrate or write.
Store::Store(const std::string& path, int busy_timeout_ms)
    : Store(lock_for_writing(path), path, busy_timeout_ms) {}

Store::Store(std::unique_ptr<WriterLock> lock, const std::string& path, int busy_timeout_ms)
    : Queries(std::move(lock), open_writable(path, busy_timeout_ms)) {}

OpenedRun Store::create_or_open_run(const std::string& name, const Json& config, uint64_t seed) {
  Savepoint transaction(*connection_);
  if (auto existing = run_by_name(name)) {
    transaction.commit();
    return {*existing, false};
  }
  std::string now = utc_now_iso8601();
  Statement insert(*connection_,
                   "INSERT INTO runs (name, config, seed, status, tool_version, created_at, updated_at) "
                   "VALUES (?1, ?2, ?3, 'running', ?4, ?5, ?5)");
  insert.bind(1, name).bind(2, config.dump()).bind(3, seed_text(seed)).bind(4, kToolVersion).bind(5, now);
  insert.run();
  int64_t id = connection_->last_insert_rowid();
  transaction.commit();
  return {*run_by_id(id), true};
}

void Store::set_run_status(int64_t run_id, RunStatus status) {
  Statement update(*connection_, "UPDATE runs SET status = ?1, updated_at = ?2 WHERE id = ?3");
  update.bind(1, to_string(status)).bind(2, utc_now_iso8601()).bind(3, run_id);
  update.run();
  if (connection_->changes() != 1)
    throw std::invalid_argument("set_run_status: no run with id " + std::to_string(run_id));
}

void Store::upsert_genome(const std::string& hash, const Json& canonical_genome, const std::string& summary) {
  // A hash names one canonical JSON for ever; only the summary may be refined.
  Statement upsert(*connection_,
                   "INSERT INTO genomes (hash, genome, summary, first_seen_at) VALUES (?1, ?2, ?3, ?4) "
                   "ON CONFLICT (hash) DO UPDATE SET summary = excluded.summary");
  upsert.bind(1, hash).bind(2, canonical_genome.dump()).bind(3, summary).bind(4, utc_now_iso8601());
  upsert.run();
}

int64_t Store::begin_evaluation(const EvaluationStart& start) {
  std::string now = utc_now_iso8601();
  Statement insert(
      *connection_,
      "INSERT INTO evaluations (run_id, genome_hash, generation, fidelity, seed, status, device, "
      "started_at, heartbeat_at) VALUES (?1, ?2, ?3, ?4, ?5, 'running', ?6, ?7, ?7)");
  insert.bind(1, start.run_id)
      .bind(2, start.genome_hash)
      .bind(3, start.generation)
      .bind(4, start.fidelity)
      .bind(5, seed_text(start.seed))
      .bind(6, start.device)
      .bind(7, now);
  insert.run();
  return connection_->last_insert_rowid();
}

void Store::heartbeat(int64_t evaluation_id) {
  Statement update(*connection_,
                   "UPDATE evaluations SET heartbeat_at = ?1 WHERE id = ?2 AND status = 'running'");
  update.bind(1, utc_now_iso8601()).bind(2, evaluation_id);
  update.run();
}

void Store::finish_evaluation(int64_t evaluation_id, const EvaluationOutcome& outcome) {
  if (outcome.status != EvaluationStatus::ok && outcome.status != EvaluationStatus::failed)
    throw std::invalid_argument("finish_evaluation: status must be ok or failed, got " +
                                std::string(to_string(outcome.status)));
  Savepoint transaction(*connection_);
  std::string now = utc_now_iso8601();
  {
    Statement update(*connection_,
                     "UPDATE evaluations SET status = ?1, error = ?2, finished_at = ?3, heartbeat_at = ?3, "
                     "wall_seconds = ?4 WHERE id = ?5");
    update.bind(1, to_string(outcome.status))
        .bind(2, outcome.error)
        .bind(3, now)
        .bind(4, outcome.wall_seconds)
        .bind(5, evaluation_id);
    update.run();
    if (connection_->changes() != 1)
      throw std::invalid_argument("finish_evaluation: no evaluation with id " +
                                  std::to_string(evaluation_id));
  }
  {
    Statement clear(*connection_, "DELETE FROM metrics WHERE evaluation_id = ?1");
    clear.bind(1, evaluation_id);
    clear.run();
  }
  Statement insert(*connection_,
                   "INSERT INTO metrics (evaluation_id, name, value, unit) VALUES (?1, ?2, ?3, ?4)");
  for (const auto& [name, metric] : outcome.metrics) {
    insert.bind(1, evaluation_id).bind(2, name).bind(3, metric.value).bind(4, metric.unit);
    insert.run();
    insert.reset();
  }
  transaction.commit();
}

void Store::record_generation(int64_t run_id, const GenerationRecord& generation) {
  Savepoint transaction(*connection_);
  {
    // The population rows go with their generation (ON DELETE CASCADE).
    Statement clear(*connection_, "DELETE FROM generations WHERE run_id = ?1 AND generation = ?2");
    clear.bind(1, run_id).bind(2, generation.generation);
    clear.run();
  }
  {
    Statement insert(*connection_,
                     "INSERT INTO generations (run_id, generation, hypervolume, hypervolume_reference, "
                     "recorded_at, rejected, rejected_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    insert.bind(1, run_id)
        .bind(2, generation.generation)
        .bind(3, generation.hypervolume)
        .bind(4, generation.hypervolume_reference.dump())
        .bind(5, utc_now_iso8601())
        .bind(6, generation.rejected)
        .bind(7, generation.rejected_by.dump());
    insert.run();
  }
  Statement member(*connection_,
                   "INSERT INTO population (run_id, generation, position, genome_hash, rank, crowding) "
                   "VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
  for (std::size_t i = 0; i < generation.population.size(); ++i) {
    const auto& m = generation.population[i];
    member.bind(1, run_id)
        .bind(2, generation.generation)
        .bind(3, static_cast<int64_t>(i))
        .bind(4, m.genome_hash)
        .bind(5, m.rank)
        .bind(6, m.crowding);
    member.run();
    member.reset();
  }
  transaction.commit();
}

void Store::label_genome(int64_t run_id, const std::string& hash, const std::string& label) {
  Statement upsert(*connection_,
                   "INSERT INTO genome_labels (run_id, genome_hash, label) VALUES (?1, ?2, ?3) "
                   "ON CONFLICT (run_id, genome_hash) DO UPDATE SET label = excluded.label");
  upsert.bind(1, run_id).bind(2, hash).bind(3, label);
  upsert.run();
}

void Store::record_lineage(const LineageRecord& lineage) {
  Savepoint transaction(*connection_);
  {
    Statement clear(*connection_, "DELETE FROM lineage WHERE run_id = ?1 AND child_hash = ?2");
    clear.bind(1, lineage.run_id).bind(2, lineage.child_hash);
    clear.run();
  }
  {
    Statement insert(
        *connection_,
        "INSERT INTO lineage (run_id, child_hash, generation, operator) VALUES (?1, ?2, ?3, ?4)");
    insert.bind(1, lineage.run_id)
        .bind(2, lineage.child_hash)
        .bind(3, lineage.generation)
        .bind(4, lineage.operator_name);
    insert.run();
  }
  Statement parent(
      *connection_,
      "INSERT INTO lineage_parents (run_id, child_hash, position, parent_hash) VALUES (?1, ?2, ?3, ?4)");
  for (std::size_t i = 0; i < lineage.parent_hashes.size(); ++i) {
    parent.bind(1, lineage.run_id)
        .bind(2, lineage.child_hash)
        .bind(3, static_cast<int64_t>(i))
        .bind(4, lineage.parent_hashes[i]);
    parent.run();
    parent.reset();
  }
  transaction.commit();
}

int Store::mark_running_interrupted(int64_t run_id) {
  Statement update(*connection_,
                   "UPDATE evaluations SET status = 'interrupted', finished_at = ?1, "
                   "error = 'interrupted: the process stopped while this evaluation ran' "
                   "WHERE run_id = ?2 AND status = 'running'");
  update.bind(1, utc_now_iso8601()).bind(2, run_id);
  update.run();
  return connection_->changes();
}

Store::Transaction::Transaction(Store& store) : store_(store) {
  store_.connection_->exec("SAVEPOINT livs_user_transaction");
}

Store::Transaction::~Transaction() {
  if (done_) return;
  sqlite3_exec(store_.connection_->handle(),
               "ROLLBACK TO livs_user_transaction; RELEASE livs_user_transaction", nullptr, nullptr, nullptr);
}

void Store::Transaction::commit() {
  store_.connection_->exec("RELEASE livs_user_transaction");
  done_ = true;
}

}  // namespace livs::db
