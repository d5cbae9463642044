#include "cli/config.hpp"

#include <cctype>
#include <filesystem>

#include "cli/device_list.hpp"
#include "common/path_checks.hpp"
#include "genome/genome_json.hpp"
#include "genome/presets.hpp"
#include "proxies/evaluate.hpp"

namespace livs::cli {

namespace {

std::string parse_name(const JsonReader& where) {
  const std::string name = where.string();
  // The name ends up in database rows, file names and report titles.
  bool ok = !name.empty() && name.size() <= 100;
  for (char c : name)
    ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.');
  if (!ok) where.fail("a name of 1-100 letters, digits, '-', '_' or '.'");
  return name;
}

ModelSettings parse_model_settings(const JsonReader& section) {
  section.expect_keys({"d_model", "layers", "context_length"});
  ModelSettings model;
  const auto d_model = section.at("d_model");
  model.d_model = static_cast<int>(d_model.integer(8, 8192));
  // Head sizes and hidden widths are multiples of 8 (vector width, tensor cores).
  if (model.d_model % 8 != 0) d_model.fail("a multiple of 8");
  model.layers = static_cast<int>(section.at("layers").integer(1, 256));
  model.context_length = section.integer_or("context_length", model.context_length, 1, int64_t(1) << 24);
  return model;
}

// An optional object section, as written ({} when absent).
Json object_section(const JsonReader& root, const char* key) {
  auto section = root.find(key);
  if (!section) return Json::object();
  section->expect_object();
  return section->value();
}

// The search space, with the model section's shape and the data's vocabulary
// standing in for what the config leaves open (instead of the genome module's
// defaults), so its consistency checks (heads dividing d_model, ...) see the
// width that is really used.
genome::SearchSpace parse_space(const Config& config) {
  genome::SearchSpace base = genome::default_search_space();
  base.d_model = {config.model.d_model};
  base.depth = {2 * config.model.layers};
  base.vocab = config.data.vocab;
  base.context = static_cast<int>(config.model.context_length);
  const JsonReader section(config.search_space, config.path, "/search_space");
  genome::SearchSpace space = genome::parse_search_space(section, base);
  if (space.vocab != config.data.vocab) {
    section.at("vocab").fail("the data's vocabulary " + std::to_string(config.data.vocab));
  }
  return space;
}

// A params constraint is a budget the genome module can build towards: the
// space's max_params (which repair shrinks genomes under) becomes the
// tighter of the two, so sampling and variation rarely draw a genome the
// analytic screen must refuse.
void budget_space_by_constraints(Config& config) {
  for (const auto& c : config.search.constraints) {
    if (c.metric != "params" || !c.max) continue;
    // A maximum beyond any int64 count limits nothing (and would not convert).
    if (!(*c.max > -9.0e18 && *c.max < 9.0e18)) continue;
    const auto budget = static_cast<int64_t>(*c.max);
    if (config.space.max_params == 0 || budget < config.space.max_params) config.space.max_params = budget;
  }
}

// search.initial: a preset name, else a genome file relative to the config.
// Files are stored resolved (absolute), so a run's stored config reads the
// same files from wherever it is read.
std::vector<search::WarmStart> resolve_warm_start(Config& config, const JsonReader& root) {
  std::vector<search::WarmStart> out;
  if (config.search.initial.empty()) return out;
  const auto list = root.at("search").at("initial");
  const auto& presets = genome::preset_names();
  for (std::size_t i = 0; i < config.search.initial.size(); ++i) {
    auto& entry = config.search.initial[i];
    const auto where = list.index(i);
    search::WarmStart member;
    if (std::find(presets.begin(), presets.end(), entry) != presets.end()) {
      member.genome = genome::preset(entry, config.model.d_model, config.model.layers);
      member.genome.vocab = config.data.vocab;  // presets are built for the data they are trained on
      member.label = "preset " + entry;
    } else {
      std::filesystem::path file(entry);
      if (file.is_relative()) file = std::filesystem::path(config.path).parent_path() / file;
      std::error_code error;
      if (auto absolute = std::filesystem::absolute(file, error); !error) file = absolute.lexically_normal();
      if (!is_file(file)) {
        std::string known;
        for (const auto& name : presets) known += (known.empty() ? "" : ", ") + name;
        std::string message = "\"";
        message += entry;
        message +=
            "\" is neither a preset (" + known + ") nor a genome file (looked for " + file.string() + ")";
        where.fail_message(message);
      }
      member.genome = genome::genome_from_file(file.string());
      if (member.genome.vocab != config.data.vocab)
        where.fail_message(file.string() + " has vocab " + std::to_string(member.genome.vocab) +
                           "; the data's vocabulary is " + std::to_string(config.data.vocab));
      member.label = "file " + std::filesystem::path(entry).filename().string();
      entry = file.string();
    }
    out.push_back(std::move(member));
  }
  return out;
}

}  // namespace

proxies::EvalSettings eval_settings_of(const Config& config) {
  proxies::EvalSettings settings;
  settings.data = config.data;
  settings.training = config.training;
  settings.context_length = config.model.context_length;
  settings.latency = config.latency;  // timed prefill/decode only when the config has "latency"
  settings.tasks = config.tasks;      // synthetic tasks named under "tasks"
  return settings;
}

Config load_config(const std::string& path) { return parse_config(parse_json_file(path), path); }

Config parse_config(const Json& document, const std::string& path) {
  const JsonReader root(document, path);
  root.expect_keys({"name", "seed", "data", "model", "training", "search_space", "objectives", "constraints",
                    "search", "device", "latency", "tasks"});
  Config config;
  config.path = path;
  config.name = parse_name(root.at("name"));
  config.seed = static_cast<uint64_t>(root.at("seed").integer(0));
  config.data = evaluator::parse_data_settings(root.at("data"));
  config.model = parse_model_settings(root.at("model"));
  config.training = object_section(root, "training");
  config.train = evaluator::parse_train_settings(JsonReader(config.training, path, "/training"));
  config.search_space = object_section(root, "search_space");
  config.space = parse_space(config);
  config.search = search::parse_search_settings(root);
  budget_space_by_constraints(config);
  config.warm_start = resolve_warm_start(config, root);
  if (auto device = root.find("device")) {
    // A list is kept in the command line's form, "cuda:0,cuda:2" (cli/device_list.hpp).
    if (device->value().is_array()) {
      if (device->size() == 0) device->fail("a device or a non-empty array of devices");
      config.device.clear();
      for (std::size_t i = 0; i < device->size(); ++i) {
        const auto entry = device->index(i);
        const std::string name = entry.string();
        if (name == "auto" || name == "all" || name.find(',') != std::string::npos)
          entry.fail("\"cpu\", \"cuda\" or \"cuda:N\"");
        config.device += (i ? "," : "") + name;
      }
    } else {
      config.device = device->string();
    }
    if (const auto problem = device_list_problem(config.device); !problem.text.empty()) {
      if (problem.repeated) device->fail_message("expected each device once (" + problem.text + ")");
      device->fail("\"auto\", \"all\", \"cpu\", \"cuda\", \"cuda:N\" or an array of them");
    }
  }
  if (const auto latency = root.find("latency"))
    config.latency = proxies::parse_latency_settings(*latency, config.model.context_length);
  if (const auto tasks = root.find("tasks")) {
    proxies::parse_task_section(*tasks);  // validated here, so a bad section stops the run before it starts
    config.tasks = tasks->value();
  }
  return config;
}

Json to_json(const Config& config) {
  Json out = Json::object();
  out["name"] = config.name;
  out["seed"] = config.seed;
  out["data"] = evaluator::to_json(config.data);
  out["model"] = {{"d_model", config.model.d_model},
                  {"layers", config.model.layers},
                  {"context_length", config.model.context_length}};
  const auto& t = config.train;
  out["training"] = {{"steps", t.steps},
                     {"batch_size", t.batch_size},
                     {"seq_len", t.seq_len},
                     {"learning_rate", t.learning_rate},
                     {"min_lr_ratio", t.min_lr_ratio},
                     {"warmup_steps", t.warmup_steps},
                     {"weight_decay", t.weight_decay},
                     {"beta1", t.beta1},
                     {"beta2", t.beta2},
                     {"grad_clip", t.grad_clip},
                     {"eval_tokens", t.eval_tokens}};
  out["search_space"] = config.search_space;
  if (config.latency) out["latency"] = proxies::to_json(*config.latency);
  if (!config.tasks.empty()) out["tasks"] = config.tasks;
  const auto& search = config.search;
  out["objectives"] = Json::array();
  for (const auto& objective : search.objectives) {
    out["objectives"].push_back(
        {{"name", objective.name},
         {"direction", objective.direction == search::Direction::minimise ? "min" : "max"}});
  }
  out["constraints"] = Json::object();
  for (const auto& constraint : search.constraints) {
    Json bounds = Json::object();
    if (constraint.min) bounds["min"] = *constraint.min;
    if (constraint.max) bounds["max"] = *constraint.max;
    out["constraints"][constraint.metric] = bounds;
  }
  out["search"] = {{"algorithm", search::to_string(search.algorithm)},
                   {"population", search.population},
                   {"generations", search.generations},
                   {"offspring", search.offspring},
                   {"tournament_size", search.tournament_size},
                   {"crossover_probability", search.crossover_probability},
                   {"mutation_probability", search.mutation_probability},
                   {"aging_sample_size", search.aging_sample_size},
                   {"max_evaluations", search.max_evaluations}};
  // Written as before rungs existed when there are none, so that runs stored
  // by earlier versions still resume with their config.
  if (search.fidelities.empty()) {
    out["search"]["fidelity"] = search.fidelity;
  } else {
    out["search"]["fidelities"] = search.fidelities;
    out["search"]["eta"] = search.eta;
  }
  if (search.max_train_seconds > 0) out["search"]["max_train_seconds"] = search.max_train_seconds;
  if (search.candidate_timeout) out["search"]["candidate_timeout"] = *search.candidate_timeout;
  if (!search.initial.empty()) out["search"]["initial"] = search.initial;
  if (search.final_seeds > 0) {
    out["search"]["final"] = {{"top", search.final_top}, {"seeds", search.final_seeds}};
    if (search.final_save_weights) out["search"]["final"]["save_weights"] = true;
  } else
    out["search"]["final"] = false;
  auto point = [&](const std::vector<double>& values) {
    Json p = Json::object();
    for (std::size_t i = 0; i < values.size() && i < search.objectives.size(); ++i)
      p[search.objectives[i].name] = values[i];
    return p;
  };
  if (search.hypervolume_reference || search.hypervolume_ideal) {
    Json hv = Json::object();
    if (search.hypervolume_reference) hv["reference"] = point(*search.hypervolume_reference);
    if (search.hypervolume_ideal) hv["ideal"] = point(*search.hypervolume_ideal);
    out["search"]["hypervolume"] = hv;
  }
  if (const auto devices = device_list_entries(config.device); devices.size() > 1)
    out["device"] = devices;
  else
    out["device"] = config.device;
  return out;
}

}  // namespace livs::cli
