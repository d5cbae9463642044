#pragma once
// The schema as a list of forward migrations. The file's PRAGMA user_version
// is the number of the last migration applied; opening for writing applies
// the missing ones in one transaction. A database from a newer livsearch is
// refused, never downgraded. PRAGMA application_id marks the file as ours, so
// another program's SQLite file is not mistaken for an empty livsearch one.
#include <cstdint>
#include <vector>

#include "db/connection.hpp"

namespace livs::db {

// 'LIVS' in ASCII.
inline constexpr int32_t kApplicationId = 0x4C495653;

struct Migration {
  int to_version;           // 1, 2, 3, ... in order
  const char* description;  // what it changes, for the docs and error messages
  const char* sql;          // constant DDL; never carries user values
};

// Every migration this tool knows, in order.
const std::vector<Migration>& migrations();
int current_schema_version();

// Reads user_version and application_id and checks the file is a livsearch
// database this tool can read (InputError naming the file otherwise: not a
// SQLite database, corrupt, another program's database, too new).
// Returns the file's schema version (0 for an empty, new file).
int check_database_file(Connection& connection, int newest_known_version);

// Brings a writable connection to the last version in `steps` (applies the
// steps newer than the file's version, in one transaction). Tests pass their
// own list to exercise migration paths; the Store passes migrations().
void migrate(Connection& connection, const std::vector<Migration>& steps);

// Connection settings shared by every writer: WAL journal, foreign keys,
// synchronous=FULL (a finished evaluation survives even a power cut).
void configure_writer(Connection& connection);

}  // namespace livs::db
