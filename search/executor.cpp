#include "search/executor.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <exception>
#include <mutex>
#include <set>
#include <thread>

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

void run_evaluations(const std::vector<EvaluationJob>& jobs, const EvaluateFunction& evaluate,
                     db::Store& store, int64_t run_id, const ExecutorOptions& options,
                     const std::function<void(std::size_t, const db::EvaluationOutcome&)>& on_finished) {
  if (jobs.empty()) return;
  struct Slot {
    EvalResult result;
    int64_t evaluation_id = 0;
    std::exception_ptr fatal;
  };
  std::vector<Slot> slots(jobs.size());
  std::mutex mutex;
  std::condition_variable done_signal;
  std::deque<std::size_t> done;
  std::vector<std::thread> threads;
  std::set<std::size_t> in_flight;
  std::exception_ptr fatal;
  const std::size_t workers = static_cast<std::size_t>(std::max(1, options.workers));
  auto stop_requested = [&] { return options.stop_requested && options.stop_requested(); };

  auto worker = [&](std::size_t s) {
    try {
      slots[s].result = evaluate(jobs[s].request);
    } catch (const InputError&) {
      slots[s].fatal = std::current_exception();  // a bad config fails every candidate: stop the search
    } catch (const std::exception& e) {
      slots[s].result = EvalResult{EvalStatus::failed, {}, e.what(), jobs[s].request.device, 0.0};
    } catch (...) {
      slots[s].fatal = std::current_exception();  // not an evaluation failure: let it end the search
    }
    std::lock_guard lock(mutex);
    done.push_back(s);
    done_signal.notify_one();
  };

  std::size_t next = 0, finished = 0;
  try {
    while (finished < jobs.size()) {
      const bool stopping = fatal || stop_requested();
      while (in_flight.size() < workers && next < jobs.size() && !stopping) {
        const auto& request = jobs[next].request;
        slots[next].evaluation_id =
            store.begin_evaluation({run_id, request.genome_hash, jobs[next].generation, request.fidelity,
                                    request.device, request.seed});
        in_flight.insert(next);
        threads.emplace_back(worker, next);
        ++next;
      }
      if (in_flight.empty()) break;  // stopping and nothing left running
      std::size_t s;
      {
        std::unique_lock lock(mutex);
        const auto wait = std::chrono::duration<double>(options.heartbeat_seconds);
        if (!done_signal.wait_for(lock, wait, [&] { return !done.empty(); })) {
          lock.unlock();
          for (auto f : in_flight) store.heartbeat(slots[f].evaluation_id);
          continue;
        }
        s = done.front();
        done.pop_front();
      }
      in_flight.erase(s);
      ++finished;
      if (slots[s].fatal) {
        fatal = slots[s].fatal;
        continue;
      }
      const auto& result = slots[s].result;
      db::EvaluationOutcome outcome;
      outcome.status =
          result.status == EvalStatus::ok ? db::EvaluationStatus::ok : db::EvaluationStatus::failed;
      for (const auto& [name, value] : result.metrics) outcome.metrics[name] = {value, metric_unit(name)};
      outcome.error = result.error;
      outcome.wall_seconds = result.wall_seconds;
      store.finish_evaluation(slots[s].evaluation_id, outcome);
      // The outcome goes on through the database's representation (NaN and
      // infinity included), so this run and a resumed one see identical numbers.
      on_finished(s, outcome);
      if (options.log)
        options.log("  [" + std::to_string(finished) + "/" + std::to_string(jobs.size()) + "] " +
                    jobs[s].summary + ": " + result_text(result));
    }
  } catch (...) {
    for (auto& t : threads) t.join();
    throw;
  }
  for (auto& t : threads) t.join();
  if (fatal) std::rethrow_exception(fatal);
  if (finished < jobs.size()) throw SearchStopped{};
}

}  // namespace livs::search
