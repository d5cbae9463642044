// livsearch search CONFIG [--db FILE] [--resume] [--devices LIST] [--workers N] [--mpi]
//
// Runs the multi-objective architecture search a config describes (search/
// genome_search.hpp) and logs everything to an SQLite database; --resume
// continues a run of the same name that was stopped or killed. With several
// devices, `--workers` lanes on each (search/lanes.hpp); with --mpi, as one
// rank of an MPI job (cli/search_over_mpi.cpp).
#include <cxxopts.hpp>

#include "cli/command.hpp"
#include "cli/device_list.hpp"
#include "cli/restart_on_lost_device.hpp"
#include "cli/search_run.hpp"
#include "common/input_error.hpp"
#include "search/lanes.hpp"

namespace livs::cli {

int run_search(int argc, char** argv) {
  cxxopts::Options options(argv[0],
                           "Search architectures as the config describes; log every evaluation to SQLite.");
  options.positional_help("CONFIG");
  options.add_options()("config", "the search config (JSON)", cxxopts::value<std::string>())(
      "db", "the database file", cxxopts::value<std::string>()->default_value("livsearch.db"))(
      "resume", "continue the run of the config's name in the database")(
      "devices",
      "where candidates train: auto, all (every GPU), cpu, cuda:N or a list cuda:0,cuda:2 "
      "(default: the config's device)",
      cxxopts::value<std::string>())("d,device", "the same as --devices", cxxopts::value<std::string>())(
      "w,workers", "evaluations in flight at once on each device", cxxopts::value<int>()->default_value("1"))(
      "mpi",
      "run as one rank of an MPI job (mpirun -n N livsearch search CONFIG --mpi): rank 0 searches and "
      "writes the database, every rank trains candidates on its node's GPU or its CPU")("h,help",
                                                                                        "show this help");
  options.parse_positional({"config"});
  cxxopts::ParseResult args;
  if (!parse_arguments(options, argc, argv, args)) return 0;
  if (!args.count("config"))
    throw InputError("livsearch search", "", "missing CONFIG (see 'livsearch search --help')");
  SearchArguments arguments;
  arguments.config_path = args["config"].as<std::string>();
  arguments.db_path = args["db"].as<std::string>();
  arguments.resume = args.count("resume") > 0;
  arguments.workers = args["workers"].as<int>();
  if (arguments.workers < 1 || arguments.workers > 1024)
    throw InputError("--workers", "",
                     "expected an integer in [1, 1024], got " + std::to_string(arguments.workers));
  if (args.count("devices") && args.count("device"))
    throw InputError("--devices", "", "give --devices or --device, not both");
  if (args.count("devices")) arguments.devices = args["devices"].as<std::string>();
  if (args.count("device")) arguments.devices = args["device"].as<std::string>();

  if (args.count("mpi")) return run_search_over_mpi(arguments);
  const PreparedSearch prepared = prepare_search(arguments);
  const auto lanes = search::local_lanes(resolve_devices(prepared.requested_devices, prepared.devices_origin),
                                         arguments.workers);
  const int status = run_prepared_search(prepared, arguments, lanes, search::devices_of(lanes));
  return status == kExitLostDevice ? restart_with_resume() : status;
}

}  // namespace livs::cli
