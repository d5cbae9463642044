#include "db/connection.hpp"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <limits>

#include "common/input_error.hpp"
#include "db/store.hpp"

namespace livs::db {

Connection::Connection(std::string path, int flags, int busy_timeout_ms)
    : path_(std::move(path)), read_only_((flags & SQLITE_OPEN_READONLY) != 0) {
  // NOMUTEX: a connection is used by one thread; URI off so a path is a path.
  int code = sqlite3_open_v2(path_.c_str(), &db_, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  if (code != SQLITE_OK) {
    std::string message = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(code);
    sqlite3_close(db_);
    db_ = nullptr;
    throw DatabaseError(path_ + ": cannot open the database: " + message);
  }
  sqlite3_extended_result_codes(db_, 1);
  sqlite3_busy_timeout(db_, busy_timeout_ms);
}

Connection::~Connection() {
  // Statements are always finalised by their owners first, so close cannot
  // fail with SQLITE_BUSY here.
  sqlite3_close(db_);
}

void Connection::exec(const std::string& sql) {
  char* error = nullptr;
  int code = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error);
  if (code != SQLITE_OK) {
    sqlite3_free(error);
    fail("running `" + sql.substr(0, 60) + "`", sqlite3_extended_errcode(db_));
  }
}

int64_t Connection::last_insert_rowid() const { return sqlite3_last_insert_rowid(db_); }

int Connection::changes() const { return sqlite3_changes(db_); }

void Connection::fail(const std::string& what, int code) const {
  std::string message = sqlite3_errmsg(db_);
  // A damaged or foreign file is the user's input, not our failure: say which
  // file, wherever SQLite happens to notice it.
  if ((code & 0xff) == SQLITE_CORRUPT)
    throw InputError(path_, "", "the SQLite database is corrupt (" + message + ")");
  if ((code & 0xff) == SQLITE_NOTADB)
    throw InputError(path_, "", "not a SQLite database (expected a livsearch database file)");
  // A write that the disk or the folder refuses: the transaction is rolled
  // back, so everything committed before is intact and a resumed run
  // continues from it. Say so, since the run itself has to stop here.
  const char* advice = "; everything written before is kept: fix this, then continue with --resume";
  if (read_only_) advice = "";
  // SQLite reports ENOSPC as SQLITE_FULL, but a file-size limit (EFBIG) or a
  // quota (EDQUOT) as an I/O error: the system's errno tells them apart.
  const int system_error = sqlite3_system_errno(db_);
  const bool no_space = (code & 0xff) == SQLITE_FULL ||
                        ((code & 0xff) == SQLITE_IOERR &&
                         (system_error == ENOSPC || system_error == EFBIG || system_error == EDQUOT));
  std::string cause = message;
  if (system_error != 0) cause.append(", ").append(std::strerror(system_error));
  if (!read_only_ && no_space)
    throw DatabaseError(path_ +
                        ": cannot write the database: the disk is full or the file size limit is reached (" +
                        cause + ")" + advice);
  if ((code & 0xff) == SQLITE_READONLY)
    throw DatabaseError(path_ + ": cannot write the database: the file or its folder is read-only (" + cause +
                        ")" + advice);
  if (!read_only_ && ((code & 0xff) == SQLITE_IOERR || (code & 0xff) == SQLITE_CANTOPEN))
    throw DatabaseError(path_ + ": cannot write the database: " + cause + " (sqlite code " +
                        std::to_string(code) + ")" + advice);
  throw DatabaseError(path_ + ": " + what + ": " + message + " (sqlite code " + std::to_string(code) + ")");
}

Statement::Statement(Connection& connection, std::string_view sql) : connection_(connection) {
  int code = sqlite3_prepare_v2(connection_.handle(), sql.data(), static_cast<int>(sql.size()), &statement_,
                                nullptr);
  if (code != SQLITE_OK) connection_.fail("preparing `" + std::string(sql) + "`", code);
}

Statement::~Statement() { sqlite3_finalize(statement_); }

Statement& Statement::bind(int index, int64_t value) {
  int code = sqlite3_bind_int64(statement_, index, value);
  if (code != SQLITE_OK) connection_.fail("binding parameter " + std::to_string(index), code);
  return *this;
}

Statement& Statement::bind(int index, double value) {
  if (std::isnan(value)) return bind_null(index);
  int code = sqlite3_bind_double(statement_, index, value);
  if (code != SQLITE_OK) connection_.fail("binding parameter " + std::to_string(index), code);
  return *this;
}

Statement& Statement::bind(int index, std::string_view value) {
  // SQLITE_TRANSIENT: SQLite copies the bytes, so the caller's buffer may go.
  int code =
      sqlite3_bind_text64(statement_, index, value.data(), value.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  if (code != SQLITE_OK) connection_.fail("binding parameter " + std::to_string(index), code);
  return *this;
}

Statement& Statement::bind_null(int index) {
  int code = sqlite3_bind_null(statement_, index);
  if (code != SQLITE_OK) connection_.fail("binding parameter " + std::to_string(index), code);
  return *this;
}

bool Statement::step() {
  int code = sqlite3_step(statement_);
  if (code == SQLITE_ROW) return true;
  if (code == SQLITE_DONE) return false;
  connection_.fail("running `" + std::string(sqlite3_sql(statement_)) + "`", code);
}

void Statement::run() {
  while (step()) {
  }
}

void Statement::reset() {
  sqlite3_reset(statement_);
  sqlite3_clear_bindings(statement_);
}

bool Statement::is_null(int column) const { return sqlite3_column_type(statement_, column) == SQLITE_NULL; }

int64_t Statement::int64(int column) const { return sqlite3_column_int64(statement_, column); }

double Statement::real(int column) const {
  if (is_null(column)) return std::numeric_limits<double>::quiet_NaN();
  return sqlite3_column_double(statement_, column);
}

std::string Statement::text(int column) const {
  const auto* bytes = reinterpret_cast<const char*>(sqlite3_column_text(statement_, column));
  if (!bytes) return {};
  return std::string(bytes, static_cast<std::size_t>(sqlite3_column_bytes(statement_, column)));
}

Savepoint::Savepoint(Connection& connection) : connection_(connection) {
  // Unique names so nested savepoints release exactly their own work.
  static std::atomic<uint64_t> counter{0};
  name_ = "livs_sp_" + std::to_string(counter.fetch_add(1));
  connection_.exec("SAVEPOINT " + name_);
}

Savepoint::~Savepoint() {
  if (done_) return;
  // Never throw from a destructor: the rollback is best effort while an
  // exception is already on its way out.
  std::string sql = "ROLLBACK TO " + name_ + "; RELEASE " + name_;
  sqlite3_exec(connection_.handle(), sql.c_str(), nullptr, nullptr, nullptr);
}

void Savepoint::commit() {
  connection_.exec("RELEASE " + name_);
  done_ = true;
}

std::string utc_now_iso8601() {
  using namespace std::chrono;
  auto now = system_clock::now();
  auto millis = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  std::time_t seconds = system_clock::to_time_t(now);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char buffer[96];  // room for any int the compiler can imagine in the fields
  std::snprintf(buffer, sizeof buffer, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, static_cast<int>(millis));
  return buffer;
}

}  // namespace livs::db
