// The trainer: settings parsing, the schedule, a short real-text run whose
// loss falls, bit-identical results for a seed (with 1 and 2 threads), and
// failures reported as a status instead of a crash; the device-side step
// (bit for bit the host-scalar one) and the out-of-memory check.
#include <doctest/doctest.h>
#include <tbb/global_control.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iterator>

#include "common/rng.hpp"
#include "evaluator/arena.hpp"
#include "evaluator/cpu/cpu_backend.hpp"
#include "evaluator/lr_schedule.hpp"
#include "evaluator/model.hpp"
#include "evaluator/trainer.hpp"
#include "genome/checkpoint.hpp"
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

TEST_CASE("the pipelined step loop reports what the synchronous one does, a divergence included") {
  // The loop queues step k + 1 before it reads step k (evaluator/trainer.cpp);
  // LIVSEARCH_STEP_PIPELINE=0 reads each step before queueing the next. The
  // losses, the step a divergence is reported at and the steps done agree.
  auto spec = transformer_spec(32, 1, 4, 4, 64);
  auto run = [&](bool pipelined, double learning_rate) {
    if (pipelined)
      REQUIRE(unsetenv("LIVSEARCH_STEP_PIPELINE") == 0);
    else
      REQUIRE(setenv("LIVSEARCH_STEP_PIPELINE", "0", 1) == 0);
    CpuBackend backend;
    auto s = small_settings(12);
    s.learning_rate = learning_rate;
    s.grad_clip = 0.0;
    auto report = train_and_evaluate(spec, s, train_split(), validation_split(), 4, backend);
    REQUIRE(unsetenv("LIVSEARCH_STEP_PIPELINE") == 0);
    return report;
  };
  for (const double learning_rate : {3e-3, 1e30}) {
    CAPTURE(learning_rate);
    const TrainReport pipelined = run(true, learning_rate), synchronous = run(false, learning_rate);
    CHECK(pipelined.status == synchronous.status);
    CHECK(pipelined.error == synchronous.error);
    CHECK(pipelined.steps_done == synchronous.steps_done);
    CHECK(pipelined.train_loss == synchronous.train_loss);
    if (learning_rate > 1.0) {
      CHECK(pipelined.status == TrainStatus::non_finite_loss);
      CHECK(pipelined.steps_done < 12);
    } else {
      CHECK(pipelined.status == TrainStatus::ok);
      CHECK(pipelined.train_loss.size() == 12);
      CHECK(pipelined.validation_loss == synchronous.validation_loss);
    }
  }
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
  CHECK(r.error.find("expected a token id < vocab 256, got 300") != std::string::npos);

  spec.slots[1].ops[0].cls = livs::genome::LivClass::moe;  // with swiglu's weights: inconsistent
  r = train_and_evaluate(spec, small_settings(2), train_split(), validation_split(), 1, backend);
  CHECK(r.status == TrainStatus::failed);
  CHECK(r.error.find("lists no weight \"router\"") != std::string::npos);
}

// ---- The device-side step (grad_clip_scale, adamw_update_device, mean_to_device) and the memory check ----

namespace {

std::vector<float> ramp(int64_t n, float scale, float offset) {
  std::vector<float> x(std::size_t(n), 0.0f);
  for (int64_t i = 0; i < n; ++i) x[std::size_t(i)] = scale * float((i * 7919) % 1013) / 1013.0f - offset;
  return x;
}

// The trainer's step as it was before the step moved to the device: host
// scalars, one host read for the loss and one for the norm. The device-side
// step must reproduce it bit for bit.
std::vector<double> host_scalar_losses(const livs::genome::ModelSpec& spec, const TrainSettings& s,
                                       uint64_t seed) {
  CpuBackend backend;
  PlanShape shape;
  shape.batch = s.batch_size;
  shape.seq = s.seq_len;
  Model model(spec, backend, shape, livs::derive_seed(seed, "init"));
  auto& params = model.parameters();
  livs::Rng data_order(livs::derive_seed(seed, "data"));
  const auto tokens = train_split();
  const int64_t B = s.batch_size, T = s.seq_len, last_start = int64_t(tokens.size()) - (T + 1);
  std::vector<int32_t> inputs(B * T), targets(B * T);
  std::vector<double> losses;
  for (int step = 1; step <= s.steps; ++step) {
    for (int64_t r = 0; r < B; ++r) {
      const int64_t start = data_order.integer(0, last_start);
      for (int64_t t = 0; t < T; ++t) {
        inputs[r * T + t] = tokens[start + t];
        targets[r * T + t] = tokens[start + t + 1];
      }
    }
    losses.push_back(model.forward(inputs.data(), targets.data()));
    model.zero_grads();
    model.backward();
    const double norm = std::sqrt(backend.sum_of_squares(model.grads(), params.count()));
    AdamWStep update;
    update.learning_rate = float(learning_rate_at(s, step));
    update.beta1 = float(s.beta1);
    update.beta2 = float(s.beta2);
    update.grad_scale = (s.grad_clip > 0.0 && norm > s.grad_clip) ? float(s.grad_clip / norm) : 1.0f;
    update.step = step;
    for (const ParamGroup* group : {&params.decayed(), &params.not_decayed()}) {
      update.weight_decay = group == &params.decayed() ? float(s.weight_decay) : 0.0f;
      backend.adamw_update(model.values() + group->offset, model.grads() + group->offset,
                           model.adam_m() + group->offset, model.adam_v() + group->offset, group->count,
                           update);
    }
  }
  return losses;
}

}  // namespace

TEST_CASE("grad_clip_scale gives sqrt(sum_of_squares) and the trainer's clipping scale") {
  CpuBackend be;
  const auto g = ramp(100003, 2.0f, 1.0f);
  const double norm = std::sqrt(be.sum_of_squares(g.data(), int64_t(g.size())));
  REQUIRE(norm > 1.0);
  for (const double max_norm : {0.0, norm / 3.0, norm * 2.0}) {
    float scale = -1.0f;
    double got = -1.0;
    be.grad_clip_scale(&scale, &got, g.data(), int64_t(g.size()), max_norm);
    CHECK(got == norm);  // bit for bit
    const float want = (max_norm > 0.0 && norm > max_norm) ? float(max_norm / norm) : 1.0f;
    CHECK(scale == want);
  }
  float scale = 0.0f;
  double got = 0.0;
  be.grad_clip_scale(&scale, &got, g.data(), int64_t(g.size()), norm / 3.0);
  CHECK(scale < 0.34f);
  CHECK(scale > 0.33f);
}

TEST_CASE("adamw with device scalars equals the host-scalar version bit for bit") {
  CpuBackend be;
  const int64_t n = 40000;
  auto p1 = ramp(n, 0.2f, 0.1f), m1 = ramp(n, 0.0f, 0.0f), v1 = m1;
  auto p2 = p1, m2 = m1, v2 = v1;
  AdamWStep constants;
  constants.beta1 = 0.9f;
  constants.beta2 = 0.95f;
  constants.weight_decay = 0.1f;
  DeviceStepScalars scalars;
  for (int step = 1; step <= 5; ++step) {
    const auto g = ramp(n, 0.01f * float(step), 0.004f);
    AdamWStep host = constants;
    host.learning_rate = 1e-3f * float(step);
    host.grad_scale = 0.5f + 0.1f * float(step);
    host.step = step;
    be.adamw_update(p1.data(), g.data(), m1.data(), v1.data(), n, host);
    scalars.in = step_scalar_inputs(host.learning_rate, constants.beta1, constants.beta2, step);
    scalars.out.grad_scale = host.grad_scale;
    be.adamw_update_device(p2.data(), g.data(), m2.data(), v2.data(), n, constants, &scalars);
  }
  CHECK(p1 == p2);
  CHECK(m1 == m2);
  CHECK(v1 == v2);
  CHECK(p1 != ramp(n, 0.2f, 0.1f));  // the update did something
}

TEST_CASE("the device-side training step reproduces the host-scalar step bit for bit") {
  auto spec = transformer_spec(32, 1, 4, 2, 64, 256, 8);
  auto s = small_settings(15);
  s.grad_clip = 0.5;  // small enough that clipping acts on some steps
  CpuBackend backend;
  const auto report = train_and_evaluate(spec, s, train_split(), validation_split(), 3, backend);
  REQUIRE_MESSAGE(report.status == TrainStatus::ok, report.error);
  CHECK(report.train_loss == host_scalar_losses(spec, s, 3));
  CHECK_FALSE(report.step_graph);                      // the CPU runs its steps eagerly
  CHECK_FALSE(report.peak_memory_device.has_value());  // and does not measure device memory
}

TEST_CASE("memory: the CPU reports its available memory") {
  CpuBackend be;
  const auto info = be.memory_info();
  CHECK(info.total_bytes > (int64_t(64) << 20));
  CHECK(info.free_bytes > 0);
  CHECK(info.free_bytes <= info.total_bytes);
  be.set_memory_limit(int64_t(1) << 20);
  CHECK(be.memory_info().free_bytes == (int64_t(1) << 20));
}

TEST_CASE("out of memory is found before training and reported as the candidate's failure") {
  auto spec = transformer_spec(32, 1, 4, 4, 64);
  CpuBackend backend;
  const auto s = small_settings(2);
  PlanShape shape;
  shape.batch = s.batch_size;
  shape.seq = s.seq_len;
  const int64_t plan = Model(spec, backend, shape, 1).arena_bytes();
  const int64_t needed = plan + workspace_margin_bytes(plan);

  backend.set_memory_limit(needed - 1);  // one byte short: refused before anything is allocated
  CHECK_THROWS_AS(Model(spec, backend, shape, 1), OutOfMemory);
  const auto r = train_and_evaluate(spec, s, train_split(), validation_split(), 1, backend);
  CHECK(r.status == TrainStatus::failed);
  CHECK(r.steps_done == 0);
  CHECK(r.error.find("out of memory: the plan needs " + std::to_string((needed + (1 << 20) - 1) >> 20) +
                     " MiB") == 0);
  CHECK(r.error.find("the device has " + std::to_string((needed - 1) >> 20) + " MiB free") !=
        std::string::npos);

  backend.set_memory_limit(needed);  // exactly enough: trains
  const auto ok = train_and_evaluate(spec, s, train_split(), validation_split(), 1, backend);
  CHECK_MESSAGE(ok.status == TrainStatus::ok, ok.error);
}

TEST_CASE("a run hands back its weights under checkpoint names and livsearch's logits of the first windows") {
  // Featurizer sharing: slot 3's swiglu computes with slot 1's weights, stored once.
  auto spec = transformer_spec(32, 2, 4, 2, 64);
  spec.slots[3].ops[0].featurizer_source = {1, 0};
  spec.slots[3].ops[0].shared_weight_names = {"w_gate", "w_up", "w_down"};
  spec.slots[3].ops[0].weights.clear();
  auto s = small_settings(6);
  const int windows = 3;  // fewer than the batch: the probe holds exactly these
  s.eval_tokens = windows * s.seq_len + 1;
  CpuBackend backend;
  TrainedModel trained;
  const auto report =
      train_and_evaluate(spec, s, train_split(), validation_split(), 3, backend, {}, &trained);
  REQUIRE_MESSAGE(report.status == TrainStatus::ok, report.error);

  const auto expected = livs::genome::checkpoint_weights(spec);
  REQUIRE(trained.weights.size() == expected.size());
  int64_t total = 0;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    CHECK(trained.weights[i].name == expected[i].name);
    CHECK(trained.weights[i].shape == expected[i].shape);
    total += int64_t(trained.weights[i].values.size());
  }
  CHECK(total == spec.params_total());
  CHECK(trained.weights.back().name == "final_norm");
  CHECK(trained.weights.back().values != std::vector<float>(32, 1.0f));  // trained, not the initial gains

  // The probe: the validation windows, and logits whose cross-entropy is the reported validation loss.
  const auto& probe = trained.probe;
  REQUIRE(probe.rows == windows);
  REQUIRE(probe.seq == s.seq_len);
  REQUIRE(probe.vocab == 256);
  const auto validation = validation_split();
  double sum = 0.0;
  for (int r = 0; r < windows; ++r)
    for (int t = 0; t < s.seq_len; ++t) {
      const int64_t i = int64_t(r) * s.seq_len + t;
      CHECK(probe.tokens[i] == validation[i]);
      const float* row = probe.logits.data() + i * 256;
      double m = row[0], z = 0.0;
      for (int v = 0; v < 256; ++v) m = std::max(m, double(row[v]));
      for (int v = 0; v < 256; ++v) z += std::exp(double(row[v]) - m);
      sum += m + std::log(z) - double(row[validation[i + 1]]);
    }
  CHECK(sum / (windows * s.seq_len) == doctest::Approx(report.validation_loss).epsilon(1e-5));

  // A run that fails hands back nothing.
  TrainedModel untouched;
  auto bad = s;
  bad.learning_rate = 1e30;
  bad.grad_clip = 0.0;
  train_and_evaluate(spec, bad, train_split(), validation_split(), 3, backend, {}, &untouched);
  CHECK(untouched.weights.empty());
  CHECK(untouched.probe.logits.empty());
}
