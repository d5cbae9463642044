#pragma once
// A command as several ranks of an MPI job (search/mpi/): every rank runs the
// same command line, prepares itself (reads and checks its inputs, opens its
// device) and tells rank 0; rank 0 starts only when every rank can run and
// sees the same data, and then does the command's work over every rank's
// lanes, the other ranks evaluating what it sends until it is done. Used by
// `livsearch search --mpi` and `livsearch finalize --mpi`.
#include <functional>
#include <string>
#include <vector>

#include "search/lanes.hpp"

namespace livs::cli {

// What one rank prepared: where its lanes may run and what they read.
struct RankPlan {
  std::string requested_devices;  // cli/device_list.hpp's form
  std::string devices_origin;     // where that came from, for errors
  std::vector<std::string> data_files;
  search::EvaluateFunction evaluate;
};

// prepare() runs on every rank (an exception there ends the job, rank 0
// naming the rank and why); work(lanes, device) runs on rank 0 with every
// rank's lanes, `device` being "mpi, N ranks", and returns the exit status.
// Throws InputError when built without MPI.
int run_mpi_job(int workers, const std::function<RankPlan()>& prepare,
                const std::function<int(std::vector<search::Lane>, const std::string&)>& work);

}  // namespace livs::cli
