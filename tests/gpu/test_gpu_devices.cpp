// Every visible GPU trains from fresh worker threads that lease pooled
// backends, as a search with `--devices all` does: each new thread starts
// on GPU 0, so a backend of another GPU must make its device current before
// it allocates (evaluator::make_device_current). The same request gives the
// same perplexity on every GPU (one model of GPU: bit for bit) and on
// second use of each pooled backend. Needs two GPUs to say anything; with
// one it only checks that GPU.
#include <doctest/doctest.h>

#include <string>
#include <thread>
#include <vector>

#include "evaluator/backend_factory.hpp"
#include "genome/genome_json.hpp"
#include "genome/presets.hpp"
#include "proxies/evaluate.hpp"

using namespace livs;

namespace {

EvalRequest request_on(const std::string& device) {
  proxies::EvalSettings settings;
  settings.data.paths = {std::string(LIVSEARCH_SOURCE_DIR) + "/data/kjv.txt"};
  settings.training =
      Json{{"steps", 8}, {"batch_size", 4}, {"seq_len", 64}, {"warmup_steps", 2}, {"eval_tokens", 2048}};
  settings.context_length = 512;
  const auto genome = genome::preset("lfm2", 64, 2);
  EvalRequest request;
  request.genome = genome::to_canonical_json(genome);
  request.genome_hash = genome::genome_hash(genome);
  request.seed = 5;
  request.settings = proxies::to_json(settings);
  request.device = device;
  return request;
}

}  // namespace

TEST_CASE("every GPU trains from fresh worker threads with pooled backends, the same numbers on each") {
  const int count = evaluator::cuda_device_count();
  REQUIRE(count >= 1);
  if (count < 2) MESSAGE("one GPU visible: the cross-device part of this test needs two");
  double reference = 0.0;
  for (int round = 0; round < 2; ++round) {  // the second round reuses the pooled backends
    for (int d = count - 1; d >= 0; --d) {   // the last GPU first: not the thread's default
      const std::string device = "cuda:" + std::to_string(d);
      EvalResult result;
      std::thread worker([&] { result = proxies::evaluate(request_on(device)); });
      worker.join();
      CAPTURE(device);
      CAPTURE(round);
      REQUIRE_MESSAGE(result.status == EvalStatus::ok, result.error);
      if (reference == 0.0) reference = result.metrics.at("perplexity");
      CHECK(result.metrics.at("perplexity") == reference);
    }
  }
}
