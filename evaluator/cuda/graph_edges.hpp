#pragma once
// Programmatic edges in a captured step graph (programmatic dependent
// launch, sm_90): an edge from a kernel into one of this backend's kernels
// may let the second be scheduled before the first has finished, hiding the
// launch latency between them; the second kernel's await_prior_grids()
// (grid_dependency.cuh) then waits for the first's work to be complete and
// visible. Kernels of other libraries (cuBLAS, cub) do not wait, so edges
// into them stay ordinary.
#include <cuda_runtime.h>

namespace livs::evaluator::cuda {

enum class DependentLaunch {
  off,                // ordinary edges
  programmatic,       // the next kernel launches once every block of the previous one has ended
  launch_completion,  // ... once every block of the previous one has started
};

// LIVSEARCH_CUDA_PDL: 0 off, 1 (the default, also for any other value or
// none) programmatic, 2 launch_completion.
DependentLaunch dependent_launch_from_environment();

// Makes every ordinary edge from a kernel node into one of this backend's
// kernels (a name in namespace livs) programmatic, as `mode` says; returns
// how many edges changed (0 when mode is off).
int make_edges_programmatic(cudaGraph_t graph, DependentLaunch mode);

}  // namespace livs::evaluator::cuda
