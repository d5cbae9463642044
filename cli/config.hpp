#pragma once
// The search config: one JSON file that says what to search, on which data,
// for how long, and how candidates are scored. It is validated whole before
// any work starts; every mistake is an InputError naming the file, the JSON
// pointer and what was expected. Each section is parsed by the module that
// owns its meaning (data and training by the evaluator, search_space by the
// genome module, search/objectives/constraints by the search module); this
// file only knows the top level and the model shape, and how they fit together.
#include <cstdint>
#include <optional>
#include <string>

#include "common/json_reader.hpp"
#include "evaluator/data/data_settings.hpp"
#include "evaluator/train_settings.hpp"
#include "genome/search_space.hpp"
#include "proxies/evaluate.hpp"
#include "proxies/latency.hpp"
#include "search/genome_search.hpp"
#include "search/settings.hpp"

namespace livs::cli {

// The model shape every candidate shares (STAR fixes width and depth per search).
struct ModelSettings {
  int d_model = 128;
  int layers = 4;                 // mixer + MLP layer pairs of a preset; the backbone depth of a search
  int64_t context_length = 2048;  // the context at which cache size and decode latency are measured
};

struct Config {
  std::string path;  // the file it came from
  std::string name;  // run name
  uint64_t seed = 0;
  evaluator::DataSettings data;
  ModelSettings model;
  Json training;                   // the section as written (what a run records)
  evaluator::TrainSettings train;  // ... and resolved by evaluator::parse_train_settings
  Json search_space;               // the section as written
  // ... and resolved by genome::parse_search_space, with the model section
  // filling in what the space leaves open: d_model, depth 2 * layers (a mixer
  // and an MLP per layer, as in the presets), the data's vocabulary, and
  // context_length as the context at which a sliding window counts as global.
  genome::SearchSpace space;
  search::SearchSettings search;  // "search", "objectives" and "constraints"
  // search.initial resolved: presets sized by the model section, genome files
  // read (relative to the config); each checked to fit the data's vocabulary.
  std::vector<search::WarmStart> warm_start;
  // "auto" (a GPU when there is one, else the CPU), "all", "cpu", "cuda", "cuda:N" or a list
  // "cuda:0,cuda:2" (the config's array joined): cli/device_list.hpp.
  std::string device = "auto";
  // "latency": prefill/decode timing (proxies/latency.hpp); absent: not timed.
  std::optional<proxies::LatencySettings> latency;
  // "tasks": synthetic tasks to train and score (proxies/evaluate.hpp, parse_task_section), as written.
  Json tasks = Json::object();
};

// Reads and validates a config file; throws InputError on the first problem.
Config load_config(const std::string& path);
// The same for a config already parsed; `path` names it in errors and is the
// folder relative paths start from (a run's stored config has absolute ones).
Config parse_config(const Json& document, const std::string& path);

// What every evaluation of a search with this config shares.
proxies::EvalSettings eval_settings_of(const Config& config);

// The resolved config (defaults filled in, paths resolved), as `livsearch check` prints it.
Json to_json(const Config& config);

}  // namespace livs::cli
