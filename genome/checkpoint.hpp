#pragma once
// The names of a model's weights outside livsearch: in the safetensors files
// `livsearch eval --save` writes and in the exported PyTorch module, whose
// parameters carry the same names (so a checkpoint loads by name, with no
// table of renames). They follow the module tree of the export:
//   embedding, final_norm                 model weights
//   slots.3.norm, slots.3.gate            a slot's norm gain and fusion gate
//   slots.3.ops.0.wq                      weight "wq" of op 0 of slot 3
// (local names as in docs/architecture.md, "Weights per class"). A weight
// shared through featurizer sharing is listed once, under its owner.
#include <cstdint>
#include <string>
#include <vector>

#include "genome/model_spec.hpp"

namespace livs::genome {

std::string checkpoint_name(int slot, const std::string& slot_weight);
std::string checkpoint_name(int slot, int op, const std::string& op_weight);

struct CheckpointWeight {
  std::string name;  // the checkpoint name
  std::vector<int64_t> shape;
  int slot = -1;      // -1: a model weight
  int op = -1;        // -1: a model or slot weight
  std::string local;  // the name inside its owner ("wq", "norm", "embedding")
};

// Every weight the model owns, in model order (embedding, then slot by slot:
// norm, gate, each op's own weights; final_norm last).
std::vector<CheckpointWeight> checkpoint_weights(const ModelSpec& spec);

}  // namespace livs::genome
