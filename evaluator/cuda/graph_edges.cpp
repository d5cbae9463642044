// Programmatic edges in captured step graphs (graph_edges.hpp). The kernels
// are told apart by name through the driver API, which names any kernel node,
// ours (launched through the runtime) and cuBLAS's alike. Its functions are
// looked up through the runtime (cudaGetDriverEntryPointByVersion): linking
// libcuda would make every binary need a driver to start, and CI has none.
#include "evaluator/cuda/graph_edges.hpp"

#include <cudaTypedefs.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "evaluator/cuda/cuda_check.hpp"

namespace livs::evaluator::cuda {

namespace {

bool is_kernel(cudaGraphNode_t node) {
  cudaGraphNodeType type = cudaGraphNodeTypeEmpty;
  return cudaGraphNodeGetType(node, &type) == cudaSuccess && type == cudaGraphNodeTypeKernel;
}

template <class F>
F driver_function(const char* symbol, unsigned version) {
  void* function = nullptr;
  cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
  if (cudaGetDriverEntryPointByVersion(symbol, &function, version, cudaEnableDefault, &found) !=
          cudaSuccess ||
      found != cudaDriverEntryPointSuccess) {
    (void)cudaGetLastError();
    return nullptr;
  }
  return reinterpret_cast<F>(function);
}

// The driver functions that name a kernel node, looked up once.
struct KernelNaming {
  PFN_cuGraphKernelNodeGetParams_v12000 node_params =
      driver_function<PFN_cuGraphKernelNodeGetParams_v12000>("cuGraphKernelNodeGetParams", 12000);
  PFN_cuFuncGetName_v12030 function_name = driver_function<PFN_cuFuncGetName_v12030>("cuFuncGetName", 12030);
  PFN_cuKernelGetName_v12030 kernel_name =
      driver_function<PFN_cuKernelGetName_v12030>("cuKernelGetName", 12030);
};

// A kernel of this backend: its mangled name is in namespace livs, and every
// such kernel begins with await_prior_grids() (tests/check_grid_dependency.py).
// Any failure to name the node counts as someone else's kernel.
bool is_own_kernel(cudaGraphNode_t node) {
  static const KernelNaming naming;
  if (!is_kernel(node) || !naming.node_params || !naming.function_name || !naming.kernel_name) return false;
  CUDA_KERNEL_NODE_PARAMS_v2 params{};
  if (naming.node_params(node, &params) != CUDA_SUCCESS) return false;
  const char* name = nullptr;
  const CUresult named =
      params.func ? naming.function_name(&name, params.func) : naming.kernel_name(&name, params.kern);
  return named == CUDA_SUCCESS && name && std::strncmp(name, "_ZN4livs", 8) == 0;
}

}  // namespace

DependentLaunch dependent_launch_from_environment() {
  // Programmatic by default: measured on an H200 (docs/benchmarks.md,
  // 2026-12-05) it is as fast on one candidate and faster with four sharing
  // the device; launch_completion was slower everywhere.
  const char* value = std::getenv("LIVSEARCH_CUDA_PDL");
  if (value && std::strcmp(value, "0") == 0) return DependentLaunch::off;
  if (value && std::strcmp(value, "2") == 0) return DependentLaunch::launch_completion;
  return DependentLaunch::programmatic;
}

int make_edges_programmatic(cudaGraph_t graph, DependentLaunch mode) {
  if (mode == DependentLaunch::off) return 0;
  std::size_t count = 0;
  LIVS_CUDA_CHECK(cudaGraphGetEdges(graph, nullptr, nullptr, nullptr, &count));
  std::vector<cudaGraphNode_t> from(count), to(count);
  std::vector<cudaGraphEdgeData> data(count);
  LIVS_CUDA_CHECK(cudaGraphGetEdges(graph, from.data(), to.data(), data.data(), &count));
  cudaGraphEdgeData programmatic{};
  programmatic.type = cudaGraphDependencyTypeProgrammatic;
  programmatic.from_port = mode == DependentLaunch::programmatic ? cudaGraphKernelNodePortProgrammatic
                                                                 : cudaGraphKernelNodePortLaunchCompletion;
  int changed = 0;
  for (std::size_t i = 0; i < count; ++i) {
    if (data[i].type != cudaGraphDependencyTypeDefault || data[i].from_port != cudaGraphKernelNodePortDefault)
      continue;
    if (!is_kernel(from[i]) || !is_own_kernel(to[i])) continue;
    LIVS_CUDA_CHECK(cudaGraphRemoveDependencies(graph, &from[i], &to[i], &data[i], 1));
    LIVS_CUDA_CHECK(cudaGraphAddDependencies(graph, &from[i], &to[i], &programmatic, 1));
    ++changed;
  }
  return changed;
}

}  // namespace livs::evaluator::cuda
