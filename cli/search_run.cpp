#include "cli/search_run.hpp"

#include <cstdio>
#include <memory>

#include "cli/restart_on_lost_device.hpp"
#include "cli/run_support.hpp"
#include "cli/saved_weights.hpp"
#include "common/fault_injection.hpp"
#include "common/format_number.hpp"
#include "db/store.hpp"
#include "evaluator/backend_pool.hpp"
#include "genome/decode.hpp"
#include "proxies/analytic.hpp"
#include "search/genome_search.hpp"

namespace livs::cli {

namespace {

// Everything in the config but the keys that only say how to run (device,
// whether weights are kept, how long a candidate may run before it counts as
// hung): a resumed run must match what produced the run, not where it runs,
// what it leaves on disk or how patient it is (a run whose candidates timed
// out resumes with a longer search.candidate_timeout).
Json run_identity(const Config& config) {
  Json identity = to_json(config);
  identity.erase("device");
  if (identity["search"].is_object()) identity["search"].erase("candidate_timeout");
  if (identity["search"]["final"].is_object()) identity["search"]["final"].erase("save_weights");
  return identity;
}

}  // namespace

PreparedSearch prepare_search(const SearchArguments& arguments) {
  PreparedSearch prepared;
  prepared.config = load_config(arguments.config_path);
  const Config& config = prepared.config;
  prepared.requested_devices = arguments.devices.empty() ? config.device : arguments.devices;
  prepared.devices_origin = arguments.devices.empty() ? config.path + ": /device" : "--devices";
  prepared.eval_settings = eval_settings_of(config);
  // The corpus is read and checked now, before the database is touched: a
  // broken or too-short data file is exit status 2 here, not a run whose
  // every candidate fails with the same data error.
  proxies::check_data(prepared.eval_settings);
  prepared.evaluate =
      config.search.final_save_weights
          ? evaluate_saving_weights(weights_folder(arguments.db_path), config.search.seed,
                                    config.search.final_seeds, "run " + config.name)
          : search::EvaluateFunction([](const EvalRequest& request) { return proxies::evaluate(request); });
  return prepared;
}

std::vector<std::string> data_files(const proxies::EvalSettings& settings) {
  std::vector<std::string> files = settings.data.paths;
  const auto& validation = settings.data.validation_paths;
  files.insert(files.end(), validation.begin(), validation.end());
  return files;
}

int run_prepared_search(const PreparedSearch& prepared, const SearchArguments& arguments,
                        std::vector<search::Lane> lanes, const std::string& device) {
  const Config& config = prepared.config;
  const proxies::EvalSettings& eval_settings = prepared.eval_settings;
  search::GenomeSearchOptions run_options;
  run_options.run_name = config.name;
  run_options.config_path = config.path;
  run_options.config = run_identity(config);
  run_options.eval_settings = proxies::to_json(eval_settings);
  run_options.device = device;
  run_options.lanes = std::move(lanes);
  run_options.resume = arguments.resume;
  // Called for every genome drawn (thousands per run): the settings it needs
  // are resolved once here, not parsed per call.
  run_options.analytic = [seq_len = config.train.seq_len, context = eval_settings.context_length,
                          dtype_bytes = eval_settings.inference_dtype_bytes](const genome::Genome& genome) {
    return proxies::analytic_metrics(genome::decode(genome), seq_len, context, dtype_bytes);
  };
  run_options.max_params = config.space.max_params;
  run_options.warm_start = config.warm_start;
  run_options.log = log_line;
  // A signal, or a device whose context this process lost (a sticky error):
  // then no candidate can run there until the process restarts.
  run_options.stop_requested = [signalled = install_stop_handlers()] {
    return signalled() || evaluator::any_device_context_lost();
  };
  // Tests only: read from the environment, never from a config.
  if (auto faults = FaultPlan::from_environment(); !faults.empty()) {
    std::fprintf(stderr, "fault injection (tests only): LIVSEARCH_FAULT_INJECT=%s\n", faults.text().c_str());
    run_options.faults = std::make_shared<const FaultPlan>(std::move(faults));
  }

  const std::string& db_path = arguments.db_path;
  db::Store store(db_path);
  // The fidelities the candidates train at: one, or rungs with their eta.
  std::string fidelities;
  for (const double f : config.search.rungs())
    fidelities += (fidelities.empty() ? "" : ", ") + format_number(f);
  fidelities = config.search.fidelities.empty()
                   ? "fidelity " + fidelities
                   : "rungs at fidelity " + fidelities + " (eta " + std::to_string(config.search.eta) + ")";
  // How many candidates train at once, and where.
  std::string where = device;
  if (run_options.lanes.size() > 1) where += ", " + std::to_string(run_options.lanes.size()) + " at once";
  run_options.on_run_opened = [&] {
    std::fprintf(stderr, "run '%s': %s, population %d, %d generations, %s, seed %llu, %s, database %s\n",
                 config.name.c_str(), search::to_string(config.search.algorithm), config.search.population,
                 config.search.generations, fidelities.c_str(),
                 static_cast<unsigned long long>(config.search.seed), where.c_str(), db_path.c_str());
    if (config.search.final_save_weights)
      std::fprintf(stderr, "full-fidelity weights are kept in %s\n", weights_folder(db_path).c_str());
  };

  const auto result = search::run_genome_search(config.search, search::genome_operators(config.space),
                                                prepared.evaluate, store, run_options);
  if (result.stopped && evaluator::any_device_context_lost()) return kExitLostDevice;
  if (result.stopped) {
    std::fprintf(stderr,
                 "stopped after generation %d (%d evaluations run); continue with: livsearch search %s --db "
                 "%s --resume\n",
                 result.last_generation, result.evaluations_run, config.path.c_str(), db_path.c_str());
    return 130;
  }
  std::fprintf(
      stderr,
      "done: generation %d, %d evaluations run, %d reused, %lld rejected before training, hypervolume %.6f\n",
      result.last_generation, result.evaluations_run, result.evaluations_reused,
      static_cast<long long>(result.rejected), result.hypervolume);
  std::printf("run %s finished; query it with: livsearch pareto --db %s --run %s\n", config.name.c_str(),
              db_path.c_str(), config.name.c_str());
  return 0;
}

}  // namespace livs::cli
