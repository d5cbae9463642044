#include "search/mpi/remote_ranks.hpp"

#include <algorithm>
#include <chrono>
#include <thread>

#include "common/candidate_control.hpp"
#include "common/input_error.hpp"

namespace livs::search::mpi {

namespace {

std::string rank_name(const RankHello& hello) {
  return "rank " + std::to_string(hello.rank) + " on " + hello.host;
}

}  // namespace

RemoteRanks::RemoteRanks(Channel& channel, const RankHello& own) : channel_(channel) {
  ranks_.resize(static_cast<std::size_t>(channel.size()));
  ranks_[0] = own;
  for (int received = 1; received < channel.size(); ++received) {
    const Message message = channel.receive(any_source(), kHelloTag);
    RankHello hello = rank_hello_from_json(message.body);
    hello.rank = message.source;
    ranks_.at(static_cast<std::size_t>(message.source)) = std::move(hello);
  }
  // The first problem, in rank order: rank 0's own, then each rank's.
  std::string problem;
  for (const auto& hello : ranks_) {
    if (!problem.empty()) break;
    if (!hello.error.empty())
      problem = rank_name(hello) + ": " + hello.error;
    else if (hello.rank != 0)
      if (const auto difference = fingerprint_difference(own.data, hello.data); !difference.empty())
        problem = rank_name(hello) + ": " + difference;
  }
  for (int r = 1; r < channel.size(); ++r) channel.send(r, kStartTag, Json{{"ok", problem.empty()}});
  if (!problem.empty()) {
    shut_down_ = true;
    throw InputError("--mpi", "", problem);
  }
}

RemoteRanks::~RemoteRanks() {
  try {
    shutdown();
  } catch (...) {
    // The job is ending with another error; the ranks end with MPI_Finalize's.
  }
}

void RemoteRanks::shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  for (int r = 1; r < channel_.size(); ++r) channel_.send(r, kShutdownTag, Json::object());
}

std::vector<Lane> RemoteRanks::lanes() {
  std::vector<Lane> lanes;
  int most = 0;
  for (const auto& hello : ranks_) most = std::max(most, hello.lanes);
  for (int w = 0; w < most; ++w) {
    for (const auto& hello : ranks_) {
      if (w >= hello.lanes) continue;
      Lane lane{hello.device, lane_place(hello), {}};
      if (hello.rank != 0) {
        lane.evaluate = [this, rank = hello.rank](const EvalRequest& request) {
          return evaluate_on(rank, request);
        };
      }
      lanes.push_back(std::move(lane));
    }
  }
  return lanes;
}

EvalResult RemoteRanks::evaluate_on(int rank, const EvalRequest& request) {
  const CandidateControl* control = current_candidate_control();
  int64_t ticket = 0;
  {
    std::lock_guard lock(results_mutex_);
    ticket = next_ticket_++;
  }
  channel_.send(rank, kRequestTag,
                Json{{"ticket", ticket},
                     {"request", to_json(request)},
                     {"fault", to_string(control ? control->fault() : InjectedFault::none)}});
  bool cancel_sent = false;
  while (true) {
    // Any thread that finds a result files it; each takes its own.
    if (auto message = channel_.try_receive(any_source(), kResultTag)) {
      const int64_t arrived = message->body.at("ticket").get<int64_t>();
      std::lock_guard lock(results_mutex_);
      results_[arrived] = std::move(message->body);
    }
    {
      std::lock_guard lock(results_mutex_);
      if (const auto found = results_.find(ticket); found != results_.end()) {
        const Json body = std::move(found->second);
        results_.erase(found);
        if (body.contains("fatal"))
          throw InputError("rank " + std::to_string(rank), "", body.at("fatal").get<std::string>());
        return eval_result_from_json(body.at("result"));
      }
    }
    if (control && control->cancelled() && !cancel_sent) {
      channel_.send(rank, kCancelTag, Json{{"ticket", ticket}, {"reason", control->reason()}});
      cancel_sent = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

}  // namespace livs::search::mpi
