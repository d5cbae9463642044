#pragma once
// A thin RAII layer over the SQLite C API: one connection, prepared statements
// with bound parameters, savepoints. Internal to db/; the rest of the program
// uses db/store.hpp.
#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace livs::db {

class Connection;

class Statement {
 public:
  Statement(Connection& connection, std::string_view sql);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Parameters are 1-based, as in sqlite3_bind_*. Text is bound with its
  // length, so any byte sequence (quotes, semicolons, SQL) is stored verbatim.
  Statement& bind(int index, int64_t value);
  Statement& bind(int index, int value) { return bind(index, static_cast<int64_t>(value)); }
  Statement& bind(int index, double value);  // NaN binds as NULL
  Statement& bind(int index, std::string_view value);
  Statement& bind(int index, const char* value) { return bind(index, std::string_view(value)); }
  Statement& bind(int index, const std::string& value) { return bind(index, std::string_view(value)); }
  Statement& bind_null(int index);

  // Advances; true while there is a row. Throws DatabaseError on failure.
  bool step();
  // Runs a statement that returns no rows.
  void run();
  // Makes the statement ready to run again with new bindings.
  void reset();

  bool is_null(int column) const;
  int64_t int64(int column) const;
  double real(int column) const;  // NULL reads as NaN
  std::string text(int column) const;

 private:
  Connection& connection_;
  sqlite3_stmt* statement_ = nullptr;
};

class Connection {
 public:
  // flags: SQLITE_OPEN_READONLY or SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE.
  Connection(std::string path, int flags, int busy_timeout_ms);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  const std::string& path() const { return path_; }
  bool read_only() const { return read_only_; }
  sqlite3* handle() { return db_; }

  // For constant SQL only (schema, pragmas); never for values.
  void exec(const std::string& sql);
  int64_t last_insert_rowid() const;
  int changes() const;

  // Throws DatabaseError "FILE: WHAT: sqlite message (code)".
  [[noreturn]] void fail(const std::string& what, int code) const;

  // The schema version this connection read or wrote (set by db/schema.cpp).
  int schema_version = 0;

 private:
  std::string path_;
  bool read_only_ = false;
  sqlite3* db_ = nullptr;
};

// A savepoint: commits on commit(), rolls back when destroyed otherwise.
// Savepoints nest, so a write helper can use one inside a caller's.
class Savepoint {
 public:
  explicit Savepoint(Connection& connection);
  ~Savepoint();
  Savepoint(const Savepoint&) = delete;
  Savepoint& operator=(const Savepoint&) = delete;
  void commit();

 private:
  Connection& connection_;
  std::string name_;
  bool done_ = false;
};

// Current UTC time as ISO 8601 with milliseconds: 2026-11-23T18:43:25.123Z.
std::string utc_now_iso8601();

}  // namespace livs::db
