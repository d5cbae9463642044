#include "cli/saved_weights.hpp"

#include <algorithm>
#include <fstream>

#include "cli/run_support.hpp"
#include "common/input_error.hpp"
#include "common/path_checks.hpp"
#include "export/safetensors.hpp"
#include "proxies/evaluate.hpp"

namespace livs::cli {

namespace {

// Written to a temporary file of the caller's own (`tag`) and renamed, so
// that two replicates saving one genome at once never interleave.
void write_json(const std::filesystem::path& path, const Json& json, const std::string& tag = "") {
  std::filesystem::path temporary = path;
  temporary += "." + tag + ".partial";
  std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
  out << json.dump(2) << "\n";
  out.close();
  std::error_code error;
  if (out) std::filesystem::rename(temporary, path, error);
  if (!out || error) {
    std::filesystem::remove(temporary, error);
    throw InputError(path.string(), "", "cannot write the file");
  }
}

void create_folder(const std::filesystem::path& folder) {
  std::error_code error;
  std::filesystem::create_directories(folder, error);
  if (!is_folder(folder))
    throw InputError(folder.string(), "", "cannot create the folder" + (error ? ": " + error.message() : ""));
}

}  // namespace

std::filesystem::path save_evaluation(const std::filesystem::path& dir, const SavedEvaluation& saved) {
  const EvalRequest& request = saved.request;
  const auto genome_folder = dir / request.genome_hash;
  const auto folder = genome_folder / ("seed" + std::to_string(saved.replicate));
  create_folder(folder);
  write_json(genome_folder / "genome.json", request.genome, "seed" + std::to_string(saved.replicate));

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

std::filesystem::path weights_folder(const std::string& db_path) { return db_path + ".weights"; }

search::EvaluateFunction evaluate_saving_weights(std::filesystem::path dir, uint64_t run_seed, int replicates,
                                                 std::string label) {
  return [dir = std::move(dir), run_seed, replicates = std::max(replicates, 1),
          label = std::move(label)](const EvalRequest& request) {
    if (request.fidelity < 1.0) return proxies::evaluate(request);
    int replicate = -1;
    for (int k = 0; k < replicates && replicate < 0; ++k)
      if (evaluation_seed(run_seed, request.genome_hash, k) == request.seed) replicate = k;
    evaluator::TrainedModel trained;
    const EvalResult result = proxies::evaluate(request, {}, replicate >= 0 ? &trained : nullptr);
    if (replicate < 0 || result.status != EvalStatus::ok) return result;
    try {
      save_evaluation(dir, {label, request, replicate, result, trained});
    } catch (const std::exception& e) {
      log_line(std::string("warning: the weights of ") + request.genome_hash + " were not kept: " + e.what());
    }
    return result;
  };
}

std::optional<std::filesystem::path> kept_weights(const std::string& db_path, const std::string& hash) {
  constexpr int kMaxReplicates = 100;  // search.final.seeds' limit
  for (int k = 0; k < kMaxReplicates; ++k) {
    auto path = weights_folder(db_path) / hash / ("seed" + std::to_string(k)) / "model.safetensors";
    if (is_file(path)) return path;
  }
  return std::nullopt;
}

}  // namespace livs::cli
