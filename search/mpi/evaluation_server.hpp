#pragma once
// A rank other than 0 in an MPI job: it evaluates what rank 0 sends until
// rank 0 says the search is over. Each request runs on a thread of its own
// under a candidate control (rank 0's cancellation and, in tests, its
// injected fault), exactly as on one of rank 0's own lanes; its result goes
// back as soon as it returns. Only the serving loop calls MPI.
#include "search/lanes.hpp"
#include "search/mpi/mpi_channel.hpp"

namespace livs::search::mpi {

struct ServeSummary {
  int evaluated = 0;  // results sent
  int abandoned = 0;  // evaluations still running at shutdown that ignored cancellation
};

// Call after the rank's hello was accepted (kStartTag {"ok": true}).
ServeSummary serve_evaluations(Channel& channel, const EvaluateFunction& evaluate);

}  // namespace livs::search::mpi
