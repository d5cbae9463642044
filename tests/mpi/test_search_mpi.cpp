// `livsearch search --mpi` through a real `mpirun` on this machine's CPU:
// the same database contents as one process (and as --workers 3), a rank
// killed mid-run resumed without losing a finished evaluation, and ranks
// that cannot run ending the job with an error that names them instead of
// hanging. Built only when MPI is found (tests/CMakeLists.txt).
#include <doctest/doctest.h>

#include <filesystem>
#include <map>
#include <string>

#include "cli/run_command.hpp"
#include "cli/search_db.hpp"

using livs::test::CommandResult;
using livs::test::finished_evaluations;
using livs::test::query_rows;
using livs::test::run_command;
using livs::test::run_livsearch;
using livs::test::ScopedEnvironment;
using livs::test::temp_db;

namespace {

const std::string kConfig = "tests/cli/tiny_search.json";

// `n` ranks of `livsearch ARGS`, as mpirun's command line names them; two
// such groups joined by " : " give different ranks different arguments.
std::string ranks_running(int n, const std::string& livsearch_args) {
  return "-n " + std::to_string(n) + " '" LIVSEARCH_BINARY "' " + livsearch_args;
}

// mpirun as these tests need it: root allowed (CI runs as root), more ranks
// than cores, shared memory between the ranks of this one machine.
CommandResult mpirun(const std::string& ranks, const std::string& tag) {
  ScopedEnvironment root("OMPI_ALLOW_RUN_AS_ROOT", "1");
  ScopedEnvironment confirm("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
  return run_command("'" LIVSEARCH_MPIEXEC "' --oversubscribe --mca btl self,vader " + ranks, tag);
}

std::string search_args(const std::filesystem::path& db) {
  return "search " + kConfig + " --db '" + db.string() + "'";
}

// What a run computed, without what depends on timing: every evaluation that
// finished (status, error and every metric but the timed ones) and every
// generation's population with its ranks and crowding (the front).
std::map<std::string, std::string> run_contents(const std::filesystem::path& db) {
  std::map<std::string, std::string> out;
  for (const auto& row : query_rows(
           db,
           "SELECT e.genome_hash || ' ' || e.fidelity || ' ' || e.seed, e.status || ' ' || e.error || ' ' "
           "|| coalesce((SELECT group_concat(m.name || '=' || quote(m.value), ' ') FROM metrics m WHERE "
           "m.evaluation_id = e.id AND m.name NOT LIKE '%seconds' AND m.name NOT LIKE '%\\_ms' ESCAPE "
           "'\\'), '') FROM evaluations e WHERE e.status IN ('ok', 'failed')"))
    out["evaluation " + row[0]] = row[1];
  for (const auto& row :
       query_rows(db,
                  "SELECT generation || ' ' || position, genome_hash || ' ' || rank || ' ' || "
                  "quote(crowding) FROM population"))
    out["population " + row[0]] = row[1];
  return out;
}

}  // namespace

TEST_CASE("mpirun -n 3 gives the database contents of one process and of --workers 3") {
  const auto single = temp_db("mpi_single.db");
  const auto workers = temp_db("mpi_workers.db");
  const auto ranks = temp_db("mpi_ranks.db");
  const auto one = run_livsearch(search_args(single), "mpi_single");
  REQUIRE_MESSAGE(one.exit_code == 0, one.err);
  const auto three = run_livsearch(search_args(workers) + " --workers 3", "mpi_workers");
  REQUIRE_MESSAGE(three.exit_code == 0, three.err);
  const auto over_mpi = mpirun(ranks_running(3, search_args(ranks) + " --mpi"), "mpi_ranks");
  REQUIRE_MESSAGE(over_mpi.exit_code == 0, over_mpi.err);
  CHECK(over_mpi.err.find("MPI: 3 ranks:") != std::string::npos);

  const auto expected = run_contents(single);
  REQUIRE(expected.size() > 30);
  CHECK(run_contents(workers) == expected);
  CHECK(run_contents(ranks) == expected);
  // Every rank trained some: each evaluation records the rank that ran it.
  // `status` says where they ran.
  const auto status = run_livsearch("status --db '" + ranks.string() + "'", "mpi_status");
  REQUIRE(status.exit_code == 0);
  CHECK(status.out.find("devices      cpu on ") != std::string::npos);
  CHECK(status.out.find("(rank 2): ") != std::string::npos);
  const auto places = query_rows(ranks, "SELECT DISTINCT device FROM evaluations ORDER BY device");
  REQUIRE(places.size() == 3);
  for (int r = 0; r < 3; ++r) {
    CAPTURE(r);
    CHECK(places[static_cast<std::size_t>(r)][0].find("(rank " + std::to_string(r) + ")") !=
          std::string::npos);
  }
}

TEST_CASE("a rank killed mid-run ends the job, and --resume finishes it with nothing finished lost") {
  const auto reference = temp_db("mpi_reference.db");
  const auto db = temp_db("mpi_killed.db");
  REQUIRE(run_livsearch(search_args(reference), "mpi_reference").exit_code == 0);

  // Evaluation 2 starts third, on rank 2's lane (lanes are filled in rank
  // order), which is killed in its first training step.
  std::map<std::string, std::string> before;
  {
    ScopedEnvironment die("LIVSEARCH_FAULT_INJECT", "#2:die");
    const auto killed = mpirun(ranks_running(3, search_args(db) + " --mpi"), "mpi_killed");
    CHECK(killed.exit_code != 0);
  }
  const auto running = query_rows(db, "SELECT device FROM evaluations WHERE status = 'running'");
  REQUIRE(!running.empty());  // at least the killed rank's evaluation never finished
  bool rank_two = false;
  for (const auto& row : running) rank_two = rank_two || row[0].find("(rank 2)") != std::string::npos;
  CHECK(rank_two);
  const auto finished_before = run_contents(db);

  // Resumed on another number of ranks: what finished stays, the rest runs.
  const auto resumed = mpirun(ranks_running(2, search_args(db) + " --mpi --resume"), "mpi_resumed");
  REQUIRE_MESSAGE(resumed.exit_code == 0, resumed.err);
  const auto after = run_contents(db);
  for (const auto& [key, value] : finished_before) {
    CAPTURE(key);
    CHECK(after.at(key) == value);
  }
  CHECK(after == run_contents(reference));
  CHECK(query_rows(db, "SELECT count(*) FROM evaluations WHERE status = 'running'").at(0).at(0) == "0");
  CHECK(query_rows(db, "PRAGMA integrity_check").at(0).at(0) == "ok");
}

TEST_CASE("a rank that cannot use its device or sees other data ends the job with an error naming it") {
  const auto db = temp_db("mpi_bad_rank.db");
  // Rank 1 asks for a GPU this machine (or this build) does not have.
  const auto no_gpu = mpirun(ranks_running(1, search_args(db) + " --mpi") + " : " +
                                 ranks_running(1, search_args(db) + " --mpi --devices cuda:7"),
                             "mpi_no_gpu");
  CHECK(no_gpu.exit_code == 2);
  CHECK_MESSAGE(no_gpu.err.find("error: --mpi: rank 1 on ") != std::string::npos, no_gpu.err);
  CHECK(no_gpu.err.find("cuda:7") != std::string::npos);
  CHECK(query_rows(db, "SELECT count(*) FROM evaluations").empty());  // nothing ran, no database

  // Rank 1 reads another data file than rank 0's.
  const auto other_data =
      mpirun(ranks_running(1, search_args(db) + " --mpi") + " : " +
                 ranks_running(1, "search tests/mpi/other_data_search.json --db '" + db.string() + "' --mpi"),
             "mpi_other_data");
  CHECK(other_data.exit_code == 2);
  CHECK_MESSAGE(other_data.err.find("error: --mpi: rank 1 on ") != std::string::npos, other_data.err);
  CHECK(other_data.err.find("where rank 0 has") != std::string::npos);
}

TEST_CASE("finalize --mpi trains the missing replicates over the ranks, with one process's numbers") {
  const auto single = temp_db("mpi_finalize_single.db");
  REQUIRE(run_livsearch(search_args(single), "mpi_finalize_search").exit_code == 0);
  const auto ranks = single.parent_path() / "mpi_finalize_ranks.db";
  std::filesystem::copy_file(single, ranks, std::filesystem::copy_options::overwrite_existing);
  // The run's final stage trained 2 seeds; 4 leaves two more per finalist.
  const std::string finalize = "finalize --top 2 --seeds 4 --db ";
  const auto one = run_livsearch(finalize + "'" + single.string() + "'", "mpi_finalize_one");
  REQUIRE_MESSAGE(one.exit_code == 0, one.err);
  const auto over_mpi = mpirun(ranks_running(3, finalize + "'" + ranks.string() + "' --mpi"), "mpi_finalize");
  REQUIRE_MESSAGE(over_mpi.exit_code == 0, over_mpi.err);
  CHECK(over_mpi.err.find("MPI: 3 ranks:") != std::string::npos);
  const auto ran = one.out.substr(one.out.find("finalized ("));
  CHECK(ran.find("finalized (0 evaluations run") == std::string::npos);
  CHECK_MESSAGE(over_mpi.out.find(ran.substr(0, ran.find(";"))) != std::string::npos,
                one.out << " / " << over_mpi.out);  // the same counts of run and reused

  CHECK(finished_evaluations(ranks) == finished_evaluations(single));
  CHECK(finished_evaluations(single).size() >= 8);
  // Other ranks trained some of the new replicates.
  const auto places =
      query_rows(ranks, "SELECT DISTINCT device FROM evaluations WHERE device LIKE '%(rank %'");
  CHECK(places.size() >= 2);
}
