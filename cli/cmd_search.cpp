// livsearch search CONFIG [--db FILE] [--resume] [--device cpu|cuda|cuda:N] [--workers N]
//
// Runs the multi-objective architecture search a config describes (search/
// genome_search.hpp) and logs everything to an SQLite database; --resume
// continues a run of the same name that was stopped or killed.
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cxxopts.hpp>
#include <iostream>
#include <memory>

#include "cli/config.hpp"
#include "db/store.hpp"
#include "evaluator/backend_factory.hpp"
#include "evaluator/data/dataset.hpp"
#include "evaluator/train_settings.hpp"
#include "evaluator/trainer.hpp"
#include "genome/decode.hpp"
#include "genome/genome_json.hpp"
#include "genome/search_space.hpp"
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

// The search space of the config, with the model section's shape filling in
// what the space leaves open: width d_model, depth 2 * layers (a mixer and an
// MLP per layer, as the presets), the data's vocabulary and the context at
// which sliding windows count as global.
genome::SearchSpace search_space_of(const Config& config) {
  const JsonReader section(config.search_space, config.path, "/search_space");
  genome::SearchSpace space = genome::parse_search_space(section);
  if (!section.has("d_model")) space.d_model = {config.model.d_model};
  if (!section.has("depth")) space.depth = {2 * config.model.layers};
  if (!section.has("vocab")) space.vocab = config.data.vocab;
  if (!section.has("context")) space.context = static_cast<int>(config.model.context_length);
  return space;
}

// Training-based evaluation with the analytic size metrics, on the request's
// device. The lead's
// livs::proxies::evaluate (latency, synthetic tasks, ...) replaces this once it
// lands; the contract (EvalRequest -> EvalResult) stays the same.
class TrainingEvaluator {
 public:
  TrainingEvaluator(const Config& config)
      : training_(evaluator::parse_train_settings(JsonReader(config.training, config.path, "/training"))),
        data_(evaluator::load_dataset(config.data)),
        context_(config.model.context_length) {}

  const evaluator::Dataset& data() const { return data_; }

  EvalResult operator()(const EvalRequest& request) const {
    const auto start = std::chrono::steady_clock::now();
    const genome::ModelSpec spec =
        genome::decode(genome::genome_from_json(request.genome, request.genome_hash));
    const auto backend = evaluator::make_backend(request.device);
    const auto report =
        evaluator::train_and_evaluate(spec, training_, data_.train, data_.validation, request.seed, *backend);
    EvalResult result;
    result.device = request.device;
    result.status = report.status == evaluator::TrainStatus::ok ? EvalStatus::ok : EvalStatus::failed;
    result.error = report.error;
    result.metrics["perplexity"] = report.perplexity;
    result.metrics["validation_loss"] = report.validation_loss;
    result.metrics["params"] = static_cast<double>(spec.params_non_embedding());
    result.metrics["params_total"] = static_cast<double>(spec.params_total());
    // bf16 inference state, as the GPU backend stores it.
    result.metrics["cache_bytes"] = 2.0 * static_cast<double>(spec.decode_state_elements(context_));
    result.metrics["train_ms"] = report.train_seconds * 1000.0;
    result.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return result;
  }

 private:
  evaluator::TrainSettings training_;
  evaluator::Dataset data_;
  int64_t context_;
};

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
  try {
    args = options.parse(argc, argv);
  } catch (const cxxopts::exceptions::exception& e) {
    std::fprintf(stderr, "error: %s (see 'livsearch search --help')\n", e.what());
    return 2;
  }
  if (args.count("help")) {
    std::cout << options.help();
    return 0;
  }
  if (!args.count("config"))
    throw InputError("livsearch search", "", "missing CONFIG (see 'livsearch search --help')");
  const int workers = args["workers"].as<int>();
  if (workers < 1 || workers > 1024)
    throw InputError("--workers", "", "expected an integer in [1, 1024], got " + std::to_string(workers));

  const Config config = load_config(args["config"].as<std::string>());
  const std::string device =
      resolve_device(args.count("device") ? args["device"].as<std::string>() : config.device);
  const genome::SearchSpace space = search_space_of(config);
  const TrainingEvaluator evaluate(config);

  search::GenomeSearchOptions run_options;
  run_options.run_name = config.name;
  run_options.config_path = config.path;
  run_options.config = run_identity(config);
  run_options.eval_settings = {{"training", config.training},
                               {"context_length", config.model.context_length}};
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
  std::fprintf(stderr, "data: %s\n", evaluate.data().description.c_str());

  const auto result = search::run_genome_search(
      config.search, search::genome_operators(space), [&](const EvalRequest& r) { return evaluate(r); },
      store, run_options);
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
