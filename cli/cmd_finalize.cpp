// livsearch finalize --db FILE [--run NAME] [--top N] [--seeds S] [--devices LIST] [--workers N]
//                    [--save-weights]
//
// The final stage of a run that ended without it (stopped by max_evaluations,
// run by an older livsearch, or with "final": false): its front and its
// warm-start members re-trained at fidelity 1.0 on S seeds each
// (search/final_stage.hpp), with the run's own config read from the database.
// Run again, it trains only the replicates still missing. --save-weights
// keeps the weights of what it trains, as search.final.save_weights does.
#include <cstdio>
#include <cxxopts.hpp>

#include "cli/command.hpp"
#include "cli/config.hpp"
#include "cli/device_list.hpp"
#include "cli/run_support.hpp"
#include "cli/saved_weights.hpp"
#include "db/store.hpp"
#include "proxies/evaluate.hpp"
#include "search/genome_search.hpp"

namespace livs::cli {

int run_finalize(int argc, char** argv) {
  cxxopts::Options options(
      argv[0], "Re-train a run's front and warm-start members at the full budget over several seeds.");
  options.add_options()("db", "the database file",
                        cxxopts::value<std::string>()->default_value("livsearch.db"))(
      "run", "the run (default: the only or most recent one)",
      cxxopts::value<std::string>()->default_value(""))(
      "top", "finalists from the front (default: the run's search.final.top)", cxxopts::value<int>())(
      "seeds", "seeds per finalist (default: the run's search.final.seeds, or 3)", cxxopts::value<int>())(
      "d,devices", "auto, all (every GPU), cpu, cuda:N or a list cuda:0,cuda:2",
      cxxopts::value<std::string>()->default_value("auto"))("device", "the same as --devices",
                                                            cxxopts::value<std::string>())(
      "w,workers", "evaluations in flight at once on each device", cxxopts::value<int>()->default_value("1"))(
      "save-weights",
      "keep the trained weights of the replicates this command trains in DB.weights/ (for `livsearch export "
      "--format pytorch`)")("h,help", "show this help");
  cxxopts::ParseResult args;
  if (!parse_arguments(options, argc, argv, args)) return 0;
  const int workers = args["workers"].as<int>();
  if (workers < 1 || workers > 1024)
    throw InputError("--workers", "", "expected an integer in [1, 1024], got " + std::to_string(workers));

  const std::string db_path = args["db"].as<std::string>();
  db::Store store(db_path);
  const db::RunRecord run = store.resolve_run(args["run"].as<std::string>());
  const Config config = parse_config(run.config, db_path + " (config of run '" + run.name + "')");
  search::SearchSettings settings = config.search;
  if (settings.final_seeds <= 0) settings.final_seeds = 3;  // the run had none: the default stage
  if (args.count("top")) {
    settings.final_top = args["top"].as<int>();
    if (settings.final_top < 1 || settings.final_top > 1000)
      throw InputError("--top", "",
                       "expected an integer in [1, 1000], got " + std::to_string(settings.final_top));
  }
  if (args.count("seeds")) {
    settings.final_seeds = args["seeds"].as<int>();
    if (settings.final_seeds < 1 || settings.final_seeds > 100)
      throw InputError("--seeds", "",
                       "expected an integer in [1, 100], got " + std::to_string(settings.final_seeds));
  }
  const auto lanes =
      search::local_lanes(resolve_devices(args.count("device") ? args["device"].as<std::string>()
                                                               : args["devices"].as<std::string>(),
                                          "--devices"),
                          workers);
  const std::string device = search::devices_of(lanes);

  search::GenomeSearchOptions run_options;
  run_options.run_name = run.name;
  run_options.config_path = config.path;
  run_options.eval_settings = proxies::to_json(eval_settings_of(config));
  run_options.device = device;
  run_options.lanes = lanes;
  run_options.log = log_line;
  run_options.stop_requested = install_stop_handlers();
  std::fprintf(stderr, "finalizing run '%s': top %d of the front and its warm-start members, %d seeds, %s\n",
               run.name.c_str(), settings.final_top, settings.final_seeds, device.c_str());
  const bool save = settings.final_save_weights || args.count("save-weights") > 0;
  const search::EvaluateFunction evaluate =
      save ? evaluate_saving_weights(weights_folder(db_path), settings.seed, settings.final_seeds,
                                     "run " + run.name)
           : search::EvaluateFunction([](const EvalRequest& request) { return proxies::evaluate(request); });
  if (save) std::fprintf(stderr, "weights are kept in %s\n", weights_folder(db_path).c_str());
  const auto result = search::finalize_run(settings, evaluate, store, run_options);
  if (result.stopped) {
    std::fprintf(stderr, "stopped; run the same command again to continue\n");
    return 130;
  }
  std::printf("run %s finalized (%d evaluations run, %d reused); see: livsearch pareto --db %s --run %s\n",
              run.name.c_str(), result.evaluations_run, result.evaluations_reused, db_path.c_str(),
              run.name.c_str());
  return 0;
}

}  // namespace livs::cli
