#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "evaluator/cpu/cpu_backend.hpp"
#include "genome/decode.hpp"
#include "genome/genome_json.hpp"
#include "genome/presets.hpp"
#include "proxies/evaluate.hpp"
#include "proxies/latency.hpp"

using namespace livs;

namespace {

EvalRequest tiny_request(const std::string& preset, double learning_rate = 3e-3) {
  proxies::EvalSettings settings;
  settings.data.paths = {std::string(LIVSEARCH_SOURCE_DIR) + "/data/kjv.txt"};
  settings.training = Json{{"steps", 12},
                           {"batch_size", 4},
                           {"seq_len", 32},
                           {"warmup_steps", 2},
                           {"learning_rate", learning_rate},
                           {"eval_tokens", 2048}};
  settings.context_length = 1000;
  settings.latency = proxies::LatencySettings{1, 16, 1000, 1, 3};
  const auto genome = genome::preset(preset, 32, 1);
  EvalRequest request;
  request.genome = genome::to_canonical_json(genome);
  request.genome_hash = genome::genome_hash(genome);
  request.seed = 11;
  request.settings = proxies::to_json(settings);
  request.device = "cpu";
  return request;
}

}  // namespace

TEST_CASE("evaluate trains a preset and reports every metric") {
  const auto request = tiny_request("transformer");
  const auto result = proxies::evaluate(request);
  REQUIRE_MESSAGE(result.status == EvalStatus::ok, result.error);
  for (const auto& metric : proxies::reported_metrics()) CHECK(result.metrics.count(metric.name) == 1);
  CHECK(result.metrics.at("perplexity") > 1.0);
  CHECK(result.metrics.at("perplexity") < 256.0);
  CHECK(result.metrics.at("steps") == 12);
  CHECK(result.device == "cpu");
  // d32, one sa + one swiglu slot, one head of 32: K and V of 32 values
  // per token at bf16, for 1000 tokens of context.
  CHECK(result.metrics.at("cache_bytes") == 2 * 32 * 1000 * 2);
  CHECK(result.metrics.at("params") > result.metrics.at("params_non_embedding"));
  CHECK(result.metrics.at("decode_ms") > 0.0);
  CHECK(result.metrics.at("decode_tok_s") == doctest::Approx(1e3 / result.metrics.at("decode_ms")));
  CHECK(result.metrics.at("prefill_tok_s") == doctest::Approx(16e3 / result.metrics.at("prefill_ms")));
  CHECK(result.metrics.at("flops_per_token_infer") > result.metrics.at("flops_per_token_train") / 3.0);
  CHECK(result.metrics.at("peak_memory_train") > 0.0);
  {  // the trained model's own plan, as a model built at the training shape plans it
    evaluator::CpuBackend backend;
    CHECK(result.metrics.at("peak_memory_train") ==
          double(proxies::training_plan_bytes(genome::decode(genome::preset("transformer", 32, 1)), backend,
                                              4, 32)));
  }
  CHECK(result.metrics.at("peak_memory_infer") > 0.0);
  // Where the time went: every phase, none negative, together the wall time.
  double phases = 0.0;
  for (const char* phase : {"setup", "build", "training", "validation", "checks", "other"}) {
    CAPTURE(phase);
    REQUIRE(result.phase_seconds.count(phase) == 1);
    CHECK(result.phase_seconds.at(phase) >= 0.0);
    phases += result.phase_seconds.at(phase);
  }
  CHECK(result.phase_seconds.at("training") == result.metrics.at("train_seconds"));
  CHECK(result.phase_seconds.at("training") > 0.0);
  CHECK(phases == doctest::Approx(result.wall_seconds).epsilon(1e-6));
  CHECK(result.phase_seconds.count("tasks") == 0);  // no tasks in these settings
  // They travel with the result (an MPI rank's evaluation) and are not metrics.
  CHECK(eval_result_from_json(to_json(result)).phase_seconds == result.phase_seconds);
  CHECK(result.metrics.count("build") == 0);
}

TEST_CASE("without latency settings nothing is timed, sizes are still reported") {
  auto request = tiny_request("transformer");
  request.settings.erase("latency");
  const auto result = proxies::evaluate(request);
  REQUIRE_MESSAGE(result.status == EvalStatus::ok, result.error);
  CHECK(result.metrics.count("decode_ms") == 0);
  CHECK(result.metrics.at("cache_bytes") == 2 * 32 * 1000 * 2);
  CHECK(result.metrics.count("peak_memory_infer") == 1);
}

TEST_CASE("evaluate is a pure function of its request") {
  const auto request = tiny_request("transformer");
  const auto a = proxies::evaluate(request);
  const auto b = proxies::evaluate(eval_request_from_json(to_json(request)));  // through JSON, as over MPI
  REQUIRE(a.status == EvalStatus::ok);
  CHECK(a.metrics.at("perplexity") == b.metrics.at("perplexity"));
  CHECK(a.metrics.at("validation_loss") == b.metrics.at("validation_loss"));
  auto other_seed = request;
  other_seed.seed = 12;
  CHECK(proxies::evaluate(other_seed).metrics.at("validation_loss") != a.metrics.at("validation_loss"));
}

// Evaluations lease their backend from a pool (evaluator/backend_pool.hpp):
// one reused after other architectures grew its scratch must give the bits
// of a new one.
TEST_CASE("a backend reused after other architectures gives the same bits") {
  const auto request = tiny_request("transformer");
  const auto first = proxies::evaluate(request);
  for (const char* other : {"striped-mamba", "griffin", "hyena-like"})
    REQUIRE(proxies::evaluate(tiny_request(other)).status == EvalStatus::ok);
  const auto again = proxies::evaluate(request);
  REQUIRE(first.status == EvalStatus::ok);
  REQUIRE(again.status == EvalStatus::ok);
  for (const char* metric : {"perplexity", "validation_loss", "peak_memory_train", "peak_memory_infer"})
    CHECK(first.metrics.at(metric) == again.metrics.at(metric));
}

TEST_CASE("fidelity scales the training budget") {
  auto request = tiny_request("transformer");
  request.fidelity = 0.5;
  const auto result = proxies::evaluate(request);
  REQUIRE(result.status == EvalStatus::ok);
  CHECK(result.metrics.at("steps") == 6);
}

TEST_CASE("failures become failed results with a reason, never exceptions") {
  SUBCASE("a diverging candidate") {
    const auto result = proxies::evaluate(tiny_request("transformer", 1e30));
    CHECK(result.status == EvalStatus::failed);
    CHECK(result.error.find("non_finite") != std::string::npos);
  }
  SUBCASE("a broken genome") {
    auto request = tiny_request("transformer");
    request.genome["slots"][0]["kv_heads"] = 3;
    const auto result = proxies::evaluate(request);
    CHECK(result.status == EvalStatus::failed);
    CHECK(result.error.find("/slots/0/kv_heads") != std::string::npos);
  }
  SUBCASE("a missing data file") {
    auto request = tiny_request("transformer");
    request.settings["data"]["path"] = "/nonexistent/corpus.txt";
    const auto result = proxies::evaluate(request);
    CHECK(result.status == EvalStatus::failed);
    CHECK(result.error.find("/nonexistent/corpus.txt") != std::string::npos);
  }
  SUBCASE("a device that does not exist") {
    auto request = tiny_request("transformer");
    request.device = "tpu";
    const auto result = proxies::evaluate(request);
    CHECK(result.status == EvalStatus::failed);
    CHECK(result.error.find("tpu") != std::string::npos);
  }
}

TEST_CASE("synthetic tasks named in the settings are trained, scored and reported as accuracies") {
  auto request = tiny_request("transformer");
  request.settings["tasks"] =
      Json{{"training", {{"steps", 5}, {"batch_size", 4}, {"warmup_steps", 1}}},
           {"in_context_recall", {{"seq_len", 16}, {"train_examples", 64}, {"test_examples", 16}}},
           {"selective_copying",
            {{"seq_len", 24}, {"tokens_to_copy", 4}, {"train_examples", 64}, {"test_examples", 16}}}};
  const auto result = proxies::evaluate(request);
  REQUIRE_MESSAGE(result.status == EvalStatus::ok, result.error);
  for (const char* metric : {"in_context_recall_accuracy", "selective_copying_accuracy"}) {
    REQUIRE(result.metrics.count(metric) == 1);
    CHECK(result.metrics.at(metric) >= 0.0);
    CHECK(result.metrics.at(metric) <= 1.0);
  }
  CHECK(result.metrics.count("mqar_accuracy") == 0);
  REQUIRE(result.phase_seconds.count("tasks") == 1);  // the tasks' training has its own phase
  CHECK(result.phase_seconds.at("tasks") > 0.0);

  SUBCASE("a task vocabulary larger than the model's is a failed result with the reason") {
    request.settings["tasks"] = Json{{"mqar", Json::object()}};
    const auto failed = proxies::evaluate(request);
    CHECK(failed.status == EvalStatus::failed);
    CHECK(failed.error.find("8192") != std::string::npos);
  }
  SUBCASE("an unknown task is named with its pointer") {
    request.settings["tasks"] = Json{{"telepathy", Json::object()}};
    const auto failed = proxies::evaluate(request);
    CHECK(failed.status == EvalStatus::failed);
    CHECK(failed.error.find("/tasks/telepathy") != std::string::npos);
  }
}

TEST_CASE("latency at its own context, cache_bytes stays at the model's context") {
  auto request = tiny_request("transformer");
  request.settings["latency"]["context"] = 100;
  const auto result = proxies::evaluate(request);
  REQUIRE_MESSAGE(result.status == EvalStatus::ok, result.error);
  CHECK(result.metrics.at("cache_bytes") == 2 * 32 * 1000 * 2);
  CHECK(result.metrics.at("decode_ms") > 0.0);
}
