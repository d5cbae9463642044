// Checkpoint names: the model, slot and op weights under the export's module
// paths, in model order, a featurizer-shared weight once under its owner.
#include <doctest/doctest.h>

#include "genome/checkpoint.hpp"
#include "genome/decode.hpp"
#include "genome/genome_json.hpp"
#include "genome/presets.hpp"

using namespace livs::genome;

TEST_CASE("checkpoint names: every owned weight once, in model order") {
  const Genome g = genome_from_json(livs::parse_json_text(R"({"d_model": 16, "vocab": 32, "slots": [
      {"class": "swiglu", "hidden": 24},
      {"fusion": "gate", "ops": [{"class": "gconv", "kernel": 3}, {"class": "gconv", "kernel": 2}]},
      {"class": "swiglu", "hidden": 24, "share_featurizer": {"slot": 0, "op": 0}}]})",
                                                          "g"));
  std::vector<std::string> names;
  const auto weights = checkpoint_weights(decode(g));
  for (const auto& w : weights) names.push_back(w.name);
  CHECK(names == std::vector<std::string>{"embedding", "slots.0.norm", "slots.0.ops.0.w_gate",
                                          "slots.0.ops.0.w_up", "slots.0.ops.0.w_down", "slots.1.norm",
                                          "slots.1.gate", "slots.1.ops.0.w_in", "slots.1.ops.0.conv",
                                          "slots.1.ops.0.w_out", "slots.1.ops.1.w_in", "slots.1.ops.1.conv",
                                          "slots.1.ops.1.w_out", "slots.2.norm", "final_norm"});
  CHECK(weights[0].shape == std::vector<int64_t>{32, 16});
  CHECK(weights[8].slot == 1);
  CHECK(weights[8].op == 0);
  CHECK(weights[8].local == "conv");
  int64_t total = 0;
  for (const auto& w : weights) {
    int64_t n = 1;
    for (auto d : w.shape) n *= d;
    total += n;
  }
  CHECK(total == decode(g).params_total());
}
