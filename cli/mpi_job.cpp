// See mpi_job.hpp. The ranks' handshake (search/mpi/rank_hello.hpp), the
// remote lanes (search/mpi/remote_ranks.hpp) and the evaluation server
// (search/mpi/evaluation_server.hpp) are the search's; this is the part every
// MPI command shares.
#include "cli/mpi_job.hpp"

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>

#include "cli/device_list.hpp"
#include "common/input_error.hpp"
#include "evaluator/backend_factory.hpp"

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

RankOutcome run_rank(search::mpi::Channel& channel, int workers, const std::function<RankPlan()>& prepare,
                     const std::function<int(std::vector<search::Lane>, const std::string&)>& work) {
  namespace mpi = search::mpi;
  mpi::RankHello hello;
  hello.rank = channel.rank();
  hello.host = channel.host();
  hello.lanes = workers;
  hello.data = Json::array();
  std::optional<RankPlan> plan;
  std::exception_ptr failure;
  try {
    plan = prepare();
    const auto devices = expand_devices(plan->requested_devices, plan->devices_origin);
    hello.device = rank_device(devices, channel.local_rank());
    evaluator::make_backend(hello.device);  // this rank's device works, or the job stops here
    hello.data = mpi::data_fingerprint(plan->data_files);
  } catch (const std::exception& e) {
    hello.error = e.what();
    failure = std::current_exception();
  }

  if (channel.rank() != 0) {
    channel.send(0, mpi::kHelloTag, to_json(hello));
    const mpi::Message start = channel.receive(0, mpi::kStartTag);
    if (!start.body.at("ok").get<bool>()) return {2, false};  // rank 0 says why
    const auto served = mpi::serve_evaluations(channel, plan->evaluate);
    if (served.abandoned > 0)
      std::fprintf(stderr, "rank %d: %d evaluation(s) did not stop when the work ended; ending anyway\n",
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
  const int code = work(ranks->lanes(), "mpi, " + std::to_string(channel.size()) + " ranks");
  ranks->shutdown();
  return {code, false};
}

}  // namespace

int run_mpi_job(int workers, const std::function<RankPlan()>& prepare,
                const std::function<int(std::vector<search::Lane>, const std::string&)>& work) {
  RankOutcome outcome;
  {
    search::mpi::Channel channel;  // MPI_Finalize when it goes, after every rank is done
    outcome = run_rank(channel, workers, prepare, work);
  }
  if (outcome.abandoned_threads) {
    std::fflush(nullptr);
    std::_Exit(outcome.exit_code);
  }
  return outcome.exit_code;
}

#else

int run_mpi_job(int, const std::function<RankPlan()>&,
                const std::function<int(std::vector<search::Lane>, const std::string&)>&) {
  throw InputError("--mpi", "",
                   "this livsearch was built without MPI; install an MPI library (scripts/setup.sh installs "
                   "OpenMPI) and rebuild");
}

#endif

}  // namespace livs::cli
