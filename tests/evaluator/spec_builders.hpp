#pragma once
// Hand-built ModelSpecs for the evaluator tests (until genome presets exist):
// the weight names and shapes follow docs/architecture.md, "Weights per class".
#include "genome/model_spec.hpp"

namespace livs::evaluator::testing {

inline genome::OpSpec sa_op(int d_model, int heads, int kv_heads, int window = 0, bool qk_norm = false,
                            bool rope = true) {
  genome::OpSpec op;
  op.cls = genome::LivClass::sa;
  op.sa.heads = heads;
  op.sa.kv_heads = kv_heads;
  op.sa.head_dim = d_model / heads;
  op.sa.window = window;
  op.sa.qk_norm = qk_norm;
  op.sa.rope = rope;
  const int64_t D = d_model, hd = op.sa.head_dim;
  op.weights = {{"wq", {heads * hd, D}},
                {"wk", {kv_heads * hd, D}},
                {"wv", {kv_heads * hd, D}},
                {"wo", {D, heads * hd}}};
  if (qk_norm) {
    op.weights.push_back({"q_norm", {hd}});
    op.weights.push_back({"k_norm", {hd}});
  }
  op.state = {0, 2 * kv_heads * hd, window};
  return op;
}

inline genome::OpSpec swiglu_op(int d_model, int hidden) {
  genome::OpSpec op;
  op.cls = genome::LivClass::swiglu;
  op.swiglu.hidden = hidden;
  const int64_t D = d_model, F = hidden;
  op.weights = {{"w_gate", {F, D}}, {"w_up", {F, D}}, {"w_down", {D, F}}};
  return op;
}

inline genome::SlotSpec slot_of(genome::OpSpec op, int d_model) {
  genome::SlotSpec slot;
  slot.ops.push_back(std::move(op));
  slot.weights = {{"norm", {d_model}}};
  return slot;
}

// Transformer++: layers x (sa, swiglu), pre-RMSNorm, RoPE, tied embeddings.
inline genome::ModelSpec transformer_spec(int d_model, int layers, int heads, int kv_heads, int hidden,
                                          int vocab = 256, int window = 0, bool qk_norm = false) {
  genome::ModelSpec spec;
  spec.vocab = vocab;
  spec.d_model = d_model;
  spec.weights = {{"embedding", {vocab, d_model}}, {"final_norm", {d_model}}};
  for (int l = 0; l < layers; ++l) {
    spec.slots.push_back(slot_of(sa_op(d_model, heads, kv_heads, window, qk_norm), d_model));
    spec.slots.push_back(slot_of(swiglu_op(d_model, hidden), d_model));
  }
  return spec;
}

}  // namespace livs::evaluator::testing
