// Schema creation, forward migrations and refusing files that are not ours.
#include <doctest/doctest.h>
#include <sqlite3.h>

#include <fstream>
#include <iterator>
#include <map>
#include <set>

#include "common/input_error.hpp"
#include "db/connection.hpp"
#include "db/schema.hpp"
#include "db/store.hpp"
#include "temp_dir.hpp"

using namespace livs;
using namespace livs::db;

namespace {

int pragma_int(Connection& connection, const char* pragma) {
  Statement s(connection, std::string("PRAGMA ") + pragma);
  REQUIRE(s.step());
  return static_cast<int>(s.int64(0));
}

std::set<std::string> table_names(Connection& connection) {
  Statement s(connection, "SELECT name FROM sqlite_schema WHERE type = 'table'");
  std::set<std::string> names;
  while (s.step()) names.insert(s.text(0));
  return names;
}

// Runs SQL on a plain connection, as another program would.
void raw_sql(const std::string& path, const std::string& sql) {
  Connection c(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, 1000);
  c.exec(sql);
}

// The message of the InputError that `open` throws; fails the test otherwise.
template <typename Open>
std::string input_error_of(Open open) {
  try {
    open();
  } catch (const InputError& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL("expected an InputError, got: " << std::string(e.what()));
  }
  FAIL("expected an InputError, nothing was thrown");
  return {};
}

}  // namespace

TEST_CASE("a new database gets the current schema, WAL mode and our application id") {
  test::TempDir dir;
  std::string path = dir.file("new.db");
  {
    Store store(path);
    CHECK(store.schema_version() == current_schema_version());
  }
  Connection c(path, SQLITE_OPEN_READONLY, 1000);
  CHECK(pragma_int(c, "user_version") == current_schema_version());
  CHECK(pragma_int(c, "application_id") == kApplicationId);
  Statement journal(c, "PRAGMA journal_mode");
  REQUIRE(journal.step());
  CHECK(journal.text(0) == "wal");
  auto tables = table_names(c);
  for (const char* t : {"runs", "genomes", "evaluations", "metrics", "generations", "population", "lineage",
                        "lineage_parents", "genome_labels"})
    CHECK_MESSAGE(tables.count(t) == 1, "missing table " << t);
}

TEST_CASE("migrations run forward from version 0, each step once, and only the missing ones") {
  test::TempDir dir;
  std::string path = dir.file("migrate.db");
  std::vector<Migration> steps = migrations();
  REQUIRE(steps.front().to_version == 1);
  for (std::size_t i = 0; i < steps.size(); ++i) CHECK(steps[i].to_version == static_cast<int>(i) + 1);

  // Version 0: an empty file, as a brand-new path is.
  {
    Connection c(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, 1000);
    CHECK(check_database_file(c, current_schema_version()) == 0);
    migrate(c, steps);
    CHECK(pragma_int(c, "user_version") == current_schema_version());
  }
  // A later schema version adds to the current one: applying the extended list
  // runs only the new step and keeps the data written before it.
  {
    Store store(path);
    store.create_or_open_run("before-migration", Json::object(), 1);
  }
  int next = current_schema_version() + 1;
  steps.push_back({next, "test: a notes table", "CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)"});
  {
    Connection c(path, SQLITE_OPEN_READWRITE, 1000);
    migrate(c, steps);
    CHECK(pragma_int(c, "user_version") == next);
    CHECK(table_names(c).count("notes") == 1);
    Statement runs(c, "SELECT name FROM runs");
    REQUIRE(runs.step());
    CHECK(runs.text(0) == "before-migration");
    // Running the same list again is a no-op (CREATE TABLE would fail if re-run).
    CHECK_NOTHROW(migrate(c, steps));
  }
  // This tool knows only up to the current version: the migrated file is "newer".
  auto message = input_error_of([&] { Store store(path); });
  CHECK(message.find(path) != std::string::npos);
  CHECK(message.find("newer livsearch") != std::string::npos);
  CHECK(message.find("schema version " + std::to_string(next)) != std::string::npos);
}

TEST_CASE("a version-1 database migrates to version 2 and keeps its rows") {
  test::TempDir dir;
  std::string path = dir.file("v1.db");
  const std::string hash(64, 'a');
  {
    // A file as livsearch 0.1 wrote it: schema version 1 and a generation row
    // without the rejected columns.
    Connection c(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, 1000);
    migrate(c, {migrations().front()});
    REQUIRE(pragma_int(c, "user_version") == 1);
    c.exec(
        "INSERT INTO runs (id, name, config, seed, status, tool_version, created_at, updated_at) VALUES "
        "(1, 'old', '{}', '7', 'finished', '0.1.0', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z');"
        "INSERT INTO genomes (hash, genome, summary, first_seen_at) VALUES ('" +
        hash +
        "', '{}', 's', '2026-01-01T00:00:00.000Z');"
        "INSERT INTO generations (run_id, generation, hypervolume, hypervolume_reference, recorded_at) "
        "VALUES "
        "(1, 0, 0.5, 'null', '2026-01-01T00:00:00.000Z');");
    CHECK(table_names(c).count("genome_labels") == 0);
  }
  REQUIRE(current_schema_version() == 2);
  {
    Store store(path);
    CHECK(store.schema_version() == 2);
    auto old = store.generations(1);
    REQUIRE(old.size() == 1);  // the version-1 row, with the new columns' defaults
    CHECK(old[0].hypervolume == 0.5);
    CHECK(old[0].rejected == 0);
    CHECK(old[0].rejected_by == Json::object());
    GenerationRecord g1;
    g1.generation = 1;
    g1.rejected = 37;
    g1.rejected_by = {{"params", 35}, {"cache_bytes", 2}};
    store.record_generation(1, g1);
    store.label_genome(1, hash, "preset transformer");
  }
  Connection c(path, SQLITE_OPEN_READONLY, 1000);
  CHECK(pragma_int(c, "user_version") == 2);
  Reader reader(path);
  auto generations = reader.generations(1);
  REQUIRE(generations.size() == 2);
  CHECK(generations[1].rejected == 37);
  CHECK(generations[1].rejected_by == Json{{"params", 35}, {"cache_bytes", 2}});
  CHECK(reader.genome_labels(1) == std::map<std::string, std::string>{{hash, "preset transformer"}});
  auto labels = reader.labels_of_genome(hash);
  REQUIRE(labels.size() == 1);
  CHECK(labels[0].run_id == 1);
  CHECK(labels[0].label == "preset transformer");
}

TEST_CASE("a failing migration step leaves the file at its old version") {
  test::TempDir dir;
  std::string path = dir.file("broken-step.db");
  { Store store(path); }
  std::vector<Migration> steps = migrations();
  int next = current_schema_version() + 1;
  steps.push_back({next, "test: broken", "CREATE TABLE extra (x INTEGER); CREATE TABLE runs (x INTEGER)"});
  Connection c(path, SQLITE_OPEN_READWRITE, 1000);
  CHECK_THROWS_AS(migrate(c, steps), DatabaseError);
  CHECK(pragma_int(c, "user_version") == current_schema_version());
  CHECK(table_names(c).count("extra") == 0);  // the whole migration rolled back
}

TEST_CASE("a database from a future livsearch gives a clear error to the writer and the reader") {
  test::TempDir dir;
  std::string path = dir.file("future.db");
  { Store store(path); }
  raw_sql(path, "PRAGMA user_version = 99");
  for (bool writer : {true, false}) {
    auto message = input_error_of([&] {
      if (writer)
        Store store(path);
      else
        Reader reader(path);
    });
    CHECK(message.rfind(path + ": ", 0) == 0);
    CHECK(message.find("newer livsearch (schema version 99") != std::string::npos);
  }
}

TEST_CASE("a file that is not a SQLite database gives an InputError naming the file") {
  test::TempDir dir;
  std::string text = dir.write("notes.db", "this is a text file, not a database\n" + std::string(2000, 'x'));
  for (bool writer : {true, false}) {
    auto message = input_error_of([&] {
      if (writer)
        Store store(text);
      else
        Reader reader(text);
    });
    CHECK(message.rfind(text + ": ", 0) == 0);
    CHECK(message.find("not a SQLite database") != std::string::npos);
  }
  // The writer must not have damaged the file it refused.
  std::ifstream in(text, std::ios::binary);
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(content.rfind("this is a text file", 0) == 0);
}

TEST_CASE("another program's SQLite database is refused, not migrated into") {
  test::TempDir dir;
  std::string path = dir.file("other.db");
  raw_sql(path, "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)");
  auto message = input_error_of([&] { Store store(path); });
  CHECK(message.rfind(path + ": ", 0) == 0);
  CHECK(message.find("not a livsearch database") != std::string::npos);
  Connection c(path, SQLITE_OPEN_READONLY, 1000);
  CHECK(table_names(c) == std::set<std::string>{"customers"});

  std::string marked = dir.file("marked.db");
  raw_sql(marked, "PRAGMA application_id = 1234; PRAGMA user_version = 1; CREATE TABLE t (x)");
  auto marked_message = input_error_of([&] { Reader reader(marked); });
  CHECK(marked_message.find("application_id 1234") != std::string::npos);
}

TEST_CASE("a corrupt database gives an InputError naming the file") {
  test::TempDir dir;
  std::string path = dir.file("corrupt.db");
  {
    Store store(path);
    store.create_or_open_run("r", Json::object(), 1);
  }
  // Keep the 100-byte header (so SQLite recognises the format) and overwrite
  // the schema page that follows it with garbage.
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  REQUIRE(bytes.size() > 4096);
  for (std::size_t i = 100; i < 4096; ++i) bytes[i] = static_cast<char>(0xA5 ^ (i * 31));
  dir.write("corrupt.db", bytes);
  for (bool writer : {true, false}) {
    auto message = input_error_of([&] {
      if (writer)
        Store store(path);
      else
        Reader reader(path);
    });
    CHECK(message.rfind(path + ": ", 0) == 0);
    CHECK(message.find("corrupt") != std::string::npos);
  }
}

TEST_CASE("a seed cell that is not an unsigned 64-bit integer is reported as such") {
  test::TempDir dir;
  const std::string path = dir.file("seed.db");
  {
    Store store(path);
    store.create_or_open_run("quick", Json::object(), 18446744073709551615ull);
  }
  for (const std::string bad : {"abc", "-1", "18446744073709551616", "12 "}) {
    raw_sql(path, "UPDATE runs SET seed = '" + bad + "'");
    Reader reader(path);
    CHECK_THROWS_WITH(reader.runs(),
                      ("seed '" + bad + "' in the database is not an unsigned 64-bit integer").c_str());
  }
  raw_sql(path, "UPDATE runs SET seed = '18446744073709551615'");
  CHECK(Reader(path).runs().at(0).seed == 18446744073709551615ull);
}

TEST_CASE("the reader refuses a missing file, a directory and an empty file") {
  test::TempDir dir;
  auto missing = input_error_of([&] { Reader reader(dir.file("missing.db")); });
  CHECK(missing.find("no such database file") != std::string::npos);
  CHECK(!std::filesystem::exists(dir.file("missing.db")));  // reading never creates
  auto folder = input_error_of([&] { Reader reader(dir.file("")); });
  CHECK(folder.find("is a directory") != std::string::npos);
  std::string empty = dir.write("empty.db", "");
  auto empty_message = input_error_of([&] { Reader reader(empty); });
  CHECK(empty_message.find("not a livsearch database") != std::string::npos);
  auto no_folder = input_error_of([&] { Store store(dir.file("no/such/folder/x.db")); });
  CHECK(no_folder.find("does not exist") != std::string::npos);
}
