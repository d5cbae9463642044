#pragma once
// Decoding a genome into the ModelSpec the evaluator builds: every knob
// resolved, every weight with its shape (names as in docs/architecture.md,
// "Weights per class"), sharing explicit, each operator's decode state.
#include <vector>

#include "genome/genome.hpp"
#include "genome/model_spec.hpp"

namespace livs::genome {

// The weights an operator would own without featurizer sharing (feature
// sharing already applied: an sa that shares K and V has no wk, wv).
// Featurizer sharing is legal exactly when these lists are identical.
std::vector<WeightSpec> op_weights(const OpGene& op, int d_model);

// Elements of decode state per sequence (see DecodeState).
DecodeState op_decode_state(const OpGene& op, int d_model);

// Throws livs::InputError (file "<genome>") listing check_genome's problems
// when the genome is not structurally valid.
ModelSpec decode(const Genome& g);

}  // namespace livs::genome
