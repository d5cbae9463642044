#include "db/schema.hpp"

#include <string>

#include "common/input_error.hpp"
#include "db/store.hpp"

namespace livs::db {

namespace {

// Version 1: the initial schema. Times are ISO 8601 UTC text; 64-bit unsigned
// seeds are decimal text (SQLite integers are signed); JSON is text; metrics
// live in a long table so any objective can be added without a migration.
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE runs (
  id           INTEGER PRIMARY KEY,
  name         TEXT NOT NULL UNIQUE,
  config       TEXT NOT NULL,
  seed         TEXT NOT NULL,
  status       TEXT NOT NULL CHECK (status IN ('running', 'finished', 'interrupted')),
  tool_version TEXT NOT NULL,
  created_at   TEXT NOT NULL,
  updated_at   TEXT NOT NULL
);
CREATE TABLE genomes (
  hash          TEXT PRIMARY KEY,
  genome        TEXT NOT NULL,
  summary       TEXT NOT NULL,
  first_seen_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE evaluations (
  id           INTEGER PRIMARY KEY,
  run_id       INTEGER NOT NULL REFERENCES runs(id),
  genome_hash  TEXT NOT NULL REFERENCES genomes(hash),
  generation   INTEGER NOT NULL,
  fidelity     REAL NOT NULL,
  seed         TEXT NOT NULL,
  status       TEXT NOT NULL CHECK (status IN ('running', 'ok', 'failed', 'interrupted')),
  device       TEXT NOT NULL,
  error        TEXT NOT NULL DEFAULT '',
  started_at   TEXT NOT NULL,
  finished_at  TEXT,
  heartbeat_at TEXT NOT NULL,
  wall_seconds REAL
);
CREATE INDEX evaluations_by_run ON evaluations(run_id, genome_hash, fidelity);
CREATE INDEX evaluations_by_genome ON evaluations(genome_hash);
CREATE TABLE metrics (
  evaluation_id INTEGER NOT NULL REFERENCES evaluations(id) ON DELETE CASCADE,
  name          TEXT NOT NULL,
  value         REAL,
  unit          TEXT NOT NULL,
  PRIMARY KEY (evaluation_id, name)
) WITHOUT ROWID;
CREATE TABLE generations (
  run_id                INTEGER NOT NULL REFERENCES runs(id),
  generation            INTEGER NOT NULL,
  hypervolume           REAL,
  hypervolume_reference TEXT NOT NULL,
  recorded_at           TEXT NOT NULL,
  PRIMARY KEY (run_id, generation)
) WITHOUT ROWID;
CREATE TABLE population (
  run_id      INTEGER NOT NULL,
  generation  INTEGER NOT NULL,
  position    INTEGER NOT NULL,
  genome_hash TEXT NOT NULL REFERENCES genomes(hash),
  rank        INTEGER NOT NULL,
  crowding    REAL,
  PRIMARY KEY (run_id, generation, position),
  FOREIGN KEY (run_id, generation) REFERENCES generations(run_id, generation) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE TABLE lineage (
  run_id     INTEGER NOT NULL REFERENCES runs(id),
  child_hash TEXT NOT NULL REFERENCES genomes(hash),
  generation INTEGER NOT NULL,
  operator   TEXT NOT NULL,
  PRIMARY KEY (run_id, child_hash)
) WITHOUT ROWID;
CREATE INDEX lineage_by_child ON lineage(child_hash);
CREATE TABLE lineage_parents (
  run_id      INTEGER NOT NULL,
  child_hash  TEXT NOT NULL,
  position    INTEGER NOT NULL,
  parent_hash TEXT NOT NULL,
  PRIMARY KEY (run_id, child_hash, position),
  FOREIGN KEY (run_id, child_hash) REFERENCES lineage(run_id, child_hash) ON DELETE CASCADE
) WITHOUT ROWID;
)sql";

// Version 2: what the search refuses before training (per generation) and the
// names of warm-start genomes (presets, files) within a run.
constexpr const char* kSchemaV2 = R"sql(
ALTER TABLE generations ADD COLUMN rejected INTEGER NOT NULL DEFAULT 0;
ALTER TABLE generations ADD COLUMN rejected_by TEXT NOT NULL DEFAULT '{}';
CREATE TABLE genome_labels (
  run_id      INTEGER NOT NULL REFERENCES runs(id),
  genome_hash TEXT NOT NULL REFERENCES genomes(hash),
  label       TEXT NOT NULL,
  PRIMARY KEY (run_id, genome_hash)
) WITHOUT ROWID;
CREATE INDEX genome_labels_by_genome ON genome_labels(genome_hash);
)sql";

int read_pragma_int(Connection& connection, const char* pragma) {
  Statement statement(connection, std::string("PRAGMA ") + pragma);
  return statement.step() ? static_cast<int>(statement.int64(0)) : 0;
}

}  // namespace

const std::vector<Migration>& migrations() {
  static const std::vector<Migration> list = {
      {1, "initial schema: runs, genomes, evaluations, metrics, generations, population, lineage", kSchemaV1},
      {2, "generations count genomes rejected before training; genome_labels name warm-start genomes",
       kSchemaV2},
  };
  return list;
}

int current_schema_version() { return migrations().back().to_version; }

int check_database_file(Connection& connection, int newest_known_version) {
  const std::string& file = connection.path();
  // The first reads are where SQLite looks at the file: SQLITE_NOTADB for any
  // other file, SQLITE_CORRUPT for a damaged schema (Connection::fail turns
  // both into InputErrors naming the file). Counting the schema's rows makes
  // SQLite parse it even when the header alone looks fine.
  int version = read_pragma_int(connection, "user_version");
  int application_id = read_pragma_int(connection, "application_id");
  int64_t schema_rows = 0;
  {
    Statement tables(connection, "SELECT count(*) FROM sqlite_schema");
    if (tables.step()) schema_rows = tables.int64(0);
  }
  if (application_id != 0 && application_id != kApplicationId)
    throw InputError(file, "",
                     "not a livsearch database (SQLite application_id " + std::to_string(application_id) +
                         ", expected " + std::to_string(kApplicationId) + ")");
  if (version > newest_known_version)
    throw InputError(file, "",
                     "written by a newer livsearch (schema version " + std::to_string(version) +
                         "; this livsearch knows versions up to " + std::to_string(newest_known_version) +
                         "): upgrade livsearch to open it");
  if (version > 0 && application_id != kApplicationId)
    throw InputError(file, "",
                     "not a livsearch database (user_version " + std::to_string(version) +
                         " but no livsearch application_id)");
  if (version == 0) {
    // An empty file is a new database; tables without our version mark belong
    // to someone else, and migrating would mix our schema into theirs.
    if (schema_rows > 0)
      throw InputError(file, "", "not a livsearch database (it has tables but no livsearch schema version)");
  }
  connection.schema_version = version;
  return version;
}

void configure_writer(Connection& connection) {
  Statement journal(connection, "PRAGMA journal_mode=WAL");
  std::string mode = journal.step() ? journal.text(0) : "";
  if (mode != "wal")
    throw DatabaseError(connection.path() + ": cannot switch to WAL journal mode (got '" + mode +
                        "'); is the file on a network file system?");
  connection.exec("PRAGMA foreign_keys=ON");
  connection.exec("PRAGMA synchronous=FULL");
}

void migrate(Connection& connection, const std::vector<Migration>& steps) {
  int newest = steps.empty() ? 0 : steps.back().to_version;
  int version = check_database_file(connection, newest);
  if (version == newest) return;
  // IMMEDIATE takes the write lock up front, so two processes that open a new
  // file at once cannot both migrate it.
  connection.exec("BEGIN IMMEDIATE");
  try {
    version = read_pragma_int(connection, "user_version");  // re-read under the lock
    for (const auto& step : steps) {
      if (step.to_version <= version) continue;
      connection.exec(step.sql);
      // PRAGMA takes no bound parameters; the numbers are our own constants.
      connection.exec("PRAGMA user_version=" + std::to_string(step.to_version));
      version = step.to_version;
    }
    connection.exec("PRAGMA application_id=" + std::to_string(kApplicationId));
    connection.exec("COMMIT");
  } catch (...) {
    sqlite3_exec(connection.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  connection.schema_version = version;
}

}  // namespace livs::db
