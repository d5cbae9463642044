#include "search/executor.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

#include "common/candidate_control.hpp"
#include "common/format_number.hpp"
#include "common/input_error.hpp"
#include "common/objective_catalogue.hpp"

namespace livs::search {

// Registered objectives carry their unit in the catalogue (common/); the
// suffix rules cover metrics outside it.
std::string metric_unit(const std::string& metric) {
  if (const auto* info = find_objective(metric)) return std::string(info->unit);
  auto ends_with = [&](const std::string& suffix) {
    return metric.size() >= suffix.size() &&
           metric.compare(metric.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (ends_with("_bytes") || metric == "peak_memory") return "bytes";
  if (ends_with("_ms")) return "ms";
  if (metric == "params" || metric == "flops" || ends_with("params_total") || ends_with("flops_total"))
    return "count";
  return "";
}

namespace {

std::string result_text(const EvalResult& result) {
  if (result.status != EvalStatus::ok) return "failed: " + result.error;
  std::string text;
  for (const auto& [name, value] : result.metrics) {
    char number[64];
    std::snprintf(number, sizeof number, "%.4g", value);
    text += (text.empty() ? "" : ", ") + name + " " + number;
  }
  return text;
}

}  // namespace

namespace {

std::atomic<int> abandoned_worker_count{0};
// Evaluations this process started, for the fault plan's #N selectors.
std::atomic<int64_t> evaluations_started{0};

using Clock = std::chrono::steady_clock;

// One evaluation in flight. Shared with its worker thread, so an abandoned
// worker still writes into live memory after run_evaluations returned.
struct Slot {
  EvaluationJob job;
  std::size_t lane = 0;  // the lane it holds until it returns or is abandoned
  EvalResult result;
  int64_t evaluation_id = 0;
  std::exception_ptr fatal;
  std::shared_ptr<CandidateControl> control;
  std::thread thread;
  Clock::time_point deadline = Clock::time_point::max();    // the timeout; max(): none
  Clock::time_point abandon_at = Clock::time_point::max();  // set once cancelled
  double grace_seconds = 0.0;                               // how long it had to return once cancelled
  std::string timeout_reason;   // set when the watchdog cancelled it for its timeout
  bool stop_cancelled = false;  // cancelled because the run was stopped
};

// What the workers share with the executor's thread.
struct Mailbox {
  std::mutex mutex;
  std::condition_variable signal;
  std::deque<std::shared_ptr<Slot>> done;
};

// The worker's body. Everything it touches is owned through shared
// pointers, never the executor's stack.
void run_worker(std::shared_ptr<Slot> slot, std::shared_ptr<const EvaluateFunction> evaluate,
                std::shared_ptr<Mailbox> mailbox) {
  {
    ScopedCandidateControl control(slot->control);
    slot->result = evaluate_guarded(*evaluate, slot->job.request, slot->fatal);
  }
  std::lock_guard lock(mailbox->mutex);
  mailbox->done.push_back(std::move(slot));
  mailbox->signal.notify_one();
}

double grace_seconds(const ExecutorOptions& options, double timeout) {
  if (options.abandon_grace_seconds >= 0) return options.abandon_grace_seconds;
  return std::min(60.0, std::max(5.0, timeout / 10));
}

Clock::time_point after(double seconds) {
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

}  // namespace

int abandoned_workers() { return abandoned_worker_count.load(); }

EvalResult evaluate_guarded(const EvaluateFunction& evaluate, const EvalRequest& request,
                            std::exception_ptr& fatal) {
  try {
    if (injected_fault() == InjectedFault::throw_) throw std::runtime_error("injected fault: evaluate threw");
    return evaluate(request);
  } catch (const InputError&) {
    fatal = std::current_exception();  // a bad config fails every candidate: stop the search
  } catch (const std::exception& e) {
    return failed_evaluation(e.what(), request.device);
  } catch (...) {
    fatal = std::current_exception();  // not an evaluation failure: let it end the search
  }
  return failed_evaluation("", request.device);
}

int lane_count(const ExecutorOptions& options) {
  return options.lanes.empty() ? std::max(1, options.workers) : static_cast<int>(options.lanes.size());
}

void run_evaluations(const JobSource& source, const EvaluateFunction& evaluate_function, db::Store& store,
                     int64_t run_id, const ExecutorOptions& options) {
  const auto evaluate = std::make_shared<const EvaluateFunction>(evaluate_function);
  // Each lane's evaluate function (its own, or the executor's); a lane with
  // no device runs each request on its own device.
  std::vector<Lane> lanes = options.lanes;
  if (lanes.empty()) lanes.assign(static_cast<std::size_t>(lane_count(options)), Lane{});
  std::vector<std::shared_ptr<const EvaluateFunction>> lane_evaluate;
  for (const auto& lane : lanes)
    lane_evaluate.push_back(lane.evaluate ? std::make_shared<const EvaluateFunction>(lane.evaluate)
                                          : evaluate);
  const auto mailbox = std::make_shared<Mailbox>();
  std::vector<std::shared_ptr<Slot>> in_flight;
  // A lane is free when no evaluation in flight holds it (an abandoned one
  // has left in_flight, so its lane takes new work).
  const auto free_lane = [&]() -> std::optional<std::size_t> {
    for (std::size_t i = 0; i < lanes.size(); ++i)
      if (std::none_of(in_flight.begin(), in_flight.end(), [&](const auto& slot) { return slot->lane == i; }))
        return i;
    return std::nullopt;
  };
  std::vector<std::shared_ptr<Slot>> joinable;  // workers that returned, or run: joined at the end
  std::exception_ptr fatal;
  auto stop_requested = [&] { return options.stop_requested && options.stop_requested(); };
  // The watchdog and the stop poll wake the loop at least this often.
  constexpr auto kPoll = std::chrono::milliseconds(100);
  const auto heartbeat_every =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options.heartbeat_seconds));
  auto next_heartbeat = Clock::now() + heartbeat_every;

  // Records a job's outcome and reports it to the source.
  std::size_t finished = 0;
  auto record = [&](Slot& slot, const EvalResult& result) {
    db::EvaluationOutcome outcome;
    outcome.status =
        result.status == EvalStatus::ok ? db::EvaluationStatus::ok : db::EvaluationStatus::failed;
    for (const auto& [name, value] : result.metrics) outcome.metrics[name] = {value, metric_unit(name)};
    outcome.error = result.error;
    outcome.wall_seconds = result.wall_seconds;
    store.finish_evaluation(slot.evaluation_id, outcome);
    if (options.timeout && result.status == EvalStatus::ok)
      options.timeout->observe(slot.job.request.fidelity, result.wall_seconds);
    // The outcome goes on through the database's representation (NaN and
    // infinity included), so this run and a resumed one see identical numbers.
    source.finished(slot.job, outcome);
    if (options.log) {
      std::string count = std::to_string(finished);
      if (source.known_total > 0) {
        count += '/';  // appended piecewise: GCC 12 warns (-Wrestrict) on "/" + std::string
        count += std::to_string(source.known_total);
      }
      options.log("  [" + count + "] " + slot.job.summary + ": " + result_text(result));
    }
  };

  bool stopped = false;
  auto cancel_all_for_stop = [&] {
    for (auto& slot : in_flight) {
      if (slot->control->cancelled()) continue;
      slot->stop_cancelled = true;
      slot->control->cancel("the run was stopped");
      slot->grace_seconds = grace_seconds(options, 0);
      slot->abandon_at = after(slot->grace_seconds);
    }
  };

  // Cancels what ran past its timeout, abandons what did not stop within
  // its grace after being cancelled, and keeps the heartbeats going.
  auto watchdog = [&] {
    const auto now = Clock::now();
    for (std::size_t i = 0; i < in_flight.size(); ++i) {
      Slot& s = *in_flight[i];
      if (!s.control->cancelled() && now >= s.deadline) {
        const double fidelity = s.job.request.fidelity;
        s.timeout_reason = "timeout: ran longer than ";  // piecewise: GCC 12 -Wrestrict on "x" + std::string
        s.timeout_reason += options.timeout->describe(fidelity);
        s.control->cancel(s.timeout_reason);
        s.grace_seconds = grace_seconds(options, options.timeout->seconds_for(fidelity));
        s.abandon_at = after(s.grace_seconds);
      } else if (s.control->cancelled() && now >= s.abandon_at) {
        auto abandoned = in_flight[i];
        in_flight.erase(in_flight.begin() + std::ptrdiff_t(i));  // its thread goes on alone
        --i;
        abandoned->thread.detach();
        abandoned_worker_count.fetch_add(1);
        ++finished;
        std::string why = " and did not stop within ";
        why += format_number(abandoned->grace_seconds);
        why += " s of being cancelled; its worker thread was abandoned";
        if (!abandoned->stop_cancelled) {  // a stopped one stays running: marked interrupted at the end
          record(*abandoned,
                 failed_evaluation(abandoned->timeout_reason + why, abandoned->job.request.device));
        }
      }
    }
    if (now >= next_heartbeat) {
      for (const auto& f : in_flight) store.heartbeat(f->evaluation_id);
      next_heartbeat = now + heartbeat_every;
    }
  };

  try {
    while (true) {
      if (!stopped && stop_requested()) {
        stopped = true;
        cancel_all_for_stop();
      }
      while (!fatal && !stopped) {
        const auto lane = free_lane();
        if (!lane) break;
        auto job = source.next();
        if (!job) break;
        auto slot = std::make_shared<Slot>();
        slot->job = std::move(*job);
        slot->lane = *lane;
        if (!lanes[*lane].device.empty()) slot->job.request.device = lanes[*lane].device;
        const auto& request = slot->job.request;
        const std::string& where = lanes[*lane].where.empty() ? request.device : lanes[*lane].where;
        const int64_t index = evaluations_started.fetch_add(1);
        slot->control = std::make_shared<CandidateControl>(
            options.faults ? options.faults->fault_for(index, request.genome_hash) : InjectedFault::none);
        slot->evaluation_id = store.begin_evaluation(
            {run_id, request.genome_hash, slot->job.generation, request.fidelity, where, request.seed});
        if (options.timeout) {
          const double limit = options.timeout->seconds_for(request.fidelity);
          if (limit > 0) slot->deadline = after(limit);
        }
        slot->thread = std::thread(run_worker, slot, lane_evaluate[*lane], mailbox);
        in_flight.push_back(slot);
      }
      if (in_flight.empty()) break;  // the source is done, or stopping with nothing left running

      std::shared_ptr<Slot> slot;
      {
        std::unique_lock lock(mailbox->mutex);
        mailbox->signal.wait_for(lock, kPoll, [&] { return !mailbox->done.empty(); });
        if (!mailbox->done.empty()) {
          slot = std::move(mailbox->done.front());
          mailbox->done.pop_front();
        }
      }
      watchdog();
      if (!slot) continue;
      const auto position = std::find(in_flight.begin(), in_flight.end(), slot);
      if (position == in_flight.end()) continue;  // an abandoned worker came back late: already recorded
      in_flight.erase(position);
      joinable.push_back(slot);
      ++finished;
      if (slot->fatal) {
        fatal = slot->fatal;
        continue;
      }
      EvalResult result = slot->result;
      // Cut short by the stop, not the candidate's failure: it stays running
      // and is marked interrupted below, to run again on resume.
      if (result.status != EvalStatus::ok && slot->stop_cancelled) continue;
      // A result that arrived after the cancellation is kept if it is a
      // success (it finished); a failure then is the timeout's.
      if (result.status != EvalStatus::ok && !slot->timeout_reason.empty())
        result.error = slot->timeout_reason;
      record(*slot, result);
    }
  } catch (...) {
    // The run ends with an error (a database write failed, ...): the
    // evaluations in flight are cancelled and given their grace to return;
    // one that does not is abandoned rather than waited for for ever.
    for (auto& f : in_flight) f->control->cancel("the search ended with an error");
    const auto give_up = after(grace_seconds(options, 0));
    {
      std::unique_lock lock(mailbox->mutex);
      auto returned = [&](const std::shared_ptr<Slot>& f) {
        return std::find(mailbox->done.begin(), mailbox->done.end(), f) != mailbox->done.end();
      };
      mailbox->signal.wait_until(lock, give_up,
                                 [&] { return std::all_of(in_flight.begin(), in_flight.end(), returned); });
    }
    std::lock_guard lock(mailbox->mutex);
    for (auto& f : in_flight) {
      if (std::find(mailbox->done.begin(), mailbox->done.end(), f) != mailbox->done.end()) {
        f->thread.join();
      } else {
        f->thread.detach();
        abandoned_worker_count.fetch_add(1);
      }
    }
    for (auto& f : joinable) f->thread.join();
    throw;
  }
  for (auto& f : joinable) f->thread.join();
  if (fatal) std::rethrow_exception(fatal);
  if (stopped) {
    // One writer: every evaluation of the run still running is one of ours.
    store.mark_running_interrupted(run_id);
    throw SearchStopped{};
  }
}

void run_evaluations(const std::vector<EvaluationJob>& jobs, const EvaluateFunction& evaluate,
                     db::Store& store, int64_t run_id, const ExecutorOptions& options,
                     const std::function<void(std::size_t, const db::EvaluationOutcome&)>& on_finished) {
  if (jobs.empty()) return;
  std::size_t next = 0;
  JobSource source;
  source.known_total = jobs.size();
  source.next = [&]() -> std::optional<EvaluationJob> {
    if (next == jobs.size()) return std::nullopt;
    EvaluationJob job = jobs[next];
    job.tag = next++;
    return job;
  };
  source.finished = [&](const EvaluationJob& job, const db::EvaluationOutcome& outcome) {
    on_finished(job.tag, outcome);
  };
  run_evaluations(source, evaluate, store, run_id, options);
}

}  // namespace livs::search
