#pragma once
// Programmatic dependent launch. In a captured step graph the edges into our
// kernels may be programmatic (cuda_graph_edges.cpp, LIVSEARCH_CUDA_PDL): a
// kernel is then scheduled before the kernel it depends on has finished and
// its memory is visible, so that the launch latency between the two is
// hidden. Every kernel of this backend therefore waits here first, before it
// reads or writes any memory; launched the ordinary way (eagerly, or with a
// default edge) the wait returns at once. tests/check_grid_dependency.py
// checks that every __global__ function under evaluator/cuda starts with it.

namespace livs {

__device__ __forceinline__ void await_prior_grids() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

}  // namespace livs
