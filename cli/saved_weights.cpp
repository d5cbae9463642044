#include "cli/saved_weights.hpp"

#include <fstream>

#include "common/input_error.hpp"
#include "export/safetensors.hpp"

namespace livs::cli {

namespace {

void write_json(const std::filesystem::path& path, const Json& json) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << json.dump(2) << "\n";
  out.close();
  if (!out) throw InputError(path.string(), "", "cannot write the file");
}

void create_folder(const std::filesystem::path& folder) {
  std::error_code error;
  std::filesystem::create_directories(folder, error);
  if (!std::filesystem::is_directory(folder))
    throw InputError(folder.string(), "", "cannot create the folder" + (error ? ": " + error.message() : ""));
}

}  // namespace

std::filesystem::path save_evaluation(const std::filesystem::path& dir, const SavedEvaluation& saved) {
  const EvalRequest& request = saved.request;
  const auto genome_folder = dir / request.genome_hash;
  const auto folder = genome_folder / ("seed" + std::to_string(saved.replicate));
  create_folder(folder);
  write_json(genome_folder / "genome.json", request.genome);

  Json record = Json::object();
  record["architecture"] = saved.label;
  record["hash"] = request.genome_hash;
  record["replicate"] = saved.replicate;
  record["seed"] = request.seed;
  record["fidelity"] = request.fidelity;
  record["status"] = to_string(saved.result.status);
  if (saved.result.status != EvalStatus::ok) record["error"] = saved.result.error;
  record["device"] = saved.result.device;
  record["metrics"] = Json::object();
  for (const auto& [name, value] : saved.result.metrics) record["metrics"][name] = value;
  record["settings"] = request.settings;
  write_json(folder / "metrics.json", record);
  if (saved.result.status != EvalStatus::ok) return folder;

  const std::map<std::string, std::string> metadata = {{"format", "pt"},
                                                       {"livsearch_genome_hash", request.genome_hash}};
  std::vector<exports::Tensor> weights;
  for (const auto& w : saved.trained.weights)
    weights.push_back(exports::f32_tensor(w.name, w.shape, w.values));
  exports::write_safetensors(folder / "model.safetensors", weights, metadata);

  const auto& probe = saved.trained.probe;
  const int64_t rows = probe.rows, seq = probe.seq;
  exports::write_safetensors(folder / "probe.safetensors",
                             {exports::i32_tensor("tokens", {rows, seq}, probe.tokens),
                              exports::f32_tensor("logits", {rows, seq, probe.vocab}, probe.logits)},
                             metadata);
  return folder;
}

}  // namespace livs::cli
