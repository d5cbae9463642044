#pragma once
// Rank 0's side of an MPI job: the other ranks as lanes of the executor.
//
// Construction waits for every rank's hello (rank_hello.hpp) and checks it:
// a rank that cannot run (its device, its config, its data) or sees data
// that differs from rank 0's ends the job before any evaluation, with an
// error naming the rank, its host and why; every rank is told to end, so
// none hangs. Once all can run, each is told to start serving.
//
// A remote lane's evaluate function sends the request (with the candidate's
// injected fault, tests only) and polls for the result; when the executor
// cancels the evaluation (a timeout, a stop) it tells the rank, whose
// trainer stops at its next step and sends the cancelled result back. The
// results of all ranks arrive on one tag and are filed by ticket, so a lane
// whose earlier worker thread was abandoned never takes that thread's result.
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "search/lanes.hpp"
#include "search/mpi/mpi_channel.hpp"
#include "search/mpi/rank_hello.hpp"

namespace livs::search::mpi {

class RemoteRanks {
 public:
  // `own` is rank 0's hello (its error, if any, ends the job too).
  RemoteRanks(Channel& channel, const RankHello& own);
  ~RemoteRanks();  // shutdown()
  RemoteRanks(const RemoteRanks&) = delete;
  RemoteRanks& operator=(const RemoteRanks&) = delete;

  const std::vector<RankHello>& ranks() const { return ranks_; }  // every rank's hello, rank 0's first

  // The executor's lanes: rank 0's own (local, on `own.device`) and every
  // other rank's, interleaved by rank so the first evaluations spread over
  // the ranks.
  std::vector<Lane> lanes();

  // Tells every other rank that the search is over; once.
  void shutdown();

 private:
  EvalResult evaluate_on(int rank, const EvalRequest& request);

  Channel& channel_;
  std::vector<RankHello> ranks_;
  bool shut_down_ = false;
  std::mutex results_mutex_;
  int64_t next_ticket_ = 0;
  std::map<int64_t, Json> results_;  // arrived, by ticket, not yet taken
};

}  // namespace livs::search::mpi
