#pragma once
// Helpers shared by sampling, mutation, crossover and repair (not part of the
// module's public interface).
#include <vector>

#include "common/rng.hpp"
#include "genome/genome.hpp"
#include "genome/search_space.hpp"

namespace livs::genome::detail {

// What a slot may hold: in the alternating layout even slots are token
// mixers and odd slots swiglu/moe; in the free layout anything.
enum class Role { mixer, channel, any };
Role role_of(const SearchSpace& s, int slot);
bool fits(LivClass c, Role r);
bool any_allowed(const SearchSpace& s, Role r);

int nearest(const std::vector<int>& allowed, int value);  // ties go to the smaller value

template <class T>
const T& pick(const std::vector<T>& v, Rng& rng) {
  return v[static_cast<std::size_t>(rng.integer(0, static_cast<int64_t>(v.size()) - 1))];
}
inline bool pick_bool(const std::vector<bool>& v, Rng& rng) {
  return v[rng.integer(0, static_cast<int64_t>(v.size()) - 1)];
}
// Knobs added after a space's first release draw a random number only when
// the space offers a choice, so spaces without them keep their random streams.
template <class T>
T pick_if_choice(const std::vector<T>& v, Rng& rng) {
  return v.size() > 1 ? T(v[static_cast<std::size_t>(rng.integer(0, static_cast<int64_t>(v.size()) - 1))])
                      : v.front();
}

// A class for role r by the space's weights.
LivClass sample_class(const SearchSpace& s, Role r, Rng& rng);
// The allowed class with the largest weight for role r (ties: first in class order).
LivClass best_class(const SearchSpace& s, Role r);

// Knobs uniform over their allowed sets, consistent with each other and with d_model.
OpGene sample_op(LivClass c, int d_model, const SearchSpace& s, Rng& rng);
// Knobs moved onto their nearest allowed values.
void snap_knobs(OpGene& op, int d_model, const SearchSpace& s);
// Size knobs at their smallest allowed values (for the parameter budget).
void shrink_knobs(OpGene& op, int d_model, const SearchSpace& s);

// Structural edits that keep sharing references pointing at the same ops;
// references to removed ops are cleared.
void insert_slots(Genome& g, int position, const std::vector<Slot>& slots);
void erase_slots(Genome& g, int position, int count);
void unfuse(Genome& g, int slot, int keep);

// Drops every sharing reference the space forbids or the rules reject.
void fix_sharing(Genome& g, const SearchSpace& s);

// All ops of slots before `slot` whose class fits role r.
std::vector<ShareRef> earlier_ops(const Genome& g, int slot, Role r);

}  // namespace livs::genome::detail
