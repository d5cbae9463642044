#include "evaluator/trained_model.hpp"

#include <stdexcept>

#include "genome/checkpoint.hpp"

namespace livs::evaluator {

std::vector<HostTensor> copy_weights(Model& model, const genome::ModelSpec& spec) {
  std::vector<HostTensor> out;
  Backend& backend = model.backend();
  for (const auto& w : genome::checkpoint_weights(spec)) {
    const std::string stored = w.slot < 0 ? w.local
                               : w.op < 0 ? parameter_name(w.slot, w.local)
                                          : parameter_name(w.slot, w.op, w.local);
    const ParameterStore::Entry* entry = model.parameters().entry(stored);
    if (!entry || entry->shape != w.shape)
      throw std::logic_error("copy_weights: the model holds no weight " + stored + " of shape " +
                             shape_to_string(w.shape) + " for " + w.name);
    HostTensor t{w.name, w.shape, std::vector<float>(static_cast<std::size_t>(entry->numel))};
    backend.copy_to_host(t.values.data(), model.values() + entry->offset, t.values.size() * sizeof(float));
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace livs::evaluator
