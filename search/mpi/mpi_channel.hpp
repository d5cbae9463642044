#pragma once
// This process's place in an MPI job (`livsearch search --mpi`) and the
// messages it exchanges: JSON text, one message per MPI message, on
// MPI_COMM_WORLD. Every MPI call of the process goes through one channel
// under one mutex (MPI_THREAD_SERIALIZED is all it asks of the library): on
// rank 0 each remote lane's worker thread sends and polls for itself; on the
// other ranks only the serving loop calls MPI.
//
// Receiving polls (MPI_Iprobe, then a short sleep in the caller) rather than
// blocking, so a thread waiting for a result can also notice that its
// evaluation was cancelled, and no thread ever sits inside MPI holding the
// mutex.
#include <mutex>
#include <optional>
#include <string>

#include "common/json_reader.hpp"

namespace livs::search::mpi {

// Message tags.
enum Tag : int {
  kHelloTag = 1,     // rank r -> 0: what the rank can run, or why it cannot (rank_hello.hpp)
  kStartTag = 2,     // 0 -> r: {"ok": true} to serve, or {"ok": false} to end
  kRequestTag = 3,   // 0 -> r: {"ticket", "request", "fault"}
  kCancelTag = 4,    // 0 -> r: {"ticket", "reason"}
  kShutdownTag = 5,  // 0 -> r: the search is over
  kResultTag = 6,    // r -> 0: {"ticket", "result"} or {"ticket", "fatal"}
};

struct Message {
  int source = 0;
  int tag = 0;
  Json body;
};

class Channel {
 public:
  // MPI_Init_thread; throws std::runtime_error when the library cannot give
  // MPI_THREAD_SERIALIZED. One channel per process, for the process's life.
  Channel();
  ~Channel();  // MPI_Finalize
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  // This rank's index among the ranks of its node (MPI_COMM_TYPE_SHARED):
  // which of the node's GPUs it takes.
  int local_rank() const { return local_rank_; }
  const std::string& host() const { return host_; }

  void send(int destination, int tag, const Json& body);
  // A waiting message from `source` with `tag` (MPI_ANY_SOURCE / MPI_ANY_TAG
  // allowed), taken off the queue; nullopt when none is waiting, or once the
  // channel is closed.
  std::optional<Message> try_receive(int source, int tag);
  // Blocks (polling) until such a message arrives.
  Message receive(int source, int tag);

  // Ends the job from any rank, as MPI_Abort does, after the message is out.
  [[noreturn]] void abort(int exit_code);

 private:
  std::mutex mutex_;
  bool closed_ = false;
  int rank_ = 0;
  int size_ = 1;
  int local_rank_ = 0;
  std::string host_;
};

// MPI's wildcards, without including mpi.h in callers.
int any_source();
int any_tag();

}  // namespace livs::search::mpi
