#pragma once
// Training runs of the graph tests (test_gpu_graph.cpp, test_gpu_graph_edges.cpp):
// the corpus's first 250,000 bytes, 4,096 validation tokens after them, seed 11,
// bf16 GEMMs, with the step graph on or off.
#include <doctest/doctest.h>

#include <algorithm>
#include <span>
#include <vector>

#include "evaluator/trainer.hpp"
#include "genome/decode.hpp"
#include "genome/presets.hpp"
#include "tests/gpu/gpu_test_support.hpp"

namespace livs::evaluator::gpu_testing {

inline TrainReport train(const genome::ModelSpec& spec, bool graphs, int steps, int batch, int seq) {
  static const std::vector<uint16_t> bytes = corpus_bytes(300000);
  REQUIRE_MESSAGE(bytes.size() == 300000, "data/kjv.txt not found (run from the repository root)");
  const std::span<const uint16_t> train(bytes.data(), 250000), validation(bytes.data() + 250000, 50000);
  TrainSettings s;
  s.steps = steps;
  s.batch_size = batch;
  s.seq_len = seq;
  s.warmup_steps = std::min(10, steps);
  s.grad_clip = 0.5;  // clipping acts on some steps, so the device-side scale is exercised
  s.eval_tokens = 4096;
  CudaBackend backend(0, GemmPrecision::bf16);
  backend.set_graphs_enabled(graphs);
  return train_and_evaluate(spec, s, train, validation, 11, backend);
}

// The transformer preset at d 64, one layer, its SwiGLU slot an MoE (8
// experts of 64 hidden, top-2: the gene's defaults).
inline genome::ModelSpec transformer_with_moe_spec() {
  genome::Genome g = genome::preset("transformer", 64, 1);
  g.slots[1].ops[0] = genome::OpGene{};
  g.slots[1].ops[0].cls = genome::LivClass::moe;
  g.slots[1].ops[0].moe.hidden = 64;
  return genome::decode(g);
}

}  // namespace livs::evaluator::gpu_testing
