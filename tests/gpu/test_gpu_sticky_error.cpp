// A CUDA error in one candidate does not poison the next. A sticky error
// (here an injected illegal-address kernel, common/fault_injection.hpp's
// "device" fault) breaks the device's context for the whole process, and
// nothing in the process brings it back (cudaDeviceReset succeeds, then every
// call fails with cudaErrorDevicesUnavailable: measured on the H200). So the
// backend pool marks the device lost (evaluator/backend_pool.hpp) and the
// search restarts its process with --resume (cli/restart_on_lost_device.hpp).
//
// The first case checks the pool in a child process (a lost device stays
// lost for the process, which would fail the other tests of this binary);
// the second runs a real search with the fault next to this binary's
// livsearch and checks that the candidates after the fault trained.
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "common/candidate_control.hpp"
#include "evaluator/backend_pool.hpp"
#include "evaluator/trainer.hpp"
#include "genome/decode.hpp"
#include "genome/presets.hpp"
#include "tests/cli/run_command.hpp"
#include "tests/gpu/gpu_test_support.hpp"

using namespace livs;
using namespace livs::evaluator;
using namespace livs::evaluator::gpu_testing;
using livs::test::run_command;
using livs::test::shell_quoted;

namespace {

// One candidate the way proxies::evaluate trains it: a leased backend, kept
// only when the training ended well; `fault` is injected into its first step.
TrainReport train_candidate(InjectedFault fault) {
  static const std::vector<uint16_t> bytes = corpus_bytes(120000);
  REQUIRE_MESSAGE(bytes.size() == 120000, "data/kjv.txt not found (run from the repository root)");
  const std::span<const uint16_t> train(bytes.data(), 100000), validation(bytes.data() + 100000, 20000);
  TrainSettings s;
  s.steps = 20;
  s.batch_size = 4;
  s.seq_len = 64;
  s.warmup_steps = 2;
  s.eval_tokens = 2048;
  const auto spec = genome::decode(genome::preset("transformer", 64, 2));
  ScopedCandidateControl control(std::make_shared<CandidateControl>(fault));
  auto backend = lease_backend("cuda");
  const TrainReport report = train_and_evaluate(spec, s, train, validation, 5, *backend);
  if (report.status == TrainStatus::ok) backend.keep();
  return report;
}

}  // namespace

TEST_CASE("sticky error child: the failed candidate marks the device lost, later leases say why") {
  if (!std::getenv("LIVSEARCH_GPU_STICKY_CHILD")) return;  // only in the child process the next case starts
  const TrainReport before = train_candidate(InjectedFault::none);
  REQUIRE(before.status == TrainStatus::ok);
  CHECK(!device_context_lost("cuda"));

  const TrainReport faulty = train_candidate(InjectedFault::device);
  CAPTURE(faulty.error);
  CHECK(faulty.status == TrainStatus::failed);
  CHECK(faulty.error.find("cudaErrorIllegalAddress") != std::string::npos);
  CHECK(device_context_lost("cuda"));
  CHECK(any_device_context_lost());
  CHECK(lost_devices() == "cuda");
  CHECK_THROWS_WITH_AS(lease_backend("cuda"), doctest::Contains("was lost to a sticky device error"),
                       DeviceContextLost);
}

namespace {

std::string own_folder() {
  char self[PATH_MAX] = {};
  const ssize_t length = ::readlink("/proc/self/exe", self, sizeof self - 1);
  REQUIRE(length > 0);
  const std::string path(self, std::size_t(length));
  return path.substr(0, path.rfind('/'));
}

}  // namespace

TEST_CASE("a sticky CUDA error marks the device lost in the process that had it") {
  const std::string command = "LIVSEARCH_GPU_STICKY_CHILD=1 '" + own_folder() +
                              "/test_gpu' --test-case='sticky error child*' --no-version";
  const int status = std::system(command.c_str());
  REQUIRE(status != -1);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE(
    "a sticky CUDA error in one candidate does not poison the next: the search restarts and completes") {
  // livsearch beside test_gpu (the staged .gpu/ folder) or one folder up (a build tree).
  std::string livsearch;
  for (const std::string& folder : {own_folder(), own_folder() + "/.."})
    if (::access((folder + "/livsearch").c_str(), X_OK) == 0) livsearch = folder + "/livsearch";
  REQUIRE_MESSAGE(!livsearch.empty(), "no livsearch binary next to test_gpu or one folder up");
  const auto db =
      std::filesystem::temp_directory_path() / ("livsearch-sticky-" + std::to_string(::getpid()) + ".db");
  const auto run =
      run_command("LIVSEARCH_FAULT_INJECT='#1:device' " + shell_quoted(livsearch) +
                      " search tests/cli/tiny_search.json --device cuda --workers 2 --db " + shell_quoted(db),
                  "sticky_search");
  CAPTURE(run.err);
  CHECK(run.exit_code == 0);
  CHECK(run.err.find("restarting the process with --resume (restart 1 of") != std::string::npos);
  const auto status = run_command(
      shell_quoted(livsearch) + " status --db " + shell_quoted(db) + " --format json", "sticky_status");
  REQUIRE(status.exit_code == 0);
  const auto summary = nlohmann::json::parse(status.out);
  CAPTURE(summary.dump());
  CHECK(summary["status"] == "finished");
  // The faulty candidate and at most the one training beside it on the same
  // context fail; every later candidate trains on the restarted process's.
  CHECK(summary["evaluations"]["failed"].get<int>() >= 1);
  CHECK(summary["evaluations"]["failed"].get<int>() <= 2);
  CHECK(summary["evaluations"]["ok"].get<int>() >= 20);
  std::filesystem::remove(db);
}
