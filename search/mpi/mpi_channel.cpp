#include "search/mpi/mpi_channel.hpp"

#include <mpi.h>

#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <thread>

namespace livs::search::mpi {

namespace {

void check(int code, const char* what) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw std::runtime_error(std::string("MPI: ") + what + ": " +
                           std::string(text, static_cast<std::size_t>(length)));
}

}  // namespace

int any_source() { return MPI_ANY_SOURCE; }
int any_tag() { return MPI_ANY_TAG; }

Channel::Channel() {
  int provided = 0;
  check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided), "MPI_Init_thread");
  if (provided < MPI_THREAD_SERIALIZED) {
    MPI_Finalize();
    throw std::runtime_error(
        "MPI: this MPI library does not allow calls from several threads one at a time "
        "(MPI_THREAD_SERIALIZED), which --mpi needs");
  }
  // Errors come back as codes (turned into exceptions) instead of aborting
  // the job from inside a call.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  check(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
  check(MPI_Comm_size(MPI_COMM_WORLD, &size_), "MPI_Comm_size");
  MPI_Comm node;
  check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node),
        "MPI_Comm_split_type");
  check(MPI_Comm_rank(node, &local_rank_), "MPI_Comm_rank");
  MPI_Comm_free(&node);
  char name[MPI_MAX_PROCESSOR_NAME];
  int length = 0;
  check(MPI_Get_processor_name(name, &length), "MPI_Get_processor_name");
  host_.assign(name, static_cast<std::size_t>(length));
}

Channel::~Channel() {
  std::lock_guard lock(mutex_);
  closed_ = true;
  MPI_Finalize();
}

void Channel::send(int destination, int tag, const Json& body) {
  const std::string text = body.dump();
  MPI_Request request;
  {
    std::lock_guard lock(mutex_);
    if (closed_) throw std::runtime_error("MPI: the channel is closed");
    check(MPI_Isend(text.data(), static_cast<int>(text.size()), MPI_CHAR, destination, tag, MPI_COMM_WORLD,
                    &request),
          "MPI_Isend");
  }
  // Completed by polling, the mutex released in between: a large message
  // that waits for its receiver must not keep this process's other threads
  // (or its own receives) out of MPI, or two ranks sending to each other
  // would wait for ever.
  while (true) {
    {
      std::lock_guard lock(mutex_);
      int done = 0;
      check(MPI_Test(&request, &done, MPI_STATUS_IGNORE), "MPI_Test");
      if (done) return;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

std::optional<Message> Channel::try_receive(int source, int tag) {
  std::string text;
  Message message;
  {
    std::lock_guard lock(mutex_);
    if (closed_) return std::nullopt;
    int waiting = 0;
    MPI_Status status;
    check(MPI_Iprobe(source, tag, MPI_COMM_WORLD, &waiting, &status), "MPI_Iprobe");
    if (!waiting) return std::nullopt;
    int count = 0;
    check(MPI_Get_count(&status, MPI_CHAR, &count), "MPI_Get_count");
    text.resize(static_cast<std::size_t>(count));
    check(MPI_Recv(text.data(), count, MPI_CHAR, status.MPI_SOURCE, status.MPI_TAG, MPI_COMM_WORLD,
                   MPI_STATUS_IGNORE),
          "MPI_Recv");
    message.source = status.MPI_SOURCE;
    message.tag = status.MPI_TAG;
  }
  message.body = Json::parse(text);  // our own peer wrote it: malformed text is a bug, not input
  return message;
}

Message Channel::receive(int source, int tag) {
  while (true) {
    if (auto message = try_receive(source, tag)) return std::move(*message);
    {
      std::lock_guard lock(mutex_);
      if (closed_) throw std::runtime_error("MPI: the channel is closed");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

void Channel::abort(int exit_code) {
  MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::_Exit(exit_code);  // MPI_Abort does not return; this is for the compiler
}

}  // namespace livs::search::mpi
