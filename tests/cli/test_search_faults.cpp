// Faults inside a candidate are the candidate's, never the run's: a real
// `livsearch search` with LIVSEARCH_FAULT_INJECT makes chosen candidates
// produce a NaN loss, run out of memory, throw, hang (polling its
// cancellation flag) and get stuck (ignoring it); each is recorded as failed
// with its reason, the search completes, and a stuck worker is abandoned
// without keeping the process alive. Disk full and a read-only folder while
// the database is written give one clear error, and the run resumes after.
#include <doctest/doctest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>

#include "run_command.hpp"
#include "search_db.hpp"
#include "search_process.hpp"

using livs::test::finished_evaluations;
using livs::test::query_rows;
using livs::test::run_livsearch;
using livs::test::ScopedEnvironment;
using livs::test::SearchProcess;
using livs::test::temp_db;

namespace {

const std::string kConfig = "tests/cli/tiny_faults_search.json";

}  // namespace

TEST_CASE(
    "injected NaN, out-of-memory, throw, hang and stuck candidates fail alone and the search completes") {
  const auto db = temp_db("faults.db");
  ScopedEnvironment faults("LIVSEARCH_FAULT_INJECT", "#0:nan,#1:oom,#2:throw,#3:hang,#4:stuck");
  const auto result =
      run_livsearch("search " + kConfig + " --db '" + db.string() + "' --workers 2", "faults_search");
  CAPTURE(result.err);
  REQUIRE(result.exit_code == 0);
  CHECK(result.err.find("fault injection (tests only): LIVSEARCH_FAULT_INJECT=#0:nan") != std::string::npos);
  CHECK(result.err.find("stuck worker thread(s) abandoned") != std::string::npos);
  // The first five evaluations started, in order, are the faulty ones.
  const auto rows = query_rows(db, "SELECT status, error FROM evaluations ORDER BY id");
  REQUIRE(rows.size() >= 8);
  for (std::size_t i = 0; i < 5; ++i) {
    CAPTURE(i);
    CHECK(rows[i][0] == "failed");
  }
  CHECK(rows[0][1].find("non_finite_loss: training loss became nan at step 1") == 0);
  CHECK(rows[1][1].find("out of memory") != std::string::npos);
  // The error, not the status again ("failed: failed: ..." in the log).
  CHECK(rows[1][1].rfind("failed", 0) != 0);
  CHECK(result.err.find("failed: failed") == std::string::npos);
  CHECK(rows[2][1] == "injected fault: evaluate threw");
  CHECK(rows[3][1] == "timeout: ran longer than search.candidate_timeout 15 s");
  CHECK(
      rows[4][1].find("timeout: ran longer than search.candidate_timeout 15 s and did not stop within 5 s of "
                      "being cancelled; its worker thread was abandoned") == 0);
  for (std::size_t i = 5; i < rows.size(); ++i) {
    CAPTURE(i);
    CHECK(rows[i][0] == "ok");
  }
  CHECK(query_rows(db, "SELECT status FROM runs").at(0).at(0) == "finished");
}

TEST_CASE(
    "a device fault that loses the device's context fails its candidate alone: the search restarts itself "
    "with --resume and completes") {
  // On the CPU the injected device fault plays a sticky CUDA error (evaluator/
  // backend.hpp): the device counts as lost for the rest of the process.
  const auto plain_db = temp_db("lost_device_plain.db");
  const auto plain = run_livsearch("search " + kConfig + " --db '" + plain_db.string() + "'", "lost_plain");
  REQUIRE(plain.exit_code == 0);
  const auto db = temp_db("lost_device.db");
  ScopedEnvironment faults("LIVSEARCH_FAULT_INJECT", "#2:device");
  const auto result = run_livsearch("search " + kConfig + " --db '" + db.string() + "'", "lost_device");
  CAPTURE(result.err);
  REQUIRE(result.exit_code == 0);
  CHECK(result.err.find("the context of cpu was lost to a sticky device error; restarting the process with "
                        "--resume (restart 1 of at most 20)") != std::string::npos);
  const auto rows =
      query_rows(db, "SELECT status, error, genome_hash, fidelity, seed FROM evaluations ORDER BY id");
  REQUIRE(rows.size() == query_rows(plain_db, "SELECT id FROM evaluations").size());
  int failed = 0;
  std::set<std::string> keys;
  for (const auto& row : rows) {
    CAPTURE(row[1]);
    if (row[0] != "ok") {
      ++failed;
      CHECK(row[0] == "failed");
      CHECK(row[1].find("injected device fault") != std::string::npos);
    }
    keys.insert(row[2] + "/" + row[3] + "/" + row[4]);
  }
  CHECK(failed == 1);
  CHECK(keys.size() == rows.size());  // nothing ran twice across the restart
  CHECK(query_rows(db, "SELECT status FROM runs").at(0).at(0) == "finished");
}

TEST_CASE("a malformed LIVSEARCH_FAULT_INJECT is exit status 2 naming the variable, before any work") {
  const auto db = temp_db("faults_bad.db");
  ScopedEnvironment faults("LIVSEARCH_FAULT_INJECT", "#0:explode");
  const auto result = run_livsearch("search " + kConfig + " --db '" + db.string() + "'", "faults_bad");
  CHECK(result.exit_code == 2);
  CHECK(result.err ==
        "error: LIVSEARCH_FAULT_INJECT: rule 1 \"#0:explode\": expected a fault of nan, oom, throw, hang, "
        "stuck, device or die, got \"explode\"\n");
  CHECK(!std::filesystem::exists(db));
}

TEST_CASE(
    "a disk that fills while the database is written stops the run with a clear error, and it resumes") {
  const auto whole_db = temp_db("disk_whole.db");
  const auto whole = run_livsearch("search " + kConfig + " --db '" + whole_db.string() + "'", "disk_whole");
  REQUIRE(whole.exit_code == 0);

  const auto db = temp_db("disk_full.db");
  const auto log = db.parent_path() / "disk_full.stderr";
  {
    // Every file the search writes may grow to 160 KiB: the database is
    // created and its first evaluations stored, then a write to the
    // write-ahead log fails as on a full disk (EFBIG, SIGXFSZ ignored).
    SearchProcess search(kConfig, db, {}, log, [] {
      std::signal(SIGXFSZ, SIG_IGN);
      const rlimit limit{160 * 1024, 160 * 1024};
      ::setrlimit(RLIMIT_FSIZE, &limit);
    });
    const auto status = search.wait_for(std::chrono::minutes(3));
    REQUIRE(status.has_value());
    REQUIRE(WIFEXITED(*status));
    const std::string err = livs::test::read_file(log);
    CAPTURE(err);
    CHECK(WEXITSTATUS(*status) == 1);
    CHECK(err.find("cannot write the database: the disk is full or the file size limit is reached") !=
          std::string::npos);
    CHECK(err.find("continue with --resume") != std::string::npos);
  }
  CHECK(query_rows(db, "PRAGMA integrity_check").at(0).at(0) == "ok");
  const auto before = finished_evaluations(db);
  CHECK(!before.empty());  // it was stopped mid-run, with work done
  CHECK(before.size() < finished_evaluations(whole_db).size());

  const auto resumed =
      run_livsearch("search " + kConfig + " --db '" + db.string() + "' --resume", "disk_resume");
  CAPTURE(resumed.err);
  REQUIRE(resumed.exit_code == 0);
  const auto after = finished_evaluations(db);
  for (const auto& [key, value] : before) {
    CAPTURE(key);
    CHECK(after.at(key) == value);
  }
  CHECK(after == finished_evaluations(whole_db));
}

TEST_CASE(
    "a database folder that turned read-only is a clear error, and the run resumes once it is writable") {
  const auto whole_db = temp_db("readonly_whole.db");
  REQUIRE(
      run_livsearch("search " + kConfig + " --db '" + whole_db.string() + "'", "readonly_whole").exit_code ==
      0);

  // A folder of its own, so its permissions touch nothing else. Root passes
  // every permission check, so the searches here run as an unprivileged user
  // when the test is root (the folder is then that user's).
  const auto folder = whole_db.parent_path() / "readonly";
  std::filesystem::remove_all(folder);
  std::filesystem::create_directories(folder);
  const auto db = folder / "run.db";
  const bool root = ::geteuid() == 0;
  const uid_t user = root ? 65534 : ::geteuid();  // nobody
  const gid_t group = root ? 65534 : ::getegid();
  auto as_user = [&] {
    if (root && (::setgid(group) != 0 || ::setuid(user) != 0)) ::_exit(126);
  };
  auto own = [&] {
    if (!root) return;
    for (const auto& entry : std::filesystem::directory_iterator(folder))
      REQUIRE(::chown(entry.path().c_str(), user, group) == 0);
    REQUIRE(::chown(folder.c_str(), user, group) == 0);
  };
  own();
  auto run = [&](const std::vector<std::string>& extra, const std::string& name, int& exit_code) {
    const auto log = whole_db.parent_path() / (name + ".stderr");
    SearchProcess search(kConfig, db, extra, log, as_user);
    const auto status = search.wait_for(std::chrono::minutes(3));
    REQUIRE(status.has_value());
    REQUIRE(WIFEXITED(*status));
    exit_code = WEXITSTATUS(*status);
    return livs::test::read_file(log);
  };

  // Part of the run, stopped by SIGTERM once two evaluations are stored.
  {
    const auto log = whole_db.parent_path() / "readonly_first.stderr";
    SearchProcess search(kConfig, db, {}, log, as_user);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
    while (finished_evaluations(db).size() < 2 && search.running() &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    search.signal(SIGTERM);
    const auto status = search.wait_for(std::chrono::minutes(1));
    REQUIRE(status.has_value());
    CAPTURE(livs::test::read_file(log));
    REQUIRE(WIFEXITED(*status));
    REQUIRE(WEXITSTATUS(*status) == 130);
  }
  const auto before = finished_evaluations(db);
  REQUIRE(before.size() >= 2);

  std::filesystem::permissions(folder,
                               std::filesystem::perms::owner_read | std::filesystem::perms::owner_exec |
                                   std::filesystem::perms::group_read | std::filesystem::perms::group_exec |
                                   std::filesystem::perms::others_read | std::filesystem::perms::others_exec);
  int code = 0;
  const std::string err = run({"--resume"}, "readonly_refused", code);
  CAPTURE(err);
  CHECK(code == 1);
  CHECK(err.rfind("error: " + db.string(), 0) == 0);  // one line naming the database
  CHECK(err.find("Permission denied") != std::string::npos);
  CHECK(livs::test::lines_of(err).size() == 1);  // the error alone: nothing was started
  CHECK(finished_evaluations(db) == before);

  std::filesystem::permissions(folder, std::filesystem::perms::owner_write,
                               std::filesystem::perm_options::add);
  const std::string resumed = run({"--resume"}, "readonly_resumed", code);
  CAPTURE(resumed);
  CHECK(code == 0);
  CHECK(finished_evaluations(db) == finished_evaluations(whole_db));
  std::filesystem::remove_all(folder);
}
