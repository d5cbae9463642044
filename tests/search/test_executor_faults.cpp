// The executor keeps a candidate's fault the candidate's: an exception, an
// injected fault, a hang that polls its cancellation flag and a thread stuck
// where it cannot poll are each recorded as a failed evaluation with its
// reason, and the other evaluations run on. A stop cancels what is in flight
// and leaves it to run again on resume.
#include <doctest/doctest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include "common/candidate_control.hpp"
#include "common/fault_injection.hpp"
#include "search/executor.hpp"
#include "search/executor_test_support.hpp"

using namespace livs;
using namespace livs::search;

namespace {

// An evaluation that trains for a few "steps", polling its cancellation
// flag as the trainer does; genome "aaaa<hang>" never finishes on its own.
EvalResult polling_evaluation(const EvalRequest& request, const std::string& hanging_hash) {
  for (int step = 0; step < 5 || request.genome_hash == hanging_hash; ++step) {
    throw_if_cancelled();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EvalResult result;
  result.metrics["perplexity"] = 10.0 + double(request.seed);
  result.wall_seconds = 0.01;
  return result;
}

std::map<std::string, db::EvaluationRecord> by_hash(const db::Store& store, int64_t run_id) {
  std::map<std::string, db::EvaluationRecord> out;
  for (const auto& e : store.evaluations(run_id)) out[e.genome_hash] = e;
  return out;
}

}  // namespace

TEST_CASE(
    "a hung candidate is cancelled at its timeout, recorded as failed with reason timeout, and the rest "
    "run") {
  TempStore temp("timeout");
  ExecutorOptions options;
  options.workers = 2;
  options.timeout = std::make_shared<CandidateTimeout>(0.3);
  std::vector<std::string> finished;
  run_evaluations(
      jobs(*temp.store, 4), [](const EvalRequest& r) { return polling_evaluation(r, "aaaa1"); }, *temp.store,
      temp.run_id, options,
      [&](std::size_t i, const db::EvaluationOutcome&) { finished.push_back(std::to_string(i)); });
  CHECK(finished.size() == 4);
  const auto records = by_hash(*temp.store, temp.run_id);
  REQUIRE(records.size() == 4);
  CHECK(records.at("aaaa1").status == db::EvaluationStatus::failed);
  CHECK(records.at("aaaa1").error.rfind("timeout: ran longer than search.candidate_timeout 0.3 s", 0) == 0);
  for (const char* ok : {"aaaa0", "aaaa2", "aaaa3"}) {
    CAPTURE(ok);
    CHECK(records.at(ok).status == db::EvaluationStatus::ok);
  }
}

TEST_CASE("a worker stuck where it cannot poll is abandoned after its grace and the run completes") {
  TempStore temp("stuck");
  std::atomic<bool> release{false}, returned{false};
  ExecutorOptions options;
  options.workers = 1;
  options.timeout = std::make_shared<CandidateTimeout>(0.2);
  options.abandon_grace_seconds = 0.2;
  const int abandoned_before = abandoned_workers();
  std::size_t finished = 0;
  run_evaluations(
      jobs(*temp.store, 3),
      [&](const EvalRequest& r) {
        if (r.genome_hash == "aaaa0") {  // ignores its cancellation flag, as a kernel that never returns
          while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(5));
          returned = true;
          throw std::runtime_error("released");
        }
        return polling_evaluation(r, "");
      },
      *temp.store, temp.run_id, options, [&](std::size_t, const db::EvaluationOutcome&) { ++finished; });
  CHECK(finished == 3);
  CHECK(abandoned_workers() == abandoned_before + 1);
  const auto records = by_hash(*temp.store, temp.run_id);
  CHECK(records.at("aaaa0").status == db::EvaluationStatus::failed);
  CHECK(records.at("aaaa0").error.find("timeout: ran longer than") == 0);
  CHECK(records.at("aaaa0").error.find("its worker thread was abandoned") != std::string::npos);
  CHECK(records.at("aaaa1").status == db::EvaluationStatus::ok);
  CHECK(records.at("aaaa2").status == db::EvaluationStatus::ok);
  // The abandoned thread still runs on memory it owns; let it end so the
  // test process exits cleanly.
  release = true;
  while (!returned) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
}

TEST_CASE("injected faults from a fault plan fail only their candidates, each with its reason") {
  TempStore temp("inject");
  ExecutorOptions options;
  options.workers = 1;
  options.timeout = std::make_shared<CandidateTimeout>(0.3);
  // Indices count every evaluation this process started; select by hash.
  options.faults = std::make_shared<const FaultPlan>(FaultPlan::parse("aaaa1:throw,aaaa3:hang", "test"));
  std::map<std::string, InjectedFault> seen;
  run_evaluations(
      jobs(*temp.store, 5),
      [&](const EvalRequest& r) {
        seen[r.genome_hash] = injected_fault();
        if (injected_fault() == InjectedFault::hang)
          while (true) {
            throw_if_cancelled();
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
          }
        return polling_evaluation(r, "");
      },
      *temp.store, temp.run_id, options, [](std::size_t, const db::EvaluationOutcome&) {});
  CHECK(seen.count("aaaa1") == 0);  // a throw happens before evaluate is called
  CHECK(seen.at("aaaa3") == InjectedFault::hang);
  CHECK(seen.at("aaaa0") == InjectedFault::none);
  const auto records = by_hash(*temp.store, temp.run_id);
  CHECK(records.at("aaaa1").status == db::EvaluationStatus::failed);
  CHECK(records.at("aaaa1").error == "injected fault: evaluate threw");
  CHECK(records.at("aaaa3").error.rfind("timeout:", 0) == 0);
  for (const char* ok : {"aaaa0", "aaaa2", "aaaa4"}) CHECK(records.at(ok).status == db::EvaluationStatus::ok);
}

TEST_CASE("a stop cancels the evaluations in flight and leaves them interrupted, to run again on resume") {
  TempStore temp("stop");
  std::atomic<bool> stop{false};
  ExecutorOptions options;
  options.workers = 2;
  options.stop_requested = [&] { return stop.load(); };
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    stop = true;
  });
  // Both never finish on their own: only the stop ends them.
  CHECK_THROWS_AS(
      run_evaluations(
          jobs(*temp.store, 4), [](const EvalRequest& r) { return polling_evaluation(r, r.genome_hash); },
          *temp.store, temp.run_id, options, [](std::size_t, const db::EvaluationOutcome&) {}),
      SearchStopped);
  stopper.join();
  const auto records = by_hash(*temp.store, temp.run_id);
  REQUIRE(records.size() == 2);  // the other two never started
  for (const auto& [hash, record] : records) {
    CAPTURE(hash);
    CHECK(record.status == db::EvaluationStatus::interrupted);
  }
}

TEST_CASE("the default candidate timeout waits long before any result, then learns from the slowest") {
  CandidateTimeout timeout;
  CHECK(timeout.seconds_for(1.0) == CandidateTimeout::kBeforeAnyResultSeconds);
  timeout.observe(0.5, 20.0);  // 40 s per unit of fidelity
  CHECK(timeout.seconds_for(1.0) == doctest::Approx(400.0));
  CHECK(timeout.seconds_for(0.1) == doctest::Approx(60.0));  // never below the floor
  timeout.observe(1.0, 1.0);                                 // a faster one changes nothing
  CHECK(timeout.seconds_for(1.0) == doctest::Approx(400.0));
  CHECK(timeout.describe(1.0).find("10x the slowest") != std::string::npos);

  CandidateTimeout budgeted(std::nullopt, 300.0);  // max_train_seconds caps it
  CHECK(budgeted.seconds_for(1.0) == doctest::Approx(300.0));
  budgeted.observe(1.0, 100.0);
  CHECK(budgeted.seconds_for(1.0) == doctest::Approx(300.0));

  CandidateTimeout configured(25.0);
  configured.observe(1.0, 100.0);
  CHECK(configured.seconds_for(0.2) == 25.0);
  CHECK(CandidateTimeout(0.0).seconds_for(1.0) == 0.0);  // 0: no limit
}
