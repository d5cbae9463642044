#pragma once
// The objective registry of the evaluator side: the catalogue's plain data
// (common/objective_catalogue.hpp: name, unit, direction, ideal) plus how
// proxies/ measures each one and which config settings that needs. evaluate()
// measures a group only when the request asks for one of its metrics (or for
// everything), so a search on perplexity and cache_bytes pays no latency runs.
#include <string>
#include <string_view>
#include <vector>

#include "common/objective_catalogue.hpp"

namespace livs::proxies {

enum class Measurement {
  training,   // train for the budget, score the validation slice (perplexity, loss)
  analytic,   // from the ModelSpec alone (params, flops, cache_bytes)
  latency,    // timed prefill and decode runs on the evaluation device
  memory,     // the memory plans of training and inference
  synthetic,  // train and score a synthetic task (MAD, Zoology)
};
const char* to_string(Measurement m);

struct RegisteredObjective {
  const ObjectiveInfo* info;  // name, unit, direction, ideal
  Measurement measurement;
  std::string_view settings;  // the config sections the measurement reads
};

// Every objective of the catalogue with its measurement, in catalogue order.
const std::vector<RegisteredObjective>& objective_registry();
// nullptr when the name is not registered.
const RegisteredObjective* find_registered(std::string_view name);

}  // namespace livs::proxies
