#include "search/mpi/evaluation_server.hpp"

#include <chrono>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common/candidate_control.hpp"
#include "common/fault_injection.hpp"
#include "search/executor.hpp"

namespace livs::search::mpi {

namespace {

using Clock = std::chrono::steady_clock;

// One request being evaluated. Shared with its thread, which may outlive the
// loop when it is stuck and abandoned.
struct Evaluation {
  int64_t ticket = 0;
  std::shared_ptr<CandidateControl> control;
  std::thread thread;
  Json reply;  // set by the thread before it reports done
};

struct Finished {
  std::mutex mutex;
  std::deque<std::shared_ptr<Evaluation>> done;
};

void evaluate_one(std::shared_ptr<Evaluation> evaluation, EvalRequest request,
                  std::shared_ptr<const EvaluateFunction> evaluate, std::shared_ptr<Finished> finished) {
  std::exception_ptr fatal;
  EvalResult result;
  {
    ScopedCandidateControl scope(evaluation->control);
    result = evaluate_guarded(*evaluate, request, fatal);
  }
  evaluation->reply = Json{{"ticket", evaluation->ticket}};
  if (fatal) {
    std::string what = "an evaluation failed with an unknown exception";
    try {
      std::rethrow_exception(fatal);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    evaluation->reply["fatal"] = what;
  } else {
    evaluation->reply["result"] = to_json(result);
  }
  std::lock_guard lock(finished->mutex);
  finished->done.push_back(std::move(evaluation));
}

}  // namespace

ServeSummary serve_evaluations(Channel& channel, const EvaluateFunction& evaluate_function) {
  const auto evaluate = std::make_shared<const EvaluateFunction>(evaluate_function);
  const auto finished = std::make_shared<Finished>();
  std::vector<std::shared_ptr<Evaluation>> running;
  ServeSummary summary;

  // The evaluations that returned since the last call, their threads joined.
  auto take_finished = [&] {
    std::deque<std::shared_ptr<Evaluation>> done;
    {
      std::lock_guard lock(finished->mutex);
      done.swap(finished->done);
    }
    for (auto& evaluation : done) {
      evaluation->thread.join();
      std::erase(running, evaluation);
    }
    return done;
  };
  // Sends what finished; false when nothing had.
  auto send_finished = [&] {
    const auto done = take_finished();
    for (const auto& evaluation : done) {
      channel.send(0, kResultTag, evaluation->reply);
      ++summary.evaluated;
    }
    return !done.empty();
  };

  while (true) {
    const bool sent = send_finished();
    auto message = channel.try_receive(0, any_tag());
    if (!message) {
      if (!sent) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      continue;
    }
    if (message->tag == kShutdownTag) break;
    if (message->tag == kRequestTag) {
      auto evaluation = std::make_shared<Evaluation>();
      evaluation->ticket = message->body.at("ticket").get<int64_t>();
      evaluation->control = std::make_shared<CandidateControl>(
          injected_fault_named(message->body.at("fault").get<std::string>()));
      running.push_back(evaluation);
      evaluation->thread = std::thread(
          evaluate_one, evaluation, eval_request_from_json(message->body.at("request")), evaluate, finished);
    } else if (message->tag == kCancelTag) {
      const int64_t ticket = message->body.at("ticket").get<int64_t>();
      for (auto& evaluation : running)
        if (evaluation->ticket == ticket)
          evaluation->control->cancel(message->body.at("reason").get<std::string>());
    }
  }

  // Rank 0 is done: what still runs is no longer wanted. It gets a few
  // seconds to notice its cancellation; one that does not is abandoned.
  for (auto& evaluation : running) evaluation->control->cancel("the search is over");
  const auto give_up = Clock::now() + std::chrono::seconds(5);
  while (!running.empty() && Clock::now() < give_up) {
    take_finished();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (auto& evaluation : running) {
    evaluation->thread.detach();
    ++summary.abandoned;
  }
  return summary;
}

}  // namespace livs::search::mpi
