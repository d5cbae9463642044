#include <doctest/doctest.h>

#include <cstdio>

#include "evaluator/cpu/cpu_backend.hpp"
#include "genome/decode.hpp"
#include "genome/genome.hpp"
#include "genome/presets.hpp"
#include "proxies/task_training.hpp"

using namespace livs;

namespace {

evaluator::TrainSettings task_training() {
  evaluator::TrainSettings t;
  t.steps = 600;
  t.batch_size = 16;
  t.learning_rate = 2e-3;
  t.warmup_steps = 50;
  t.weight_decay = 0.0;
  return t;
}

proxies::TaskSettings small_recall() {
  auto s = proxies::default_task_settings(proxies::TaskKind::in_context_recall);
  s.seq_len = 32;
  s.train_examples = 4000;
  s.test_examples = 256;
  return s;
}

}  // namespace

TEST_CASE("the transformer preset learns in-context recall well above chance") {
  evaluator::CpuBackend backend;
  const auto data = proxies::generate_task(small_recall(), 5);
  const auto spec = genome::decode(genome::preset("transformer", 64, 2));
  const auto report = proxies::train_on_task(spec, task_training(), data, 9, backend);
  REQUIRE_MESSAGE(report.ok, report.error);
  MESSAGE("transformer in-context recall accuracy " << report.accuracy);
  CHECK(report.steps_done == 600);
  // Chance is 1/8 (the values); a model that does not recall stays there.
  // Observed 1.000 at this budget (0.34 while unscored positions trained on
  // the unpredictable next token).
  CHECK(report.accuracy > 0.9);
}

// The gap Zoology reports: a short gated convolution (kernel 3, two layers,
// so it sees about two pairs back) cannot look up a key shown earlier;
// attention can. Observed 1.000 against 0.23 (seq_len 32, 600 steps); 0.27
// against 0.38 while unscored positions trained on the next token.
TEST_CASE("attention beats gconv-only on in-context recall by a clear margin") {
  evaluator::CpuBackend backend;
  const auto data = proxies::generate_task(small_recall(), 5);
  genome::Genome gconv = genome::preset("transformer", 64, 2);
  for (std::size_t i = 0; i < gconv.slots.size(); i += 2)
    gconv.slots[i].ops[0] = genome::default_op(genome::LivClass::gconv, 64);
  const auto t = task_training();
  const auto attention =
      proxies::train_on_task(genome::decode(genome::preset("transformer", 64, 2)), t, data, 9, backend);
  const auto convolution = proxies::train_on_task(genome::decode(gconv), t, data, 9, backend);
  REQUIRE_MESSAGE(attention.ok, attention.error);
  REQUIRE_MESSAGE(convolution.ok, convolution.error);
  MESSAGE("in-context recall accuracy: attention " << attention.accuracy << ", gconv-only "
                                                   << convolution.accuracy);
  CHECK(attention.accuracy > convolution.accuracy + 0.3);
}

TEST_CASE("task training is a pure function of its inputs, a diverging run reports why") {
  evaluator::CpuBackend backend;
  auto settings = small_recall();
  settings.train_examples = 64;
  settings.test_examples = 32;
  const auto data = proxies::generate_task(settings, 5);
  const auto spec = genome::decode(genome::preset("transformer", 32, 1));
  auto t = task_training();
  t.steps = 6;
  const auto a = proxies::train_on_task(spec, t, data, 9, backend);
  const auto b = proxies::train_on_task(spec, t, data, 9, backend);
  REQUIRE(a.ok);
  CHECK(a.accuracy == b.accuracy);
  CHECK(a.final_loss == b.final_loss);
  t.learning_rate = 1e30;
  const auto diverged = proxies::train_on_task(spec, t, data, 9, backend);
  CHECK_FALSE(diverged.ok);
  CHECK(diverged.error.find("became") != std::string::npos);
}
