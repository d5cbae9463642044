#include "common/evaluate_contract.hpp"

#include <utility>

#include "common/rng.hpp"

namespace livs {

uint64_t evaluation_seed(uint64_t run_seed, const std::string& genome_hash, int replicate) {
  const uint64_t first =
      derive_seed(derive_seed(run_seed, std::string_view("evaluate")), std::string_view(genome_hash));
  return replicate == 0 ? first : derive_seed(first, static_cast<uint64_t>(replicate));
}

const char* to_string(EvalStatus status) { return status == EvalStatus::ok ? "ok" : "failed"; }

Json to_json(const EvalRequest& r) {
  return Json{{"genome", r.genome}, {"genome_hash", r.genome_hash}, {"fidelity", r.fidelity},
              {"seed", r.seed},     {"settings", r.settings},       {"device", r.device}};
}

EvalRequest eval_request_from_json(const Json& j) {
  EvalRequest r;
  r.genome = j.at("genome");
  r.genome_hash = j.at("genome_hash").get<std::string>();
  r.fidelity = j.at("fidelity").get<double>();
  r.seed = j.at("seed").get<uint64_t>();
  r.settings = j.at("settings");
  r.device = j.at("device").get<std::string>();
  return r;
}

EvalResult failed_evaluation(std::string why, std::string device, double seconds) {
  EvalResult r;
  r.status = EvalStatus::failed;
  r.error = std::move(why);
  r.device = std::move(device);
  r.wall_seconds = seconds;
  return r;
}

Json to_json(const EvalResult& r) {
  Json out{{"status", to_string(r.status)},
           {"metrics", Json(r.metrics)},
           {"error", r.error},
           {"device", r.device},
           {"wall_seconds", r.wall_seconds}};
  if (!r.phase_seconds.empty()) out["phase_seconds"] = r.phase_seconds;
  return out;
}

EvalResult eval_result_from_json(const Json& j) {
  EvalResult r;
  r.status = j.at("status").get<std::string>() == "ok" ? EvalStatus::ok : EvalStatus::failed;
  for (const auto& [k, v] : j.at("metrics").items()) r.metrics[k] = v.get<double>();
  r.error = j.at("error").get<std::string>();
  r.device = j.at("device").get<std::string>();
  r.wall_seconds = j.at("wall_seconds").get<double>();
  if (const auto phases = j.find("phase_seconds"); phases != j.end())
    r.phase_seconds = phases->get<std::map<std::string, double>>();
  return r;
}

}  // namespace livs
