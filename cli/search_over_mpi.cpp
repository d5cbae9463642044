// `livsearch search CONFIG --mpi`, on every rank of an MPI job (mpirun, srun).
//
// Every rank reads and checks the config and the data itself (the same
// paths, on a shared filesystem), picks its device (its node-local rank's
// GPU among those the config or --devices name, or the CPU) and opens it,
// and tells rank 0 (cli/mpi_job.hpp). Rank 0 starts the search only when
// every rank can run and sees the same data; otherwise every rank ends and
// rank 0 says which rank failed and why. Then rank 0 searches and is the only
// database writer, its own lanes and every other rank's serving the
// executor; the other ranks evaluate what it sends until it is done.
#include <cstdio>
#include <optional>

#include "cli/mpi_job.hpp"
#include "cli/restart_on_lost_device.hpp"
#include "cli/search_run.hpp"
#include "evaluator/backend_pool.hpp"

namespace livs::cli {

int run_search_over_mpi(const SearchArguments& arguments) {
  std::optional<PreparedSearch> prepared;
  const auto prepare = [&] {
    prepared = prepare_search(arguments);
    return RankPlan{prepared->requested_devices, prepared->devices_origin,
                    data_files(prepared->eval_settings), prepared->evaluate};
  };
  const auto search = [&](std::vector<search::Lane> lanes, const std::string& device) {
    const int code = run_prepared_search(*prepared, arguments, std::move(lanes), device);
    // An MPI job cannot restart one rank in place (cli/restart_on_lost_device.hpp).
    if (code == kExitLostDevice)
      std::fprintf(stderr,
                   "error: the context of %s on rank 0 was lost to a sticky device error; continue with "
                   "mpirun ... livsearch search %s --db %s --mpi --resume\n",
                   evaluator::lost_devices().c_str(), arguments.config_path.c_str(),
                   arguments.db_path.c_str());
    return code;
  };
  return run_mpi_job(arguments.workers, prepare, search);
}

}  // namespace livs::cli
