#pragma once
// Analytic, exact counts from a ModelSpec: FLOPs per token of every matmul of
// every operator. A multiply-add is 2 FLOPs. Counted (docs/architecture.md,
// "Objectives", has the formula per class):
//   - projections: 2 * out * in per token for every matrix an operator applies
//     (its own and the ones it reads through featurizer sharing; moe: the
//     router and top_k experts), and the tied LM head 2 * V * D;
//   - sa: q.k and p.v, 4 * H * hd per attended key (x2 when differential);
//   - linattn: state update k v^T and read-out q S, 4 * H * hd^2 (x2 when differential).
// Not counted: the embedding lookup, norms, RoPE, softmax, convolutions,
// scans and elementwise gates (O(D) per token, no matmul).
#include <cstdint>
#include <map>
#include <string>

#include "genome/model_spec.hpp"

namespace livs::proxies {

// Forward FLOPs of one token at a position that attends `keys` earlier keys
// (itself included) before any sliding window cuts it.
double forward_flops_at(const genome::ModelSpec& spec, int64_t keys);

// Training: forward + backward (twice the forward's matmuls) = 3 x the
// forward, averaged over the positions 1..seq_len of a training sequence.
double flops_per_token_train(const genome::ModelSpec& spec, int64_t seq_len);

// Inference: one decode step at the last position of the context.
double flops_per_token_infer(const genome::ModelSpec& spec, int64_t context);

// Every metric a candidate has before it is trained, as evaluate() records
// them: params, params_non_embedding, flops_per_token_train (at the training
// sequence length), flops_per_token_infer and cache_bytes (at the context
// length, `dtype_bytes` per state element). The search screens constraints on
// these before training (search/analytic_screen.hpp).
std::map<std::string, double> analytic_metrics(const genome::ModelSpec& spec, int64_t train_seq_len,
                                               int64_t context_length, int dtype_bytes);

}  // namespace livs::proxies
