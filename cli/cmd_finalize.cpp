// livsearch finalize --db FILE [--run NAME] [--top N] [--seeds S] [--devices LIST] [--workers N]
//                    [--save-weights] [--mpi]
//
// The final stage of a run that ended without it (stopped by max_evaluations,
// run by an older livsearch, or with "final": false): its front and its
// warm-start members re-trained at fidelity 1.0 on S seeds each
// (search/final_stage.hpp), with the run's own config read from the database.
// Run again, it trains only the replicates still missing. --save-weights
// keeps the weights of what it trains, as search.final.save_weights does.
// --mpi spreads the training over the ranks of an MPI job, as search --mpi.
#include <cstdio>
#include <cxxopts.hpp>
#include <optional>

#include "cli/command.hpp"
#include "cli/config.hpp"
#include "cli/device_list.hpp"
#include "cli/mpi_job.hpp"
#include "cli/run_support.hpp"
#include "cli/saved_weights.hpp"
#include "cli/search_run.hpp"
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
      "--format pytorch`)")(
      "mpi",
      "run as one rank of an MPI job (mpirun -n N livsearch finalize ... --mpi): rank 0 writes the database, "
      "every rank trains; the database and data on a shared filesystem")("h,help", "show this help");
  cxxopts::ParseResult args;
  if (!parse_arguments(options, argc, argv, args)) return 0;
  const int workers = args["workers"].as<int>();
  if (workers < 1 || workers > 1024)
    throw InputError("--workers", "", "expected an integer in [1, 1024], got " + std::to_string(workers));
  const std::string db_path = args["db"].as<std::string>();
  const std::string requested_devices =
      args.count("device") ? args["device"].as<std::string>() : args["devices"].as<std::string>();

  // What every rank reads from the database before any work: the run, its
  // config and the finalists' settings. Bad input is an error here.
  struct Plan {
    db::RunRecord run;
    Config config;
    proxies::EvalSettings eval_settings;
    search::SearchSettings settings;
    bool save = false;
    search::EvaluateFunction evaluate;
  };
  const auto plan_finalize = [&] {
    Plan plan;
    const db::Reader reader(db_path);  // every rank reads; rank 0 alone opens it for writing, below
    plan.run = reader.resolve_run(args["run"].as<std::string>());
    plan.config = parse_config(plan.run.config, db_path + " (config of run '" + plan.run.name + "')");
    plan.eval_settings = eval_settings_of(plan.config);
    search::SearchSettings& settings = plan.settings;
    settings = plan.config.search;
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
    plan.save = settings.final_save_weights || args.count("save-weights") > 0;
    plan.evaluate =
        plan.save
            ? evaluate_saving_weights(weights_folder(db_path), settings.seed, settings.final_seeds,
                                      "run " + plan.run.name)
            : search::EvaluateFunction([](const EvalRequest& request) { return proxies::evaluate(request); });
    return plan;
  };
  std::optional<Plan> plan;
  const auto finalize = [&](std::vector<search::Lane> lanes, const std::string& device) {
    db::Store store(db_path);
    search::GenomeSearchOptions run_options;
    run_options.run_name = plan->run.name;
    run_options.config_path = plan->config.path;
    run_options.eval_settings = proxies::to_json(plan->eval_settings);
    run_options.device = device;
    run_options.lanes = std::move(lanes);
    run_options.log = log_line;
    run_options.stop_requested = install_stop_handlers();
    std::fprintf(
        stderr, "finalizing run '%s': top %d of the front and its warm-start members, %d seeds, %s\n",
        plan->run.name.c_str(), plan->settings.final_top, plan->settings.final_seeds, device.c_str());
    if (plan->save) std::fprintf(stderr, "weights are kept in %s\n", weights_folder(db_path).c_str());
    const auto result = search::finalize_run(plan->settings, plan->evaluate, store, run_options);
    if (result.stopped) {
      std::fprintf(stderr, "stopped; run the same command again to continue\n");
      return 130;
    }
    std::printf("run %s finalized (%d evaluations run, %d reused); see: livsearch pareto --db %s --run %s\n",
                plan->run.name.c_str(), result.evaluations_run, result.evaluations_reused, db_path.c_str(),
                plan->run.name.c_str());
    return 0;
  };

  if (args.count("mpi")) {
    // Every rank reads the run from the database (a shared filesystem) and
    // checks its data and device; rank 0 alone writes (cli/mpi_job.hpp).
    const auto prepare = [&] {
      plan = plan_finalize();
      proxies::check_data(plan->eval_settings);
      return RankPlan{requested_devices, "--devices", data_files(plan->eval_settings), plan->evaluate};
    };
    return run_mpi_job(workers, prepare, finalize);
  }
  plan = plan_finalize();
  const auto lanes = search::local_lanes(resolve_devices(requested_devices, "--devices"), workers);
  return finalize(lanes, search::devices_of(lanes));
}

}  // namespace livs::cli
