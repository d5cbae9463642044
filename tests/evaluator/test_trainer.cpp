// The trainer: settings parsing, the schedule, a short real-text run whose
// loss falls, bit-identical results for a seed (with 1 and 2 threads), and
// failures reported as a status instead of a crash.
#include <doctest/doctest.h>
#include <tbb/global_control.h>

#include <cmath>
#include <fstream>
#include <iterator>

#include "evaluator/cpu/cpu_backend.hpp"
#include "evaluator/lr_schedule.hpp"
#include "evaluator/trainer.hpp"
#include "tests/evaluator/spec_builders.hpp"

using namespace livs::evaluator;
using namespace livs::evaluator::testing;

namespace {

// English text as bytes: the sample corpus.
const std::vector<uint16_t>& corpus() {
  static const std::vector<uint16_t> tokens = [] {
    std::ifstream in(LIVSEARCH_SOURCE_DIR "/data/kjv.txt", std::ios::binary);
    REQUIRE_MESSAGE(in.good(), "data/kjv.txt is missing");
    std::string text((std::istreambuf_iterator<char>(in)), {});
    text.resize(std::min<std::size_t>(text.size(), 400000));
    std::vector<uint16_t> t;
    for (unsigned char c : text) t.push_back(c);
    return t;
  }();
  return tokens;
}

std::span<const uint16_t> train_split() { return {corpus().data(), 360000}; }
std::span<const uint16_t> validation_split() { return {corpus().data() + 360000, corpus().size() - 360000}; }

TrainSettings small_settings(int steps) {
  TrainSettings s;
  s.steps = steps;
  s.batch_size = 8;
  s.seq_len = 32;
  s.warmup_steps = 5;
  s.learning_rate = 3e-3;
  s.eval_tokens = 4096;
  return s;
}

TrainSettings parse(const std::string& json) {
  auto doc = livs::parse_json_text(json, "config.json");
  return parse_train_settings(livs::JsonReader(doc, "config.json", "/training"));
}

}  // namespace

TEST_CASE("training settings: defaults, overrides, ranges and unknown keys") {
  const TrainSettings d = parse("{}");
  CHECK(d.steps == TrainSettings{}.steps);
  CHECK(d.learning_rate == TrainSettings{}.learning_rate);
  const TrainSettings s = parse(R"({"steps": 100, "batch_size": 4, "seq_len": 64, "learning_rate": 1e-3,
    "warmup_steps": 10, "grad_clip": 0, "eval_tokens": 1000})");
  CHECK(s.steps == 100);
  CHECK(s.batch_size == 4);
  CHECK(s.seq_len == 64);
  CHECK(s.learning_rate == 1e-3);
  CHECK(s.warmup_steps == 10);
  CHECK(s.grad_clip == 0.0);
  CHECK(s.eval_tokens == 1000);
  CHECK_THROWS_WITH_AS(parse(R"({"stepz": 3})"), doctest::Contains("/training/stepz"), livs::InputError);
  CHECK_THROWS_WITH_AS(parse(R"({"steps": 0})"), doctest::Contains("/training/steps"), livs::InputError);
  CHECK_THROWS_WITH_AS(parse(R"({"learning_rate": -1})"), doctest::Contains("/training/learning_rate"),
                       livs::InputError);
  CHECK_THROWS_WITH_AS(parse(R"({"steps": 10, "warmup_steps": 20})"),
                       doctest::Contains("/training/warmup_steps"), livs::InputError);
  CHECK_THROWS_WITH_AS(parse(R"({"beta2": 1.0})"), doctest::Contains("/training/beta2"), livs::InputError);
  CHECK_THROWS_WITH_AS(parse(R"({"batch_size": "16"})"), doctest::Contains("expected an integer"),
                       livs::InputError);
}

TEST_CASE("learning rate: linear warm-up, cosine decay to the floor") {
  TrainSettings s;
  s.steps = 110;
  s.warmup_steps = 10;
  s.learning_rate = 1.0;
  s.min_lr_ratio = 0.1;
  CHECK(learning_rate_at(s, 1) == doctest::Approx(0.1));
  CHECK(learning_rate_at(s, 10) == doctest::Approx(1.0));
  CHECK(learning_rate_at(s, 60) == doctest::Approx(0.55));  // half-way: the mean of peak and floor
  CHECK(learning_rate_at(s, 110) == doctest::Approx(0.1));
  for (int step = 11; step < 110; ++step) CHECK(learning_rate_at(s, step + 1) <= learning_rate_at(s, step));
}

TEST_CASE("a short run on English text lowers the loss and beats the unigram model") {
  auto spec = transformer_spec(32, 2, 4, 2, 64);
  CpuBackend backend;
  int calls = 0;
  auto report = train_and_evaluate(spec, small_settings(80), train_split(), validation_split(), 1, backend,
                                   [&](int step, double) { CHECK(step == ++calls); });
  REQUIRE_MESSAGE(report.status == TrainStatus::ok, report.error);
  CHECK(calls == 80);
  CHECK(report.steps_done == 80);
  REQUIRE(report.train_loss.size() == 80);
  CHECK(report.train_loss.front() == doctest::Approx(std::log(256.0)).epsilon(0.02));  // uniform at the start
  double early = 0, late = 0;
  for (int i = 0; i < 10; ++i) early += report.train_loss[i], late += report.train_loss[70 + i];
  CHECK(late < early - 10 * 1.5);
  CHECK(report.validation_tokens == (4096 - 1) / 32 * 32);
  CHECK(report.perplexity == doctest::Approx(std::exp(report.validation_loss)));
  CHECK(report.perplexity < 20.0);  // a unigram byte model of English is about 20-25
  CHECK(report.params_total == spec.params_total());
  CHECK(report.params_non_embedding == spec.params_total() - 256 * 32);
}

TEST_CASE("the same seed gives bit-identical results with one thread and with two") {
  auto spec = transformer_spec(32, 1, 4, 2, 64, 256, 8);
  auto run = [&](int threads, uint64_t seed) {
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
    CpuBackend backend;
    return train_and_evaluate(spec, small_settings(12), train_split(), validation_split(), seed, backend);
  };
  const auto a = run(2, 5), b = run(2, 5), c = run(1, 5), other = run(2, 6);
  REQUIRE(a.status == TrainStatus::ok);
  CHECK(a.train_loss == b.train_loss);
  CHECK(a.validation_loss == b.validation_loss);
  CHECK(a.train_loss == c.train_loss);
  CHECK(a.validation_loss == c.validation_loss);
  CHECK(a.train_loss != other.train_loss);
}

TEST_CASE("a diverging run ends with a non-finite status, not a crash") {
  auto spec = transformer_spec(32, 1, 4, 4, 64);
  CpuBackend backend;
  auto s = small_settings(30);
  s.learning_rate = 1e30;
  s.grad_clip = 0.0;
  const auto report = train_and_evaluate(spec, s, train_split(), validation_split(), 1, backend);
  CHECK(report.status == TrainStatus::non_finite_loss);
  CHECK(report.steps_done < 30);
  CHECK(report.error.find("at step") != std::string::npos);
  CHECK(std::isinf(report.perplexity));
}

TEST_CASE("bad data and unsupported specs are a failed status with the reason") {
  CpuBackend backend;
  auto spec = transformer_spec(32, 1, 4, 4, 64);
  std::vector<uint16_t> short_split(20, 65);
  auto r = train_and_evaluate(spec, small_settings(2), short_split, validation_split(), 1, backend);
  CHECK(r.status == TrainStatus::failed);
  CHECK(r.error.find("training split has 20 tokens") != std::string::npos);

  std::vector<uint16_t> big_tokens(1000, 300);
  r = train_and_evaluate(spec, small_settings(2), train_split(), big_tokens, 1, backend);
  CHECK(r.status == TrainStatus::failed);
  CHECK(r.error.find("token 300") != std::string::npos);

  spec.slots[1].ops[0].cls = livs::genome::LivClass::moe;  // with swiglu's weights: inconsistent
  r = train_and_evaluate(spec, small_settings(2), train_split(), validation_split(), 1, backend);
  CHECK(r.status == TrainStatus::failed);
  CHECK(r.error.find("lists no weight \"router\"") != std::string::npos);
}
