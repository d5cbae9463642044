#pragma once
// The livsearch database: SQLite in WAL mode, one writer, any number of readers.
//
//   Store  - the one writer (the search). Opens read-write, creates the file
//            and migrates its schema forward. Also answers every query, so the
//            search can reload its state on resume.
//   Reader - read-only (SQLITE_OPEN_READONLY) with a busy timeout, for the
//            query commands; it works while a Store is writing (WAL readers
//            never block on the writer).
//
// Every value is bound (sqlite3_bind_*), never pasted into SQL. Multi-row
// writes run in one transaction. Problems with the file itself (not a SQLite
// database, not a livsearch database, written by a newer livsearch, missing)
// are livs::InputError naming the file; failures of SQLite itself (disk full,
// locked for longer than the busy timeout) are livs::db::DatabaseError.
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "db/records.hpp"

namespace livs::db {

class Connection;  // db/connection.hpp
class WriterLock;  // db/writer_lock.hpp

class DatabaseError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The read side, shared by Reader and Store.
class Queries {
 public:
  virtual ~Queries();
  Queries(const Queries&) = delete;
  Queries& operator=(const Queries&) = delete;

  const std::string& path() const;
  int schema_version() const;

  std::vector<RunRecord> runs() const;  // oldest first
  std::optional<RunRecord> run_by_name(const std::string& name) const;
  std::optional<RunRecord> run_by_id(int64_t id) const;
  // The run a query command means: the named one, or the only/most recent run
  // when `name` is empty. InputError naming the database when there is none.
  RunRecord resolve_run(const std::string& name) const;

  std::optional<GenomeRecord> genome(const std::string& hash) const;
  // Exact hash or a unique prefix (at least 4 hex digits); InputError when the
  // prefix matches nothing or several genomes (the message lists them).
  GenomeRecord genome_by_prefix(const std::string& prefix) const;

  // All evaluations of a run, with metrics, in the order they were begun.
  std::vector<EvaluationRecord> evaluations(int64_t run_id) const;
  // Evaluations of one genome in every run (for `show`).
  std::vector<EvaluationRecord> evaluations_of_genome(const std::string& hash) const;
  std::optional<EvaluationRecord> evaluation(int64_t evaluation_id) const;
  // The finished (ok or failed) evaluation of (hash, fidelity) in a run, if
  // any: the search never pays twice for one hash at one fidelity.
  std::optional<EvaluationRecord> finished_evaluation(int64_t run_id, const std::string& hash,
                                                      double fidelity) const;
  EvaluationCounts evaluation_counts(int64_t run_id) const;
  // What a Pareto query compares: every ok evaluation of a run at one fidelity
  // (numbers from different fidelities are not comparable), all seeds of each
  // genome, in the order they were begun. `fidelity` is matched exactly: take
  // it from fidelities().
  std::vector<EvaluationRecord> ok_evaluations_at(int64_t run_id, double fidelity) const;
  // The fidelities a run has evaluations at, lowest first, with counts.
  std::vector<FidelityCounts> fidelities(int64_t run_id) const;

  // How a genome came to be, in every run that produced it.
  std::vector<LineageRecord> lineage(const std::string& child_hash) const;
  std::optional<LineageRecord> lineage(int64_t run_id, const std::string& child_hash) const;

  // Recorded generations of a run, oldest first, with their populations.
  std::vector<GenerationRecord> generations(int64_t run_id) const;
  std::optional<GenerationRecord> generation(int64_t run_id, int generation) const;
  std::optional<int> latest_generation(int64_t run_id) const;  // none recorded yet: nullopt
  std::vector<HypervolumePoint> hypervolume_history(int64_t run_id) const;

  // The names a run gives its genomes (hash -> label), and every name a genome
  // carries in any run.
  std::map<std::string, std::string> genome_labels(int64_t run_id) const;
  std::vector<GenomeLabel> labels_of_genome(const std::string& hash) const;

 protected:
  Queries(std::unique_ptr<WriterLock> lock, std::unique_ptr<Connection> connection);
  // Declared first so it is released last, after the connection has closed.
  std::unique_ptr<WriterLock> writer_lock_;
  std::unique_ptr<Connection> connection_;
};

class Reader : public Queries {
 public:
  // InputError when the file does not exist, is not a SQLite or not a
  // livsearch database, or has a schema this tool does not know.
  explicit Reader(const std::string& path, int busy_timeout_ms = 10000);

  // One read transaction for as long as it lives: every query sees the
  // database as it was at the first one, however much a writer commits
  // meanwhile (WAL readers work from a snapshot and never block the writer).
  // For a command that reads many tables and must show one consistent state
  // (`report`); keep it short, as a checkpoint cannot pass an open snapshot.
  class Snapshot {
   public:
    explicit Snapshot(Reader& reader);
    ~Snapshot();
    Snapshot(const Snapshot&) = delete;
    Snapshot& operator=(const Snapshot&) = delete;

   private:
    Reader& reader_;
  };
};

struct OpenedRun {
  RunRecord run;
  bool created = false;  // false: a run of that name already existed (resume)
};

class Store : public Queries {
 public:
  // Creates the file when missing and migrates its schema to the current
  // version. Only one Store per file at a time (the one-writer rule, enforced
  // by db/writer_lock.hpp): a second one throws InputError.
  explicit Store(const std::string& path, int busy_timeout_ms = 10000);

  // Create the run, or return the existing run of that name unchanged.
  OpenedRun create_or_open_run(const std::string& name, const Json& config, uint64_t seed);
  void set_run_status(int64_t run_id, RunStatus status);

  // Insert the genome, or update the summary of an existing hash.
  void upsert_genome(const std::string& hash, const Json& canonical_genome, const std::string& summary);

  // Inserts a "running" evaluation stamped with the start and heartbeat time.
  int64_t begin_evaluation(const EvaluationStart& start);
  void heartbeat(int64_t evaluation_id);
  // Writes the outcome and its metrics in one transaction. The status must be
  // ok or failed.
  void finish_evaluation(int64_t evaluation_id, const EvaluationOutcome& outcome);

  // A generation's surviving population and its hypervolume, in one
  // transaction; recording the same generation again replaces it.
  void record_generation(int64_t run_id, const GenerationRecord& generation);
  // Recording the same (run, child) again replaces its parents.
  void record_lineage(const LineageRecord& lineage);
  // Names a genome of a run (the genome must have been upserted); naming it
  // again replaces the label.
  void label_genome(int64_t run_id, const std::string& hash, const std::string& label);

  // On resume: every evaluation of the run still "running" belongs to a
  // process that died; mark them interrupted (they are evaluated again).
  // Returns how many were marked.
  int mark_running_interrupted(int64_t run_id);

  // Groups several writes (e.g. a whole generation's genomes and lineage) into
  // one commit. Transactions nest (they are savepoints): an inner one commits
  // into the outer one, and nothing reaches the file until the outermost commits.
  class Transaction {
   public:
    explicit Transaction(Store& store);
    ~Transaction();  // rolls back unless committed
    void commit();
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;

   private:
    Store& store_;
    bool done_ = false;
  };

 private:
  Store(std::unique_ptr<WriterLock> lock, const std::string& path, int busy_timeout_ms);
};

}  // namespace livs::db
