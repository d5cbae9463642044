// A CUDA error in one candidate does not poison the next. A sticky error
// (here an injected illegal-address kernel, common/fault_injection.hpp's
// "device" fault) breaks the device's context for the whole process; the
// backend pool (evaluator/backend_pool.hpp) sees it when the failed lease
// ends and rebuilds the context, and the next candidate on the device trains
// as if nothing had happened.
//
// The rebuild resets the device, which would pull the context from under the
// other tests' long-lived backends in this binary, so the candidates run in
// a child process: this test starts the binary again with only the case
// below selected.
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include "common/candidate_control.hpp"
#include "evaluator/backend_pool.hpp"
#include "evaluator/trainer.hpp"
#include "genome/decode.hpp"
#include "genome/presets.hpp"
#include "tests/gpu/gpu_test_support.hpp"

using namespace livs;
using namespace livs::evaluator;
using namespace livs::evaluator::gpu_testing;

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

TEST_CASE("sticky error child: candidates before and after a sticky CUDA error train alike") {
  if (!std::getenv("LIVSEARCH_GPU_STICKY_CHILD")) return;  // only in the child process the next case starts
  const TrainReport before = train_candidate(InjectedFault::none);
  REQUIRE(before.status == TrainStatus::ok);
  CHECK(device_context_rebuilds("cuda") == 0);

  const TrainReport faulty = train_candidate(InjectedFault::device);
  CAPTURE(faulty.error);
  CHECK(faulty.status == TrainStatus::failed);
  CHECK(faulty.error.find("cudaErrorIllegalAddress") != std::string::npos);
  CHECK(device_context_rebuilds("cuda") == 1);

  // Twice: the first after the rebuild makes a fresh backend, the second
  // reuses the one the first put back in the pool.
  for (int i = 0; i < 2; ++i) {
    CAPTURE(i);
    const TrainReport after = train_candidate(InjectedFault::none);
    CAPTURE(after.error);
    REQUIRE(after.status == TrainStatus::ok);
    CHECK(after.validation_loss == doctest::Approx(before.validation_loss).epsilon(1e-5));
    CHECK(after.steps_done == before.steps_done);
  }
  CHECK(device_context_rebuilds("cuda") == 1);
}

TEST_CASE("a sticky CUDA error in one candidate does not poison the next: the context is rebuilt") {
  char self[PATH_MAX] = {};
  const ssize_t length = ::readlink("/proc/self/exe", self, sizeof self - 1);
  REQUIRE(length > 0);
  const std::string command = "LIVSEARCH_GPU_STICKY_CHILD=1 '" + std::string(self, std::size_t(length)) +
                              "' --test-case='sticky error child*' --no-version";
  const int status = std::system(command.c_str());
  REQUIRE(status != -1);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}
