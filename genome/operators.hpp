#pragma once
// Variation operators over a search space, all driven by livs::Rng so that a
// seed reproduces them on any machine. Every operator returns a genome that is
// valid in the space (validate() finds nothing) and canonical, except where
// the space's max_params cannot be met: repair then shrinks what it can and
// validate() reports the excess.
#include <string>
#include <utility>

#include "common/rng.hpp"
#include "genome/genome.hpp"
#include "genome/search_space.hpp"

namespace livs::genome {

// A random genome: depth and d_model from their sets, classes by weight,
// knobs uniform over their sets, fusion, differential and sharing with the
// space's probabilities.
Genome sample(const SearchSpace& space, Rng& rng);

// One random change to one place: an op's class, one knob, featurizer or
// feature sharing on/off, fusion on/off or its kind, differential on/off,
// inserting or deleting slots (when the depth is searchable), d_model (when
// searchable). `what`, when given, receives a short name of the change.
Genome mutate(const Genome& g, const SearchSpace& space, Rng& rng, std::string* what = nullptr);

// Two-point crossover on the backbone: the children swap the slots between
// two cut points (at even positions in the alternating layout); each keeps
// its first parent's d_model and length.
std::pair<Genome, Genome> crossover(const Genome& a, const Genome& b, const SearchSpace& space, Rng& rng);

// Any genome (for instance an offspring) made valid in the space:
// d_model, vocab and depth onto their sets, classes onto the layout and the
// allowed classes, knobs onto their nearest allowed values (heads dividing
// d_model, kv_heads dividing heads, ...), fusion and differential removed
// where not allowed, sharing dropped where it is not allowed or not
// compatible (sharing only towards earlier ops of a compatible class), sizes
// shrunk towards max_params. Deterministic; the result is canonical.
Genome repair(const Genome& g, const SearchSpace& space);

}  // namespace livs::genome
