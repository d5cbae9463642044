// `livsearch search CONFIG --mpi`, on every rank of an MPI job (mpirun, srun).
//
// Every rank reads and checks the config and the data itself (the same
// paths, on a shared filesystem), picks its device (its node-local rank's
// GPU among those the config or --devices name, or the CPU) and opens it,
// and tells rank 0 (search/mpi/rank_hello.hpp). Rank 0 starts the search
// only when every rank can run and sees the same data; otherwise every rank
// ends and rank 0 says which rank failed and why. Then rank 0 searches and is
// the only database writer, its own lanes and every other rank's serving the
// executor; the other ranks evaluate what it sends until it is done.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>

#include "cli/device_list.hpp"
#include "cli/restart_on_lost_device.hpp"
#include "cli/search_run.hpp"
#include "common/input_error.hpp"
#include "evaluator/backend_factory.hpp"
#include "evaluator/backend_pool.hpp"

#ifdef LIVSEARCH_HAVE_MPI
#include "search/mpi/evaluation_server.hpp"
#include "search/mpi/mpi_channel.hpp"
#include "search/mpi/rank_hello.hpp"
#include "search/mpi/remote_ranks.hpp"
#endif

namespace livs::cli {

#ifdef LIVSEARCH_HAVE_MPI

namespace {

// Ranks share a node's GPUs by their rank on the node; a CPU rank uses the CPU.
std::string rank_device(const std::vector<std::string>& devices, int local_rank) {
  return devices.at(static_cast<std::size_t>(local_rank) % devices.size());
}

struct RankOutcome {
  int exit_code = 0;
  bool abandoned_threads = false;  // the process must end without running destructors under them
};

RankOutcome run_rank(search::mpi::Channel& channel, const SearchArguments& arguments) {
  namespace mpi = search::mpi;
  mpi::RankHello hello;
  hello.rank = channel.rank();
  hello.host = channel.host();
  hello.lanes = arguments.workers;
  hello.data = Json::array();
  std::optional<PreparedSearch> prepared;
  std::exception_ptr failure;
  try {
    prepared = prepare_search(arguments);
    const auto devices = expand_devices(prepared->requested_devices, prepared->devices_origin);
    hello.device = rank_device(devices, channel.local_rank());
    evaluator::make_backend(hello.device);  // this rank's device works, or the job stops here
    hello.data = mpi::data_fingerprint(data_files(*prepared));
  } catch (const std::exception& e) {
    hello.error = e.what();
    failure = std::current_exception();
  }

  if (channel.rank() != 0) {
    channel.send(0, mpi::kHelloTag, to_json(hello));
    const mpi::Message start = channel.receive(0, mpi::kStartTag);
    if (!start.body.at("ok").get<bool>()) return {2, false};  // rank 0 says why
    const auto served = mpi::serve_evaluations(channel, prepared->evaluate);
    if (served.abandoned > 0)
      std::fprintf(stderr, "rank %d: %d evaluation(s) did not stop when the search ended; ending anyway\n",
                   channel.rank(), served.abandoned);
    return {0, served.abandoned > 0};
  }

  std::optional<mpi::RemoteRanks> ranks;
  try {
    ranks.emplace(channel, hello);
  } catch (const InputError&) {
    if (failure) std::rethrow_exception(failure);  // rank 0's own problem, in its own words
    throw;
  }
  std::fprintf(stderr, "MPI: %d ranks:", channel.size());
  for (const auto& rank : ranks->ranks())
    std::fprintf(stderr, "%s %s x %d", rank.rank ? "," : "", mpi::lane_place(rank).c_str(), rank.lanes);
  std::fprintf(stderr, "\n");
  const auto lanes = ranks->lanes();
  const int code =
      run_prepared_search(*prepared, arguments, lanes, "mpi, " + std::to_string(channel.size()) + " ranks");
  ranks->shutdown();
  // An MPI job cannot restart one rank in place (cli/restart_on_lost_device.hpp).
  if (code == kExitLostDevice)
    std::fprintf(stderr,
                 "error: the context of %s on rank 0 was lost to a sticky device error; continue with mpirun "
                 "... livsearch search %s --db %s --mpi --resume\n",
                 evaluator::lost_devices().c_str(), arguments.config_path.c_str(), arguments.db_path.c_str());
  return {code, false};
}

}  // namespace

int run_search_over_mpi(const SearchArguments& arguments) {
  RankOutcome outcome;
  {
    search::mpi::Channel channel;  // MPI_Finalize when it goes, after every rank is done
    outcome = run_rank(channel, arguments);
  }
  if (outcome.abandoned_threads) {
    std::fflush(nullptr);
    std::_Exit(outcome.exit_code);
  }
  return outcome.exit_code;
}

#else

int run_search_over_mpi(const SearchArguments&) {
  throw InputError("--mpi", "",
                   "this livsearch was built without MPI; install an MPI library (scripts/setup.sh installs "
                   "OpenMPI) and rebuild");
}

#endif

}  // namespace livs::cli
