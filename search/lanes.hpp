#pragma once
// Lanes: the places where the executor runs evaluations. A lane holds one
// evaluation at a time, so a device given `workers` lanes trains that many
// candidates at once, and a search over several GPUs or MPI ranks is one
// list of lanes that the executor fills as they free up. A lane is local
// (the executor's evaluate function, in this process, on the lane's device)
// or carries its own evaluate function (another MPI rank's, search/mpi/).
#include <functional>
#include <string>
#include <vector>

#include "common/evaluate_contract.hpp"

namespace livs::search {

using EvaluateFunction = std::function<EvalResult(const EvalRequest&)>;

struct Lane {
  std::string device;         // EvalRequest::device of what it runs ("cpu", "cuda:1")
  std::string where;          // recorded with each evaluation: the device, with "@host" when remote
  EvaluateFunction evaluate;  // empty: the executor's own evaluate function
};

// `workers` lanes on each device, interleaved (cuda:0, cuda:1, cuda:0, ...),
// so the first evaluations spread over the devices before any doubles up.
std::vector<Lane> local_lanes(const std::vector<std::string>& devices, int workers);

// The places of a list of lanes, once each in order of first appearance,
// joined by commas ("cuda:0,cuda:2"): what a run records as its device.
std::string devices_of(const std::vector<Lane>& lanes);

}  // namespace livs::search
