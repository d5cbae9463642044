// Fusion slots (two mixers on the same normed input, combined by sum, mean or
// a learned gate) and feature sharing (sa reuses an earlier sa's K and V,
// linattn an earlier linattn's K, V, decay and state): whole-model gradients
// against finite differences, decode against the forward, and the decode
// state against the ModelSpec (a sharer holds none).
#include <doctest/doctest.h>
#include <tbb/global_control.h>

#include <cstring>

#include "genome/presets.hpp"
#include "tests/evaluator/mix_checks.hpp"

using namespace livs::evaluator;
using namespace livs::evaluator::testing;
namespace genome = livs::genome;

namespace {

genome::OpGene sharing(genome::OpGene op, int slot, int index = 0) {
  op.features = {slot, index};
  return op;
}

const auto kElu = genome::FeatureMap::elu_plus_one;

}  // namespace

TEST_CASE("fusion slots: model gradient against finite differences for sum, mean and gate") {
  for (auto kind : {genome::FusionKind::sum, genome::FusionKind::mean, genome::FusionKind::gate}) {
    CAPTURE(genome::to_string(kind));
    auto spec = small_vocab(
        decode_slots(8, {fused(kind, sa_gene(2, 1), linattn_gene(2, kElu, true)), striped(swiglu_gene(16))}));
    check_model_gradients(spec, 2, 5);
  }
}

TEST_CASE("fusion slots: decode equals the forward and holds both mixers' state") {
  for (auto kind : {genome::FusionKind::sum, genome::FusionKind::mean, genome::FusionKind::gate}) {
    CAPTURE(genome::to_string(kind));
    auto spec = small_vocab(decode_slots(16, {fused(kind, sa_gene(2, 1, 3), linattn_gene(2, kElu, false)),
                                              striped(swiglu_gene(32))}),
                            29);
    check_model_decode(spec, 2, 7);
  }
}

TEST_CASE("sa K/V feature sharing: model gradient against finite differences (dK, dV reach the source)") {
  auto spec = small_vocab(decode_slots(8, {striped(sa_gene(2, 1, 0, true)), striped(swiglu_gene(16)),
                                           striped(sharing(sa_gene(2, 1, 0, true), 0))}));
  REQUIRE(spec.slots[2].ops[0].state.per_token_elements == 0);
  check_model_gradients(spec, 2, 5);
}

TEST_CASE("differential sa with K/V feature sharing: gradients, decode and cache") {
  auto spec = small_vocab(decode_slots(
      8, {striped(sa_gene(2, 2, 3, false, true)), striped(sharing(sa_gene(2, 2, 3, false, true), 0))}));
  check_model_gradients(spec, 1, 6);
  check_model_decode(spec, 2, 8);
}

TEST_CASE("sa K/V feature sharing: decode equals the forward, the sharer holds no cache") {
  auto spec = small_vocab(decode_slots(16, {striped(sa_gene(4, 2, 4)), striped(swiglu_gene(16)),
                                            striped(sharing(sa_gene(4, 2, 4), 0))}),
                          31);
  check_model_decode(spec, 2, 9);
  CHECK(spec.decode_state_elements(9) == 2 * 2 * 4 * 4);  // one cache: the source's window of 4
}

TEST_CASE("linattn state sharing: model gradients, decode and state (gated and differential)") {
  for (bool differential : {false, true}) {
    CAPTURE(differential);
    auto spec =
        small_vocab(decode_slots(8, {striped(linattn_gene(2, kElu, true, differential)),
                                     striped(sharing(linattn_gene(2, kElu, true, differential), 0))}));
    check_model_gradients(spec, 2, 4, {3e-3});  // a smaller step: the norm of a small output curves
    check_model_decode(spec, 2, 6);
    CHECK(spec.slots[1].ops[0].state.fixed_elements == 0);
  }
}

TEST_CASE("feature sharing inside a fusion slot reads an earlier slot's features") {
  auto spec = small_vocab(decode_slots(
      8, {striped(sa_gene(2, 2)),
          fused(genome::FusionKind::gate, sharing(sa_gene(2, 2), 0), linattn_gene(1, kElu, true))}));
  check_model_gradients(spec, 1, 5);
  check_model_decode(spec, 2, 5);
}

TEST_CASE("the linear-transformer preset trains: the loss falls") {
  auto spec = genome::decode(genome::preset("linear-transformer", 32, 2));
  CpuBackend backend;
  Model model(spec, backend, {4, 32}, 5);
  // A repeating pattern the model can learn in a few steps.
  std::vector<int32_t> inputs(4 * 32), targets(4 * 32);
  for (int i = 0; i < 4 * 32; ++i) {
    inputs[i] = (i * 7) % 23;
    targets[i] = ((i + 1) * 7) % 23;
  }
  std::vector<double> losses;
  for (int step = 1; step <= 30; ++step) {
    losses.push_back(model.forward(inputs.data(), targets.data()));
    model.zero_grads();
    model.backward();
    const auto& d = model.parameters().decayed();
    const auto& nd = model.parameters().not_decayed();
    for (auto [group, decay] : {std::pair{d, 0.1f}, std::pair{nd, 0.0f}})
      backend.adamw_update(model.values() + group.offset, model.grads() + group.offset,
                           model.adam_m() + group.offset, model.adam_v() + group.offset, group.count,
                           {1e-2f, 0.9f, 0.95f, 1e-8f, decay, 1.0f, step});
  }
  MESSAGE("linear-transformer loss " << losses.front() << " -> " << losses.back());
  CHECK(losses.back() < 0.25 * losses.front());
  for (std::size_t i = 5; i < losses.size(); i += 5) CHECK(losses[i] < losses[i - 5]);
}

TEST_CASE(
    "linattn, moe, differential sa, a gated fusion and sharing give the same bits with 1 and 4 threads") {
  auto spec = small_vocab(decode_slots(
      16, {fused(genome::FusionKind::gate, sa_gene(2, 1, 0, false, true), linattn_gene(2, kElu, true)),
           striped(moe_gene(4, 2, 16)), striped(sharing(linattn_gene(2, kElu, true), 0, 1)),
           striped(sharing(sa_gene(2, 1, 0, false, true), 0, 0))}));
  auto run = [&](int threads) {
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
    CpuBackend backend;
    Model model(spec, backend, {3, 40}, 9);
    randomize(model);
    auto inputs = random_tokens(120, spec.vocab, 1), targets = random_tokens(120, spec.vocab, 2);
    const double loss = model.forward(inputs.data(), targets.data());
    model.zero_grads();
    model.backward();
    std::vector<float> out(model.grads(), model.grads() + model.parameters().count());
    out.push_back(float(loss));
    out.push_back(float(model.auxiliary_loss()));
    return out;
  };
  const auto one = run(1), four = run(4);
  REQUIRE(one.size() == four.size());
  CHECK(std::memcmp(one.data(), four.data(), one.size() * sizeof(float)) == 0);
}
