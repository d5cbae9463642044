#pragma once
// Whether a safetensors file holds the weights of a genome: exactly its
// checkpoint weights (genome/checkpoint.hpp), each F32 with its shape.
#include <string>

#include "export/safetensors.hpp"
#include "genome/model_spec.hpp"

namespace livs::exports {

// Throws an InputError naming `file` with one problem per missing,
// unexpected, mistyped or misshapen tensor, each saying what `genome_name`
// expects there.
void check_weights_match(const Safetensors& weights, const genome::ModelSpec& spec, const std::string& file,
                         const std::string& genome_name);

}  // namespace livs::exports
