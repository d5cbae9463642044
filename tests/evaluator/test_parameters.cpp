// ParameterStore: layout and initialisation.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "common/rng.hpp"
#include "evaluator/cpu/cpu_backend.hpp"
#include "evaluator/parameters.hpp"

using namespace livs::evaluator;
using livs::derive_seed;
using livs::Rng;

TEST_CASE("normal initialisation gives the bits of drawing rng.normal() value by value") {
  // Several chunks of the parallel transform (2^18 values each) and a short tail.
  ParameterStore params;
  Param wide, out, gain;
  const int64_t rows = 700, cols = 1031;
  params.declare("embedding", {rows, cols}, Init::normal, true, &wide);
  params.declare("slot0.op0.wo", {3, 5}, Init::out_projection, true, &out);
  params.declare("slot0.norm", {7}, Init::ones, false, &gain);
  std::vector<float> values(std::size_t(params.count())), grads(values.size());
  params.bind(values.data(), grads.data());
  CpuBackend backend;
  const uint64_t seed = 1234;
  const int slots = 6;
  params.initialize(backend, seed, slots);

  Rng embedding_rng(derive_seed(seed, "embedding"));
  for (int64_t i = 0; i < rows * cols; ++i) REQUIRE(wide.value[i] == float(embedding_rng.normal(0.0, 0.02)));
  Rng out_rng(derive_seed(seed, "slot0.op0.wo"));
  const double out_scale = 1.0 / std::sqrt(2.0 * slots);
  for (int64_t i = 0; i < 15; ++i) REQUIRE(out.value[i] == float(out_rng.normal(0.0, 0.02 * out_scale)));
  for (int64_t i = 0; i < 7; ++i) CHECK(gain.value[i] == 1.0f);
}
