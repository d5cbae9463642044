// livsearch search CONFIG [--db FILE] [--resume] [--device cpu|cuda|cuda:N] [--workers N]
//
// Runs the multi-objective architecture search a config describes (search/
// genome_search.hpp) and logs everything to an SQLite database; --resume
// continues a run of the same name that was stopped or killed.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cxxopts.hpp>
#include <iostream>

#include "cli/command.hpp"
#include "cli/config.hpp"
#include "db/store.hpp"
#include "evaluator/backend_factory.hpp"
#include "proxies/evaluate.hpp"
#include "search/genome_search.hpp"

namespace livs::cli {

namespace {

// "auto" picks a GPU when this build has CUDA and one is present, else the
// CPU; an explicit device is checked here, before any work starts.
std::string resolve_device(const std::string& requested) {
  const std::string device = requested == "auto" ? evaluator::default_device() : requested;
  evaluator::make_backend(device);  // throws InputError naming a bad or missing device
  return device;
}

// The first SIGINT/SIGTERM asks the search to stop after the evaluations in
// flight; the handler then restores the default, so a second one kills.
std::atomic<bool> stop_signal{false};
extern "C" void request_stop(int signal_number) {
  stop_signal.store(true);
  std::signal(signal_number, SIG_DFL);
}

// Everything in the config but the keys that only say how to run (device):
// a resumed run must match what produced the run, not where it runs.
Json run_identity(const Config& config) {
  Json identity = to_json(config);
  identity.erase("device");
  return identity;
}

}  // namespace

int run_search(int argc, char** argv) {
  cxxopts::Options options(argv[0],
                           "Search architectures as the config describes; log every evaluation to SQLite.");
  options.positional_help("CONFIG");
  options.add_options()("config", "the search config (JSON)", cxxopts::value<std::string>())(
      "db", "the database file", cxxopts::value<std::string>()->default_value("livsearch.db"))(
      "resume", "continue the run of the config's name in the database")(
      "d,device", "cpu, cuda or cuda:N (default: the config's device)", cxxopts::value<std::string>())(
      "w,workers", "evaluations in flight at once", cxxopts::value<int>()->default_value("1"))(
      "h,help", "show this help");
  options.parse_positional({"config"});
  cxxopts::ParseResult args;
  if (!parse_arguments(options, argc, argv, args)) return 0;
  if (!args.count("config"))
    throw InputError("livsearch search", "", "missing CONFIG (see 'livsearch search --help')");
  const int workers = args["workers"].as<int>();
  if (workers < 1 || workers > 1024)
    throw InputError("--workers", "", "expected an integer in [1, 1024], got " + std::to_string(workers));

  const Config config = load_config(args["config"].as<std::string>());
  const std::string device =
      resolve_device(args.count("device") ? args["device"].as<std::string>() : config.device);
  proxies::EvalSettings eval_settings;
  eval_settings.data = config.data;
  eval_settings.training = config.training;
  eval_settings.context_length = config.model.context_length;
  eval_settings.latency = config.latency;  // timed prefill/decode only when the config has "latency"
  eval_settings.tasks = config.tasks;      // synthetic tasks named under "tasks"

  search::GenomeSearchOptions run_options;
  run_options.run_name = config.name;
  run_options.config_path = config.path;
  run_options.config = run_identity(config);
  run_options.eval_settings = proxies::to_json(eval_settings);
  run_options.device = device;
  run_options.workers = workers;
  run_options.resume = args.count("resume") > 0;
  run_options.log = [](const std::string& line) {
    std::fprintf(stderr, "%s\n", line.c_str());
    std::fflush(stderr);
  };

  run_options.stop_requested = [] { return stop_signal.load(); };
  std::signal(SIGINT, request_stop);
  std::signal(SIGTERM, request_stop);

  const std::string db_path = args["db"].as<std::string>();
  db::Store store(db_path);
  std::fprintf(stderr, "run '%s': %s, population %d, %d generations, seed %llu, %s, database %s\n",
               config.name.c_str(), search::to_string(config.search.algorithm), config.search.population,
               config.search.generations, static_cast<unsigned long long>(config.search.seed), device.c_str(),
               db_path.c_str());

  const auto result = search::run_genome_search(
      config.search, search::genome_operators(config.space),
      [](const EvalRequest& request) { return proxies::evaluate(request); }, store, run_options);
  if (result.stopped) {
    std::fprintf(stderr,
                 "stopped after generation %d (%d evaluations run); continue with: livsearch search %s --db "
                 "%s --resume\n",
                 result.last_generation, result.evaluations_run, config.path.c_str(), db_path.c_str());
    return 130;
  }
  std::fprintf(stderr, "done: generation %d, %d evaluations run, %d reused, hypervolume %.6f\n",
               result.last_generation, result.evaluations_run, result.evaluations_reused, result.hypervolume);
  std::printf("run %s finished; query it with: livsearch pareto --db %s --run %s\n", config.name.c_str(),
              db_path.c_str(), config.name.c_str());
  return 0;
}

}  // namespace livs::cli
