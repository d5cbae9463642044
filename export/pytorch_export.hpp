#pragma once
// The PyTorch export (issue 16): a genome as a folder a PyTorch user can load
// and train, with livsearch's trained weights when given:
//   model.py           self-contained (only torch imported), one class per LIV
//                      class the genome uses; from export/pytorch/*, which
//                      keeps the Python readable as Python
//   config.json        the canonical genome, which Model(config) decodes
//   README.md          how to load it and train it in a plain loop
//   model.safetensors  the weights, checked against the genome first
// Parameter names in model.py equal the checkpoint names
// (genome/checkpoint.hpp), so a livsearch checkpoint loads by name.
#include <filesystem>
#include <optional>
#include <string>

#include "genome/genome.hpp"

namespace livs::exports {

// model.py for this genome. A class the writer has no PyTorch form for is an
// InputError naming `genome_name`, the op's JSON pointer and the class.
std::string pytorch_model_source(const genome::Genome& genome, const std::string& genome_name);

// Writes the folder (created if missing; existing files replaced). `weights`:
// a safetensors file whose tensors must be exactly the genome's weights
// (InputError naming that file and what the genome expects otherwise).
void write_pytorch_package(const genome::Genome& genome, const std::string& genome_name,
                           const std::filesystem::path& folder,
                           const std::optional<std::filesystem::path>& weights);

}  // namespace livs::exports
