#include "search/executor.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <exception>
#include <memory>
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

void run_evaluations(const JobSource& source, const EvaluateFunction& evaluate, db::Store& store,
                     int64_t run_id, const ExecutorOptions& options) {
  // Each slot lives on the heap so a worker's pointer stays valid while the
  // list of slots grows.
  struct Slot {
    EvaluationJob job;
    EvalResult result;
    int64_t evaluation_id = 0;
    std::exception_ptr fatal;
  };
  std::vector<std::unique_ptr<Slot>> slots;
  std::mutex mutex;
  std::condition_variable done_signal;
  std::deque<Slot*> done;
  std::vector<std::thread> threads;
  std::set<Slot*> in_flight;
  std::exception_ptr fatal;
  const std::size_t workers = static_cast<std::size_t>(std::max(1, options.workers));
  auto stop_requested = [&] { return options.stop_requested && options.stop_requested(); };

  auto worker = [&](Slot* slot) {
    try {
      slot->result = evaluate(slot->job.request);
    } catch (const InputError&) {
      slot->fatal = std::current_exception();  // a bad config fails every candidate: stop the search
    } catch (const std::exception& e) {
      slot->result = EvalResult{EvalStatus::failed, {}, e.what(), slot->job.request.device, 0.0};
    } catch (...) {
      slot->fatal = std::current_exception();  // not an evaluation failure: let it end the search
    }
    std::lock_guard lock(mutex);
    done.push_back(slot);
    done_signal.notify_one();
  };

  std::size_t finished = 0;
  bool stopped = false;
  try {
    while (true) {
      while (in_flight.size() < workers && !fatal && !stopped) {
        if (stop_requested()) {
          stopped = true;
          break;
        }
        auto job = source.next();
        if (!job) break;
        slots.push_back(std::make_unique<Slot>());
        Slot* slot = slots.back().get();
        slot->job = std::move(*job);
        const auto& request = slot->job.request;
        slot->evaluation_id = store.begin_evaluation({run_id, request.genome_hash, slot->job.generation,
                                                      request.fidelity, request.device, request.seed});
        in_flight.insert(slot);
        threads.emplace_back(worker, slot);
      }
      if (in_flight.empty()) break;  // the source is done, or stopping with nothing left running
      Slot* slot = nullptr;
      {
        std::unique_lock lock(mutex);
        const auto wait = std::chrono::duration<double>(options.heartbeat_seconds);
        if (!done_signal.wait_for(lock, wait, [&] { return !done.empty(); })) {
          lock.unlock();
          for (auto* f : in_flight) store.heartbeat(f->evaluation_id);
          continue;
        }
        slot = done.front();
        done.pop_front();
      }
      in_flight.erase(slot);
      ++finished;
      if (slot->fatal) {
        fatal = slot->fatal;
        continue;
      }
      const auto& result = slot->result;
      db::EvaluationOutcome outcome;
      outcome.status =
          result.status == EvalStatus::ok ? db::EvaluationStatus::ok : db::EvaluationStatus::failed;
      for (const auto& [name, value] : result.metrics) outcome.metrics[name] = {value, metric_unit(name)};
      outcome.error = result.error;
      outcome.wall_seconds = result.wall_seconds;
      store.finish_evaluation(slot->evaluation_id, outcome);
      // The outcome goes on through the database's representation (NaN and
      // infinity included), so this run and a resumed one see identical numbers.
      source.finished(slot->job, outcome);
      if (options.log) {
        std::string count = std::to_string(finished);
        if (source.known_total > 0) {
          count += '/';  // appended piecewise: GCC 12 warns (-Wrestrict) on "/" + std::string
          count += std::to_string(source.known_total);
        }
        options.log("  [" + count + "] " + slot->job.summary + ": " + result_text(result));
      }
    }
  } catch (...) {
    for (auto& t : threads) t.join();
    throw;
  }
  for (auto& t : threads) t.join();
  if (fatal) std::rethrow_exception(fatal);
  if (stopped) throw SearchStopped{};
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
