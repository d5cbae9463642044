// Mamba-2's SSD on the GPU against the CPU backend: the chunked kernels
// (forward from zero and from a state, the checkpoints, backward) on lengths
// around the chunk, heads and head_dim that are not powers of two, d_state
// past one block's loop; decode (the recurrence through a state); and whole
// models with Mamba-2 slots (plain, differential, in a fusion), fp32 and bf16.
// Kernel tolerance: relative norm 3e-5 (fp32; the chunked form adds in
// another order than the CPU's step-by-step recurrence). A bf16 backend runs
// the chunk products on the tensor cores (ssd_tc.cu) for head_dim and d_state
// up to 128: the same comparisons at kSsdTensorCoreTolerance, the fp32
// kernels' bits beyond that size, the same bits on every run.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "evaluator/model.hpp"
#include "genome/decode.hpp"
#include "genome/presets.hpp"
#include "tests/gpu/gpu_test_support.hpp"

using namespace livs;
using namespace livs::evaluator;
using namespace livs::evaluator::gpu_testing;

namespace {

using Array = DeviceArray<float>;

// dA sums batch x seq terms of both signs, in another order than the CPU's:
// 1.5e-5 was seen on the H200 at batch 4, seq 256.
constexpr double kSsdTolerance = 3e-5;
constexpr double kModelFp32Tolerance = 1e-4;
constexpr double kModelBf16Tolerance = 5e-2;
// x, B, C, dy, the states and the Q x Q intermediates rounded to bf16 (2^-9
// relative) before each product, sums over up to 128 terms in fp32.
constexpr double kSsdTensorCoreTolerance = 2e-2;

std::string describe(const SsdShape& s) {
  return "batch " + std::to_string(s.batch) + " seq " + std::to_string(s.seq) + " heads " +
         std::to_string(s.heads) + " head_dim " + std::to_string(s.head_dim) + " state " +
         std::to_string(s.state);
}

std::unique_ptr<Array> accumulator(Backend& be, int64_t count, uint64_t seed) {
  return std::make_unique<Array>(be, random_floats(std::size_t(count), seed, 0.5));
}

// Every output of the kernels (forward from zero and from a state, decode,
// backward) for one shape, on `be`.
Outputs run_ssd(Backend& be, const SsdShape& s, uint64_t seed) {
  const int64_t rows = int64_t(s.batch) * s.seq, xbc_n = rows * s.xbc_width(), y_n = rows * s.inner(),
                dt_n = rows * s.heads, states = int64_t(s.batch) * s.inner() * s.state;
  auto dt = random_floats(dt_n, seed);
  for (auto& d : dt) d = std::log1p(std::exp(d - 2.0f));  // softplus: positive steps around 0.1
  auto a_log = random_floats(s.heads, seed + 1);
  // A = e^a_log in [1, 16): the normal draw squashed into (0, 1) first (a raw
  // draw below -1.13 made log's argument negative and every output NaN).
  for (auto& a : a_log) a = std::log(1.0f + 15.0f / (1.0f + std::exp(-a)));
  const auto xbc = random_floats(xbc_n, seed + 2), D = random_floats(s.heads, seed + 3),
             dy = random_floats(y_n, seed + 4), h0 = random_floats(states, seed + 5);
  Array dxbc_in(be, xbc), ddt_in(be, dt), dalog_in(be, a_log), dD_in(be, D), ddy(be, dy), state(be, h0),
      decode_state(be, h0);
  auto y = poisoned(be, y_n), cp = poisoned(be, ssd_checkpoint_floats(s));
  auto y_from_state = poisoned(be, y_n), cp_from_state = poisoned(be, ssd_checkpoint_floats(s));
  auto y_decode = poisoned(be, y_n);
  auto dxbc = poisoned(be, xbc_n), ddt = poisoned(be, dt_n);  // written whole
  auto dalog = accumulator(be, s.heads, seed + 8), dD = accumulator(be, s.heads, seed + 9);
  auto partials = poisoned(be, ssd_partial_floats(s));
  be.ssd_forward(y->data(), cp->data(), dxbc_in.data(), ddt_in.data(), dalog_in.data(), dD_in.data(), nullptr,
                 s);
  be.ssd_backward(dxbc->data(), ddt->data(), dalog->data(), dD->data(), partials->data(), ddy.data(),
                  cp->data(), dxbc_in.data(), ddt_in.data(), dalog_in.data(), dD_in.data(), s);
  be.ssd_forward(y_from_state->data(), cp_from_state->data(), dxbc_in.data(), ddt_in.data(), dalog_in.data(),
                 dD_in.data(), state.data(), s);
  // Without checkpoints: the recurrence through the state (decode's path), over the whole sequence.
  be.ssd_forward(y_decode->data(), nullptr, dxbc_in.data(), ddt_in.data(), dalog_in.data(), dD_in.data(),
                 decode_state.data(), s);
  return Outputs{{"y", y->download()},
                 {"checkpoints", cp->download()},
                 {"y from a state", y_from_state->download()},
                 {"checkpoints from a state", cp_from_state->download()},
                 {"last state", state.download()},
                 {"y through the recurrence", y_decode->download()},
                 {"last state through the recurrence", decode_state.download()},
                 {"dxbc", dxbc->download()},
                 {"ddt", ddt->download()},
                 {"da_log", dalog->download()},
                 {"dD", dD->download()}};
}

void check_ssd(const SsdShape& s, uint64_t seed) {
  CAPTURE(describe(s));
  compare_backends(
      "ssd " + describe(s), [&](Backend& be) { return run_ssd(be, s, seed); }, kSsdTolerance);
}

// The tensor-core path against the CPU; returns the largest relative error seen.
double check_ssd_tensor_cores(const SsdShape& s, uint64_t seed) {
  CAPTURE(describe(s));
  const Outputs want = run_ssd(cpu(), s, seed), got = run_ssd(gpu_bf16(), s, seed);
  REQUIRE(got.size() == want.size());
  double worst = 0.0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    check_close("ssd bf16 " + want[i].first, got[i].second, want[i].second, kSsdTensorCoreTolerance);
    worst = std::max(worst, relative_error(got[i].second, want[i].second));
  }
  return worst;
}

genome::OpGene ssd_op(int d, int head_dim, int state, bool differential) {
  genome::OpGene op = genome::default_op(genome::LivClass::ssm, d);
  op.ssm.form = genome::SsmForm::mamba2;
  op.ssm.head_dim = head_dim;
  op.ssm.d_state = state;
  op.differential = differential;
  return op;
}

struct ModelRun {
  std::vector<float> losses, grads, decode_logits;
};

ModelRun run_model(const genome::ModelSpec& spec, Backend& be, const PlanShape& shape) {
  Model model(spec, be, shape, 77);
  const auto inputs = random_tokens(shape.tokens(), spec.vocab, 70);
  const auto targets = random_tokens(shape.tokens(), spec.vocab, 71);
  ModelRun run;
  model.forward(inputs.data(), targets.data());
  run.losses = model.token_losses();
  model.zero_grads();
  model.backward();
  run.grads.resize(std::size_t(model.parameters().count()));
  be.copy_to_host(run.grads.data(), model.grads(), run.grads.size() * sizeof(float));
  model.reset_decode();
  std::vector<float> logits(std::size_t(shape.decode_batch) * spec.vocab);
  for (int64_t p = 0; p < shape.decode_context; ++p) {
    const auto tokens = random_tokens(shape.decode_batch, spec.vocab, 80 + p);
    model.decode_step(tokens.data(), p, logits.data());
    run.decode_logits.insert(run.decode_logits.end(), logits.begin(), logits.end());
  }
  return run;
}

}  // namespace

TEST_CASE("ssd kernels: lengths around the chunk, from zero and from a state, backward") {
  check_ssd({2, 1, 3, 4, 5}, 500);
  check_ssd({2, 63, 3, 4, 5}, 510);
  check_ssd({2, 64, 3, 4, 5}, 520);
  check_ssd({1, 65, 2, 16, 16}, 530);
  check_ssd({3, 200, 5, 12, 7}, 540);
}

TEST_CASE("ssd kernels: Mamba-2's sizes (head_dim 64, d_state 64 and 128) and a long sequence") {
  check_ssd({4, 256, 4, 64, 64}, 550);
  check_ssd({2, 130, 2, 64, 128}, 560);
  check_ssd({1, 1024, 8, 32, 16}, 570);
  check_ssd({2, 70, 3, 5, 300}, 580);  // d_state past a block's threads
}

TEST_CASE("ssd tensor cores: every size the fp32 kernels are checked at, up to head_dim and d_state 128") {
  double worst = 0.0;
  for (const auto& [shape, seed] : std::vector<std::pair<SsdShape, uint64_t>>{{{2, 1, 3, 4, 5}, 600},
                                                                              {{2, 63, 3, 4, 5}, 610},
                                                                              {{2, 64, 3, 4, 5}, 620},
                                                                              {{1, 65, 2, 16, 16}, 630},
                                                                              {{3, 200, 5, 12, 7}, 640},
                                                                              {{4, 256, 4, 64, 64}, 650},
                                                                              {{2, 130, 2, 64, 128}, 660},
                                                                              {{1, 1024, 8, 32, 16}, 670},
                                                                              {{2, 100, 2, 128, 128}, 680},
                                                                              {{2, 90, 3, 100, 20}, 690}})
    worst = std::max(worst, check_ssd_tensor_cores(shape, seed));
  MESSAGE("ssd tensor cores: largest relative error " << worst << " (tolerance " << kSsdTensorCoreTolerance
                                                      << ")");
}

TEST_CASE("ssd tensor cores: taken in bf16 up to 128, the fp32 kernels past it, the same bits every run") {
  const auto same_bits = [](const Outputs& a, const Outputs& b) {
    for (std::size_t i = 0; i < a.size(); ++i)
      if (a[i].second.size() != b[i].second.size() ||
          std::memcmp(a[i].second.data(), b[i].second.data(), a[i].second.size() * sizeof(float)) != 0)
        return false;
    return true;
  };
  const SsdShape fits{4, 256, 4, 64, 64}, too_wide{2, 70, 3, 5, 300};
  const Outputs exact = run_ssd(gpu(), fits, 700), mixed = run_ssd(gpu_bf16(), fits, 700);
  CHECK_FALSE(same_bits(exact, mixed));  // the bf16 backend took the tensor cores
  CHECK(same_bits(mixed, run_ssd(gpu_bf16(), fits, 700)));
  CHECK(same_bits(run_ssd(gpu(), too_wide, 710), run_ssd(gpu_bf16(), too_wide, 710)));
}

TEST_CASE("ssd models: Mamba-2 slots, differential and in a fusion, match the CPU backend") {
  genome::Genome g;
  g.d_model = 64;
  g.slots.push_back({genome::FusionKind::none, {ssd_op(64, 16, 16, false)}});
  g.slots.push_back({genome::FusionKind::none, {genome::default_op(genome::LivClass::swiglu, 64)}});
  g.slots.push_back({genome::FusionKind::none, {ssd_op(64, 32, 8, true)}});
  g.slots.push_back(
      {genome::FusionKind::gate, {ssd_op(64, 64, 64, false), genome::default_op(genome::LivClass::sa, 64)}});
  for (const auto& spec : {genome::decode(g), genome::decode(genome::preset("mamba2-hybrid", 64, 4))}) {
    PlanShape shape;
    shape.batch = 2;
    shape.seq = 100;  // two chunks, the second partial
    shape.decode_batch = 2;
    shape.decode_context = 12;
    const ModelRun want = run_model(spec, cpu(), shape);
    const ModelRun exact = run_model(spec, gpu(), shape);
    check_close("fp32 token losses", exact.losses, want.losses, kModelFp32Tolerance);
    check_close("fp32 gradients", exact.grads, want.grads, kModelFp32Tolerance);
    check_close("fp32 decode logits", exact.decode_logits, want.decode_logits, kModelFp32Tolerance);
    const ModelRun fast = run_model(spec, gpu_bf16(), shape);
    check_close("bf16 token losses", fast.losses, want.losses, kModelBf16Tolerance);
    check_close("bf16 gradients", fast.grads, want.grads, kModelBf16Tolerance);
    check_close("bf16 decode logits", fast.decode_logits, want.decode_logits, kModelBf16Tolerance);
  }
}
