// Lanes: the executor runs each evaluation on a free lane, sets the
// request's device to the lane's and records where it ran; a lane with its
// own evaluate function (another MPI rank's) runs its jobs through it; no
// lane ever holds two evaluations, and a lane freed by an abandoned worker
// takes new work.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "common/candidate_control.hpp"
#include "search/executor.hpp"
#include "search/executor_test_support.hpp"
#include "search/lanes.hpp"

using namespace livs;
using namespace livs::search;

namespace {

// Counts the evaluations in flight per device, and the most seen at once.
struct Occupancy {
  std::mutex mutex;
  std::map<std::string, int> now;
  std::map<std::string, int> most;
  std::map<uint64_t, std::string> device_of_job;  // by the job's seed, which is its place in the list

  EvalResult evaluate(const EvalRequest& request) {
    {
      std::lock_guard lock(mutex);
      most[request.device] = std::max(most[request.device], ++now[request.device]);
      device_of_job[request.seed] = request.device;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(15));
    {
      std::lock_guard lock(mutex);
      --now[request.device];
    }
    EvalResult result;
    result.metrics["perplexity"] = 1.0 + double(request.seed);
    result.device = request.device;
    return result;
  }
};

}  // namespace

TEST_CASE("local lanes interleave the devices, workers times over") {
  const auto lanes = local_lanes({"cuda:0", "cuda:2"}, 2);
  REQUIRE(lanes.size() == 4);
  CHECK(lanes[0].device == "cuda:0");
  CHECK(lanes[1].device == "cuda:2");
  CHECK(lanes[2].device == "cuda:0");
  CHECK(lanes[3].device == "cuda:2");
  for (const auto& lane : lanes) {
    CHECK(lane.where == lane.device);
    CHECK(!lane.evaluate);
  }
  CHECK(devices_of(lanes) == "cuda:0,cuda:2");
}

TEST_CASE("two devices with two lanes each: at most two evaluations per device, each recorded where it ran") {
  TempStore temp("lanes");
  ExecutorOptions options;
  options.lanes = local_lanes({"dev-a", "dev-b"}, 2);
  Occupancy occupancy;
  int finished = 0;
  run_evaluations(
      jobs(*temp.store, 12), [&](const EvalRequest& r) { return occupancy.evaluate(r); }, *temp.store,
      temp.run_id, options, [&](std::size_t, const db::EvaluationOutcome&) { ++finished; });
  CHECK(finished == 12);
  CHECK(occupancy.most["dev-a"] <= 2);
  CHECK(occupancy.most["dev-b"] <= 2);
  CHECK(occupancy.most["dev-a"] + occupancy.most["dev-b"] >= 3);  // they did run side by side
  REQUIRE(occupancy.device_of_job.size() == 12);
  // The first two jobs are handed out together, one per device, before any
  // device doubles up. Checked by the job, not by the order the worker
  // threads reach their evaluations: that order is the scheduler's (under
  // ASan load the second thread can start after the first has finished).
  CHECK(std::set<std::string>{occupancy.device_of_job[0], occupancy.device_of_job[1]} ==
        std::set<std::string>{"dev-a", "dev-b"});
  std::map<std::string, int> recorded;
  for (const auto& e : temp.store->evaluations(temp.run_id)) {
    CHECK(e.status == db::EvaluationStatus::ok);
    ++recorded[e.device];
  }
  CHECK(recorded.size() == 2);
  CHECK(recorded["dev-a"] + recorded["dev-b"] == 12);
}

TEST_CASE("a lane with its own evaluate function runs its jobs through it, recorded by its place") {
  TempStore temp("remote_lane");
  std::atomic<int> remote_calls{0};
  std::atomic<int> local_calls{0};
  ExecutorOptions options;
  options.lanes = {Lane{"cpu", "cpu", {}},
                   Lane{"cpu", "cpu on node2 (rank 1)", [&](const EvalRequest& request) {
                          ++remote_calls;
                          std::this_thread::sleep_for(std::chrono::milliseconds(5));
                          EvalResult result;
                          result.metrics["perplexity"] = 100.0 + double(request.seed);
                          return result;
                        }}};
  run_evaluations(
      jobs(*temp.store, 8),
      [&](const EvalRequest& request) {
        ++local_calls;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        EvalResult result;
        result.metrics["perplexity"] = 100.0 + double(request.seed);
        return result;
      },
      *temp.store, temp.run_id, options, [](std::size_t, const db::EvaluationOutcome&) {});
  CHECK(remote_calls + local_calls == 8);
  CHECK(remote_calls >= 1);
  CHECK(local_calls >= 1);
  int recorded_remote = 0;
  for (const auto& e : temp.store->evaluations(temp.run_id))
    if (e.device == "cpu on node2 (rank 1)") ++recorded_remote;
  CHECK(recorded_remote == remote_calls);
}

TEST_CASE("a lane whose worker was abandoned takes new work while the stuck one runs on") {
  TempStore temp("abandoned_lane");
  ExecutorOptions options;
  options.lanes = local_lanes({"only"}, 1);
  options.timeout = std::make_shared<CandidateTimeout>(0.2);
  options.abandon_grace_seconds = 0.1;
  std::atomic<bool> release{false};
  int finished = 0;
  run_evaluations(
      jobs(*temp.store, 3),
      [&](const EvalRequest& request) {
        // The first ignores its cancellation until the test ends (a stuck kernel).
        while (request.genome_hash == "aaaa0" && !release)
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
        EvalResult result;
        result.metrics["perplexity"] = 5.0;
        return result;
      },
      *temp.store, temp.run_id, options, [&](std::size_t, const db::EvaluationOutcome&) { ++finished; });
  release = true;
  CHECK(finished == 3);
  std::map<std::string, db::EvaluationStatus> status;
  for (const auto& e : temp.store->evaluations(temp.run_id)) status[e.genome_hash] = e.status;
  CHECK(status.at("aaaa0") == db::EvaluationStatus::failed);
  CHECK(status.at("aaaa1") == db::EvaluationStatus::ok);
  CHECK(status.at("aaaa2") == db::EvaluationStatus::ok);
  // Let the abandoned thread return before the test's objects go.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
}
