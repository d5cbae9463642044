#include "proxies/objectives.hpp"

#include <algorithm>
#include <stdexcept>

namespace livs::proxies {

const char* to_string(Measurement m) {
  switch (m) {
    case Measurement::training:
      return "training";
    case Measurement::analytic:
      return "analytic";
    case Measurement::latency:
      return "latency";
    case Measurement::memory:
      return "memory";
    case Measurement::synthetic:
      return "synthetic";
  }
  return "?";
}

namespace {

// How each catalogue entry is measured. A catalogue entry missing here is a
// programming error caught by the first call (and by the tests).
Measurement measurement_of(std::string_view name) {
  if (name == "perplexity" || name == "validation_loss" || name == "train_seconds" || name == "train_ms" ||
      name == "steps")
    return Measurement::training;
  if (name.starts_with("params") || name.starts_with("flops_per_token") || name == "cache_bytes")
    return Measurement::analytic;
  if (name.starts_with("prefill_") || name.starts_with("decode_")) return Measurement::latency;
  if (name.starts_with("peak_memory")) return Measurement::memory;
  if (name.ends_with("_accuracy")) return Measurement::synthetic;
  throw std::logic_error("objective \"" + std::string(name) +
                         "\" has no measurement in proxies/objectives.cpp");
}

std::string_view settings_of(Measurement m) {
  switch (m) {
    case Measurement::training:
      return "training, data";
    case Measurement::analytic:
      return "model.context_length, training.seq_len, inference_dtype_bytes";
    case Measurement::latency:
      return "latency (batch, prompt, context, warmup, repeats)";
    case Measurement::memory:
      return "training (batch_size, seq_len), latency (batch, context)";
    case Measurement::synthetic:
      return "tasks.<name> (vocab, seq_len, examples, ...), tasks.training";
  }
  return "";
}

}  // namespace

const std::vector<RegisteredObjective>& objective_registry() {
  static const std::vector<RegisteredObjective> registry = [] {
    std::vector<RegisteredObjective> r;
    for (const auto& info : objective_catalogue()) {
      const auto m = measurement_of(info.name);
      r.push_back({&info, m, settings_of(m)});
    }
    return r;
  }();
  return registry;
}

const RegisteredObjective* find_registered(std::string_view name) {
  const auto& registry = objective_registry();
  const auto it = std::find_if(registry.begin(), registry.end(),
                               [&](const RegisteredObjective& o) { return o.info->name == name; });
  return it == registry.end() ? nullptr : &*it;
}

}  // namespace livs::proxies
