#include "genome/checkpoint.hpp"

namespace livs::genome {

std::string checkpoint_name(int slot, const std::string& slot_weight) {
  return "slots." + std::to_string(slot) + "." + slot_weight;
}

std::string checkpoint_name(int slot, int op, const std::string& op_weight) {
  return "slots." + std::to_string(slot) + ".ops." + std::to_string(op) + "." + op_weight;
}

std::vector<CheckpointWeight> checkpoint_weights(const ModelSpec& spec) {
  std::vector<CheckpointWeight> out;
  auto model_weight = [&](const std::string& name) {
    for (const auto& w : spec.weights)
      if (w.name == name) out.push_back({w.name, w.shape, -1, -1, w.name});
  };
  model_weight("embedding");
  for (int s = 0; s < int(spec.slots.size()); ++s) {
    const SlotSpec& slot = spec.slots[s];
    for (const auto& w : slot.weights) out.push_back({checkpoint_name(s, w.name), w.shape, s, -1, w.name});
    for (int o = 0; o < int(slot.ops.size()); ++o)
      for (const auto& w : slot.ops[o].weights)
        out.push_back({checkpoint_name(s, o, w.name), w.shape, s, o, w.name});
  }
  model_weight("final_norm");
  return out;
}

}  // namespace livs::genome
