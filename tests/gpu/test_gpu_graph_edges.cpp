// Programmatic edges in step graphs (evaluator/cuda/graph_edges.*,
// LIVSEARCH_CUDA_PDL): which edges change, that a graph with them computes
// what the captured one does, and that every preset's and a MoE genome's
// training steps replay the eager bits with them in both modes (a kernel
// that started before its inputs were there would change the losses).
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <doctest/doctest.h>

#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "evaluator/cuda/graph_edges.hpp"
#include "evaluator/cuda/kernels.hpp"
#include "tests/gpu/graph_training.hpp"

using namespace livs;
using namespace livs::evaluator;
using namespace livs::evaluator::gpu_testing;

namespace {

// Sets LIVSEARCH_CUDA_PDL for its lifetime.
struct PdlMode {
  explicit PdlMode(const char* value) { REQUIRE(setenv("LIVSEARCH_CUDA_PDL", value, 1) == 0); }
  ~PdlMode() { unsetenv("LIVSEARCH_CUDA_PDL"); }
};

}  // namespace

TEST_CASE("graph edges: programmatic unless LIVSEARCH_CUDA_PDL says 0 (off) or 2 (launch completion)") {
  REQUIRE(unsetenv("LIVSEARCH_CUDA_PDL") == 0);
  CHECK(cuda::dependent_launch_from_environment() == cuda::DependentLaunch::programmatic);
  {
    PdlMode off("0");
    CHECK(cuda::dependent_launch_from_environment() == cuda::DependentLaunch::off);
  }
  {
    PdlMode started("2");
    CHECK(cuda::dependent_launch_from_environment() == cuda::DependentLaunch::launch_completion);
  }
  {
    PdlMode other("yes");
    CHECK(cuda::dependent_launch_from_environment() == cuda::DependentLaunch::programmatic);
  }
}

TEST_CASE("graph edges: edges into the backend's kernels become programmatic, into cuBLAS's they do not") {
  constexpr int n = 64;
  cudaStream_t stream = nullptr;
  REQUIRE(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) == cudaSuccess);
  cublasHandle_t handle = nullptr;
  REQUIRE(cublasCreate(&handle) == CUBLAS_STATUS_SUCCESS);
  REQUIRE(cublasSetStream(handle, stream) == CUBLAS_STATUS_SUCCESS);
  float *a = nullptr, *b = nullptr, *c = nullptr;
  void* workspace = nullptr;
  REQUIRE(cudaMalloc(&a, n * n * sizeof(float)) == cudaSuccess);
  REQUIRE(cudaMalloc(&b, n * n * sizeof(float)) == cudaSuccess);
  REQUIRE(cudaMalloc(&c, n * n * sizeof(float)) == cudaSuccess);
  REQUIRE(cudaMalloc(&workspace, 4 << 20) == cudaSuccess);
  REQUIRE(cublasSetWorkspace(handle, workspace, 4 << 20) == CUBLAS_STATUS_SUCCESS);

  // fill -> add -> cuBLAS -> add: b = 1 + 1 = 2, c = b b (n x n of 2s) = 4n, a = c + c = 8n.
  cudaGraph_t graph = nullptr;
  REQUIRE(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
  cuda::fill(stream, a, n * n, 1.0f);
  cuda::add(stream, b, a, a, n * n);
  const float one = 1.0f, zero = 0.0f;
  CHECK(cublasSgemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, b, n, b, n, &zero, c, n) ==
        CUBLAS_STATUS_SUCCESS);
  cuda::add(stream, a, c, c, n * n);
  REQUIRE(cudaStreamEndCapture(stream, &graph) == cudaSuccess);

  CHECK(cuda::make_edges_programmatic(graph, cuda::DependentLaunch::off) == 0);
  for (const auto mode : {cuda::DependentLaunch::programmatic, cuda::DependentLaunch::launch_completion}) {
    CAPTURE(int(mode));
    cudaGraph_t edited = nullptr;
    REQUIRE(cudaGraphClone(&edited, graph) == cudaSuccess);
    // fill -> add and (the GEMM's last kernel) -> add; the edge into cuBLAS stays.
    CHECK(cuda::make_edges_programmatic(edited, mode) == 2);
    CHECK(cuda::make_edges_programmatic(edited, mode) == 0);  // nothing ordinary into ours is left
    cudaGraphExec_t exec = nullptr;
    REQUIRE(cudaGraphInstantiate(&exec, edited, 0) == cudaSuccess);
    REQUIRE(cudaMemset(a, 0, n * n * sizeof(float)) == cudaSuccess);
    for (int replay = 0; replay < 3; ++replay) REQUIRE(cudaGraphLaunch(exec, stream) == cudaSuccess);
    REQUIRE(cudaStreamSynchronize(stream) == cudaSuccess);
    std::vector<float> out(n * n);
    REQUIRE(cudaMemcpy(out.data(), a, out.size() * sizeof(float), cudaMemcpyDeviceToHost) == cudaSuccess);
    int wrong = 0;
    for (float v : out) wrong += v != 8.0f * n;
    CHECK(wrong == 0);
    (void)cudaGraphExecDestroy(exec);
    (void)cudaGraphDestroy(edited);
  }
  (void)cudaGraphDestroy(graph);
  cublasDestroy(handle);
  cudaFree(a);
  cudaFree(b);
  cudaFree(c);
  cudaFree(workspace);
  cudaStreamDestroy(stream);
}

TEST_CASE(
    "graph edges: with programmatic edges every preset's and a MoE genome's steps replay the eager bits") {
  std::vector<std::pair<std::string, genome::ModelSpec>> specs;
  for (const std::string& name : genome::preset_names())
    specs.emplace_back(name, genome::decode(genome::preset(name, 64, 1)));
  specs.emplace_back("transformer with moe", transformer_with_moe_spec());
  for (const char* mode : {"1", "2"}) {
    PdlMode pdl(mode);
    for (const auto& [name, spec] : specs) {
      CAPTURE(mode);
      CAPTURE(name);
      const TrainReport eager = train(spec, false, 12, 4, 48);
      if (eager.status !=
          TrainStatus::ok) {  // a preset the CUDA backend cannot train is not this test's subject
        WARN_MESSAGE(false, name << ": " << eager.error);
        continue;
      }
      const TrainReport graph = train(spec, true, 12, 4, 48);
      REQUIRE_MESSAGE(graph.status == TrainStatus::ok, graph.error);
      CHECK(graph.step_graph);
      CHECK(graph.train_loss == eager.train_loss);
      CHECK(graph.validation_loss == eager.validation_loss);
    }
  }
}
