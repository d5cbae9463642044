#include "cli/config.hpp"

#include <cctype>

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

// Until the owning module's parser exists, a section is checked to be an
// object and kept as written.
Json object_section(const JsonReader& root, const char* key) {
  auto section = root.find(key);
  if (!section) return Json::object();
  section->expect_object();
  return section->value();
}

}  // namespace

bool is_valid_device(const std::string& device) {
  if (device == "auto" || device == "cpu" || device == "cuda") return true;
  if (device.rfind("cuda:", 0) != 0 || device.size() == 5 || device.size() > 8) return false;
  for (std::size_t i = 5; i < device.size(); ++i)
    if (!std::isdigit(static_cast<unsigned char>(device[i]))) return false;
  return true;
}

Config load_config(const std::string& path) {
  const Json document = parse_json_file(path);
  const JsonReader root(document, path);
  root.expect_keys({"name", "seed", "data", "model", "training", "search_space", "objectives", "constraints",
                    "search", "device"});
  Config config;
  config.path = path;
  config.name = parse_name(root.at("name"));
  config.seed = static_cast<uint64_t>(root.at("seed").integer(0));
  config.data = evaluator::parse_data_settings(root.at("data"));
  config.model = parse_model_settings(root.at("model"));
  config.training = object_section(root, "training");
  config.search_space = object_section(root, "search_space");
  config.search = search::parse_search_settings(root);
  if (auto device = root.find("device")) {
    config.device = device->string();
    if (!is_valid_device(config.device)) device->fail("\"auto\", \"cpu\", \"cuda\" or \"cuda:N\"");
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
  out["training"] = config.training;
  out["search_space"] = config.search_space;
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
  out["device"] = config.device;
  return out;
}

}  // namespace livs::cli
