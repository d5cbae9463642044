#pragma once
// The handshake of an MPI job: before the first request, every rank tells
// rank 0 where it runs (host, device, lanes) and what data it would train
// on, or why it cannot run at all; rank 0 checks each against its own and
// starts the search only when all can.
#include <string>
#include <vector>

#include "common/json_reader.hpp"

namespace livs::search::mpi {

struct RankHello {
  int rank = 0;
  std::string host;
  std::string device;  // the device its lanes train on ("cpu", "cuda:1")
  int lanes = 0;       // evaluations it runs at once (--workers)
  Json data;           // data_fingerprint() of its data files
  std::string error;   // non-empty: it cannot run, and why
};

Json to_json(const RankHello& hello);
RankHello rank_hello_from_json(const Json& json);

// Each data file as this rank sees it: path, size in bytes and SHA-256. Every
// rank reads the data from the same path (a shared filesystem), and a copy
// that differs would make its candidates' numbers incomparable.
Json data_fingerprint(const std::vector<std::string>& paths);

// "" when the two fingerprints match, else what differs, for the error.
std::string fingerprint_difference(const Json& ours, const Json& theirs);

// How a rank's lanes are named in the database and the log: "cuda:1 on node7 (rank 2)".
std::string lane_place(const RankHello& hello);

}  // namespace livs::search::mpi
