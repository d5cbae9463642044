// Whole models on the CUDA backend against the CPU backend: forward losses,
// every parameter gradient, decode logits, and a 200-step training run whose
// loss curve must follow the CPU one.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <span>
#include <string>
#include <vector>

#include "evaluator/model.hpp"
#include "evaluator/trainer.hpp"
#include "genome/decode.hpp"
#include "genome/presets.hpp"
#include "tests/evaluator/spec_builders.hpp"
#include "tests/gpu/gpu_test_support.hpp"

using namespace livs;
using namespace livs::evaluator;
using namespace livs::evaluator::gpu_testing;
using livs::evaluator::testing::transformer_spec;

namespace {

// Model-level tolerances (relative norm). fp32: every kernel's rounding,
// compounded through the layers. bf16: the GEMM inputs are rounded to bf16.
constexpr double kModelFp32Tolerance = 1e-4;
constexpr double kModelBf16LossTolerance = 1e-2;
constexpr double kModelBf16GradTolerance = 5e-2;

struct ModelRun {
  std::vector<float> losses, aux, grads, decode_logits;  // aux: the load-balancing loss (MoE), else 0
};

ModelRun run_model(const genome::ModelSpec& spec, Backend& be, const PlanShape& shape) {
  Model model(spec, be, shape, 1234);
  const auto inputs = random_tokens(shape.tokens(), spec.vocab, 50);
  const auto targets = random_tokens(shape.tokens(), spec.vocab, 51);
  ModelRun run;
  model.forward(inputs.data(), targets.data());
  run.losses = model.token_losses();
  run.aux = {float(model.auxiliary_loss())};
  model.zero_grads();
  model.backward();
  run.grads.resize(std::size_t(model.parameters().count()));
  be.copy_to_host(run.grads.data(), model.grads(), run.grads.size() * sizeof(float));
  model.reset_decode();
  std::vector<float> logits(std::size_t(shape.decode_batch) * spec.vocab);
  for (int64_t p = 0; p < shape.decode_context; ++p) {
    const auto tokens = random_tokens(shape.decode_batch, spec.vocab, 60 + p);
    model.decode_step(tokens.data(), p, logits.data());
    run.decode_logits.insert(run.decode_logits.end(), logits.begin(), logits.end());
  }
  return run;
}

void compare_models(const genome::ModelSpec& spec, const PlanShape& shape) {
  const ModelRun want = run_model(spec, cpu(), shape);
  const ModelRun exact = run_model(spec, gpu(), shape);
  check_close("fp32 token losses", exact.losses, want.losses, kModelFp32Tolerance);
  check_close("fp32 auxiliary loss", exact.aux, want.aux, kModelFp32Tolerance);
  check_close("fp32 gradients", exact.grads, want.grads, kModelFp32Tolerance);
  check_close("fp32 decode logits", exact.decode_logits, want.decode_logits, kModelFp32Tolerance);
  const ModelRun fast = run_model(spec, gpu_bf16(), shape);
  check_close("bf16 token losses", fast.losses, want.losses, kModelBf16LossTolerance);
  check_close("bf16 auxiliary loss", fast.aux, want.aux, kModelBf16LossTolerance);
  check_close("bf16 gradients", fast.grads, want.grads, kModelBf16GradTolerance);
  check_close("bf16 decode logits", fast.decode_logits, want.decode_logits, kModelBf16GradTolerance);
}

PlanShape plan(int batch, int seq, int decode_batch, int64_t decode_context) {
  PlanShape shape;
  shape.batch = batch;
  shape.seq = seq;
  shape.decode_batch = decode_batch;
  shape.decode_context = decode_context;
  return shape;
}

}  // namespace

TEST_CASE("transformer: losses, gradients and decode match the CPU backend") {
  compare_models(transformer_spec(64, 2, 4, 2, 128), plan(3, 45, 2, 20));
}

TEST_CASE("transformer with MQA, a sliding window and qk-norm matches the CPU backend") {
  compare_models(transformer_spec(96, 2, 6, 1, 160, 256, 16, true), plan(2, 70, 3, 40));
}

TEST_CASE("transformer with a large vocabulary matches the CPU backend") {
  compare_models(transformer_spec(128, 1, 2, 2, 256, 50304), plan(2, 33, 1, 5));
}

TEST_CASE("every preset: losses, gradients and decode match the CPU backend") {
  for (const std::string& name : genome::preset_names()) {
    CAPTURE(name);
    const genome::ModelSpec spec = genome::decode(genome::preset(name, 64, 2));
    try {  // a preset the evaluator cannot build yet is the evaluator's gap, not the CUDA backend's
      Model probe(spec, cpu(), plan(1, 4, 0, 0), 1);
    } catch (const std::invalid_argument& e) {
      WARN_MESSAGE(false, name << ": the evaluator does not build it yet: " << e.what());
      continue;
    }
    MESSAGE("preset " << name);
    CHECK_NOTHROW(compare_models(spec, plan(2, 33, 2, 12)));
  }
}

// The token mixer of a preset (its first slot).
genome::OpGene mixer_of(const std::string& preset) { return genome::preset(preset, 64, 1).slots[0].ops[0]; }

genome::Slot slot_with(genome::FusionKind fusion, std::vector<genome::OpGene> ops) {
  genome::Slot slot;
  slot.fusion = fusion;
  slot.ops = std::move(ops);
  return slot;
}

TEST_CASE("a hybrid with differential mixers, fusion slots and MoE matches the CPU backend") {
  genome::Genome g;
  g.d_model = 64;
  auto differential = [](genome::OpGene op) {
    op.differential = true;
    return op;
  };
  genome::OpGene moe;
  moe.cls = genome::LivClass::moe;
  moe.moe.hidden = 64;
  using genome::FusionKind;
  g.slots = {slot_with(FusionKind::none, {differential(mixer_of("transformer"))}),
             slot_with(FusionKind::none, {moe}),
             slot_with(FusionKind::gate, {mixer_of("griffin"), mixer_of("lfm2")}),
             slot_with(FusionKind::none, {differential(mixer_of("striped-mamba"))}),
             slot_with(FusionKind::mean,
                       {differential(mixer_of("linear-transformer")), differential(mixer_of("griffin"))}),
             slot_with(FusionKind::sum, {differential(mixer_of("lfm2")), mixer_of("hyena-like")})};
  const genome::ModelSpec spec = genome::decode(g);
  compare_models(spec, plan(2, 29, 2, 10));
}

namespace {

struct CurveComparison {
  TrainReport cpu, cuda;
  double worst_gap = 0.0;  // the largest gap between 10-step means of the two curves
  std::string means;       // both curves' 10-step means, for the failure message
};

// The 200-step run of the curve test (transformer d 64, 2 layers, batch 8,
// T 64, KJV bytes) on the CPU and on the bf16 CUDA backend, from one seed.
CurveComparison compare_curves(uint64_t seed) {
  auto bytes = corpus_bytes(600000);
  REQUIRE_MESSAGE(bytes.size() == 600000, "data/kjv.txt not found (run from the repository root)");
  const std::span<const uint16_t> train(bytes.data(), 500000), validation(bytes.data() + 500000, 100000);
  const auto spec = transformer_spec(64, 2, 4, 2, 192);
  TrainSettings settings;
  settings.steps = 200;
  settings.batch_size = 8;
  settings.seq_len = 64;
  settings.warmup_steps = 20;
  settings.eval_tokens = 8192;
  CurveComparison c;
  c.cpu = train_and_evaluate(spec, settings, train, validation, seed, cpu());
  c.cuda = train_and_evaluate(spec, settings, train, validation, seed, gpu_bf16());
  REQUIRE(c.cpu.status == TrainStatus::ok);
  REQUIRE(c.cuda.status == TrainStatus::ok);
  REQUIRE(c.cuda.train_loss.size() == c.cpu.train_loss.size());
  for (std::size_t w = 0; w + 10 <= c.cpu.train_loss.size(); w += 10) {
    double a = 0.0, b = 0.0;
    for (std::size_t i = w; i < w + 10; ++i) {
      a += c.cpu.train_loss[i];
      b += c.cuda.train_loss[i];
    }
    c.worst_gap = std::max(c.worst_gap, std::abs(a - b) / 10.0);
    char pair[40];
    std::snprintf(pair, sizeof pair, " %.3f/%.3f", a / 10.0, b / 10.0);
    c.means += pair;
  }
  return c;
}

}  // namespace

// bf16 training is not the CPU's fp32 trajectory: these runs sit on a loss
// plateau (about 3.0 nats) until steps 60-130 and then drop, and rounding
// moves the moment of the drop, so one seed's curves can be 0.4 nats apart for
// a while and end up to 19% apart either way. Which seeds do is chaotic: on
// an H100 at one commit, seed 1 ended +18.5% and seed 8 +6.7% (the other six
// within 2%); with fp32 attention seed 6 ended -12.6% and seed 1 -7.7%; with
// cuBLAS rounding in the GEMMs seed 6 +5.9%. The median over the eight seeds
// was +0.3% to +0.4% in all three (docs/architecture.md, "GPU suite"). So the
// test asks what bf16 must not change: the curves agree step by step before
// the plateau is left (tightly while the loss falls, looser once rounding has
// grown: seed 6 differed by 0.022 nats at one step in the 50s), no seed ends
// far away (a blow-up or a run that never learns), and the median seed is
// not worse.
TEST_CASE("200 training steps over eight seeds: the CUDA loss curves follow the CPU ones") {
  std::vector<double> relatives;
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    const CurveComparison c = compare_curves(seed);
    const double relative = (c.cuda.validation_loss - c.cpu.validation_loss) / c.cpu.validation_loss;
    CAPTURE(seed);
    INFO("validation CPU " << c.cpu.validation_loss << " CUDA " << c.cuda.validation_loss
                           << "; 10-step means, CPU/CUDA:" << c.means);
    // Before any run leaves the plateau: the first 30 steps (loss 5.2 -> 3.1,
    // where a wrong gradient shows at once) within 0.01 nats step by step,
    // steps 30-60 (where rounding has begun to grow) within 0.03.
    double early = 0.0, late = 0.0;
    for (std::size_t i = 0; i < 60; ++i) {
      const double gap = std::abs(c.cuda.train_loss[i] - c.cpu.train_loss[i]);
      (i < 30 ? early : late) = std::max(i < 30 ? early : late, gap);
    }
    MESSAGE("seed " << seed << ": largest step gap " << early << " (steps 0-29), " << late << " (30-59)");
    CHECK(early <= 0.01);
    CHECK(late <= 0.03);
    CHECK(std::abs(relative) <= 0.25);
    CHECK(c.cpu.validation_loss < 0.8 * c.cpu.train_loss.front());  // training learns
    CHECK(c.cuda.validation_loss < 0.8 * c.cuda.train_loss.front());
    relatives.push_back(relative);
  }
  std::sort(relatives.begin(), relatives.end());
  const double median = 0.5 * (relatives[3] + relatives[4]);
  MESSAGE("validation CUDA - CPU over eight seeds: median "
          << 100.0 * median << "%, from " << 100.0 * relatives.front() << "% to " << 100.0 * relatives.back()
          << "%");
  CHECK(std::abs(median) <= 0.03);
}

// Not run by default (test_gpu -tc='200-step curves*' --no-skip): every
// seed's curves side by side, the numbers behind the tolerances above.
TEST_CASE("200-step curves over several seeds (diagnostic)" * doctest::skip()) {
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    const CurveComparison c = compare_curves(seed);
    MESSAGE("seed " << seed << ": validation CPU " << c.cpu.validation_loss << " CUDA "
                    << c.cuda.validation_loss << ", worst 10-step gap " << c.worst_gap << "; 10-step means"
                    << c.means);
  }
}
