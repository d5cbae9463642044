#pragma once
// Built-in architectures written as genomes. `layers` counts mixer + MLP
// pairs, so a preset has 2 * layers slots: each token mixer is followed by a
// SwiGLU slot.
#include <string>
#include <vector>

#include "genome/genome.hpp"

namespace livs::genome {

const std::vector<std::string>& preset_names();

// Throws livs::InputError for an unknown name, a d_model that is not a
// multiple of 8 in [8, 65536] or layers outside [1, 1024].
Genome preset(const std::string& name, int d_model = 128, int layers = 4);

}  // namespace livs::genome
