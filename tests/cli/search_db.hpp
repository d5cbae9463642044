#pragma once
// Reading a search's database straight from SQLite, so the CLI tests do not
// trust the code under test for what they check, and running a search that
// the test kills with SIGKILL once the database shows it far enough along.
#include <doctest/doctest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace livs::test {

// A fresh database path in a per-process temporary folder.
inline std::filesystem::path temp_db(const std::string& name) {
  const auto folder =
      std::filesystem::temp_directory_path() / ("livsearch_search_" + std::to_string(::getpid()));
  std::filesystem::create_directories(folder);
  const auto path = folder / name;
  for (const char* suffix : {"", "-wal", "-shm", "-writer.lock"})
    std::filesystem::remove(path.string() + suffix);
  return path;
}

// The rows of a read-only query, every column as text ("" for NULL). A
// database that does not exist yet has no rows.
inline std::vector<std::vector<std::string>> query_rows(const std::filesystem::path& db,
                                                        const std::string& sql) {
  std::vector<std::vector<std::string>> rows;
  sqlite3* handle = nullptr;
  if (sqlite3_open_v2(db.c_str(), &handle, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(handle);
    return rows;
  }
  sqlite3_busy_timeout(handle, 5000);
  sqlite3_stmt* statement = nullptr;
  if (sqlite3_prepare_v2(handle, sql.c_str(), -1, &statement, nullptr) == SQLITE_OK) {
    while (sqlite3_step(statement) == SQLITE_ROW) {
      std::vector<std::string> row;
      for (int c = 0; c < sqlite3_column_count(statement); ++c) {
        const auto* text = sqlite3_column_text(statement, c);
        row.push_back(text ? reinterpret_cast<const char*>(text) : "");
      }
      rows.push_back(std::move(row));
    }
  }
  sqlite3_finalize(statement);
  sqlite3_close(handle);
  return rows;
}

// Starts `livsearch search CONFIG --db DB`, waits until `far_enough()` says
// so (polled every 10 ms, at most five minutes), then kills it with SIGKILL.
// Returns true when the process was killed mid-run (not finished before).
// Every finished evaluation of a database: "hash fidelity seed" ->
// "status perplexity" (what the kill, fault and reader tests compare runs by).
inline std::map<std::string, std::string> finished_evaluations(const std::filesystem::path& db) {
  std::map<std::string, std::string> out;
  for (const auto& row :
       query_rows(db,
                  "SELECT e.genome_hash || ' ' || e.fidelity || ' ' || e.seed, e.status || ' ' || "
                  "coalesce((SELECT quote(m.value) FROM metrics m WHERE m.evaluation_id = e.id "
                  "AND m.name = 'perplexity'), '-') FROM evaluations e WHERE e.status IN ('ok', "
                  "'failed')"))
    out[row[0]] = row[1];
  return out;
}

inline bool run_search_and_kill(const std::string& config, const std::filesystem::path& db,
                                const std::function<bool()>& far_enough) {
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    if (::chdir(LIVSEARCH_SOURCE_DIR) != 0) ::_exit(127);
    std::freopen("/dev/null", "w", stderr);
    std::freopen("/dev/null", "w", stdout);
    ::execl(LIVSEARCH_BINARY, LIVSEARCH_BINARY, "search", config.c_str(), "--db", db.c_str(),
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
  while (!far_enough() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  return WIFSIGNALED(status);
}

}  // namespace livs::test
