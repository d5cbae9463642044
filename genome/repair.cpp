// repair: any genome -> a canonical genome valid in the search space.
#include <algorithm>
#include <set>

#include "genome/decode.hpp"
#include "genome/operators.hpp"
#include "genome/variation_support.hpp"

namespace livs::genome {

using namespace detail;

namespace {

// The default op of the best allowed class for a role, on the space's values.
OpGene fallback_op(const SearchSpace& s, Role r, int d) {
  OpGene op = default_op(best_class(s, r), d);
  snap_knobs(op, d, s);
  return op;
}

// A class replacement that stays in the same family where it can.
OpGene replacement(const SearchSpace& s, LivClass c, Role r, int d) {
  if (r == Role::any) r = is_token_mixer(c) ? Role::mixer : Role::channel;
  if (!any_allowed(s, r)) r = Role::any;
  return fallback_op(s, r, d);
}

void repair_structure(Genome& g, const SearchSpace& s) {
  const int depth = nearest(s.depth, static_cast<int>(g.slots.size()));
  if (static_cast<int>(g.slots.size()) > depth)
    erase_slots(g, depth, static_cast<int>(g.slots.size()) - depth);
  while (static_cast<int>(g.slots.size()) < depth) {
    const Role r = role_of(s, static_cast<int>(g.slots.size()));
    g.slots.push_back(Slot{FusionKind::none, {fallback_op(s, r, g.d_model)}});
  }
  for (int i = 0; i < depth; ++i) {
    Slot& slot = g.slots[i];
    const Role r = role_of(s, i);
    if (slot.ops.empty()) slot.ops.push_back(fallback_op(s, r, g.d_model));
    if (slot.fusion == FusionKind::none && slot.ops.size() > 1) slot.ops.resize(1);
    if (slot.fusion != FusionKind::none) {
      if (slot.ops.size() != 2 || s.fusion_kinds.empty() || r == Role::channel ||
          !any_allowed(s, Role::mixer)) {
        // keep the first op that is a token mixer, else the first
        int keep = 0;
        if (!is_token_mixer(slot.ops[0].cls) && slot.ops.size() > 1 && is_token_mixer(slot.ops[1].cls))
          keep = 1;
        unfuse(g, i, keep);
      } else if (std::find(s.fusion_kinds.begin(), s.fusion_kinds.end(), slot.fusion) ==
                 s.fusion_kinds.end()) {
        slot.fusion = s.fusion_kinds.front();
      }
    }
    const bool fused = g.slots[i].fusion != FusionKind::none;
    for (auto& op : g.slots[i].ops) {
      const Role need = fused ? Role::mixer : r;
      if (!s.allows(op.cls) || !fits(op.cls, need)) op = replacement(s, op.cls, need, g.d_model);
    }
  }
}

// Total parameters, as ModelSpec::params_total counts them.
int64_t params_of(const Genome& g) {
  const int64_t d = g.d_model;
  int64_t n = static_cast<int64_t>(g.vocab) * d + d;
  for (const auto& slot : g.slots) {
    n += d + (slot.fusion == FusionKind::gate ? d : 0);
    for (const auto& op : slot.ops)
      if (!op.featurizer.valid())
        for (const auto& w : op_weights(op, g.d_model)) n += w.numel();
  }
  return n;
}

// Shrink the largest weight owners until the budget holds. Ops that share
// from a shrunk op take its new knobs, so sharing stays compatible.
void meet_budget(Genome& g, const SearchSpace& s) {
  std::set<std::pair<int, int>> shrunk;
  while (params_of(g) > s.max_params) {
    int best_slot = -1, best_op = 0;
    int64_t best = -1;
    for (int i = 0; i < static_cast<int>(g.slots.size()); ++i)
      for (int o = 0; o < static_cast<int>(g.slots[i].ops.size()); ++o) {
        const OpGene& op = g.slots[i].ops[o];
        if (op.featurizer.valid() || op.features.valid() || shrunk.count({i, o})) continue;
        int64_t n = 0;
        for (const auto& w : op_weights(op, g.d_model)) n += w.numel();
        if (n > best) {
          best = n;
          best_slot = i;
          best_op = o;
        }
      }
    if (best_slot < 0) return;  // nothing left to shrink: validate() reports the excess
    shrunk.insert({best_slot, best_op});
    shrink_knobs(g.slots[best_slot].ops[best_op], g.d_model, s);
    // Ops that share from a changed op (directly or through another sharer)
    // take its knobs, keeping their own references.
    std::set<std::pair<int, int>> changed = {{best_slot, best_op}};
    for (int i = best_slot + 1; i < static_cast<int>(g.slots.size()); ++i)
      for (int o = 0; o < static_cast<int>(g.slots[i].ops.size()); ++o) {
        OpGene& op = g.slots[i].ops[o];
        for (const ShareRef& r : {op.featurizer, op.features}) {
          if (!r.valid() || !changed.count({r.slot, r.op})) continue;
          const OpGene& source = g.slots[r.slot].ops[r.op];
          if (source.cls != op.cls) continue;
          OpGene copy = source;
          copy.featurizer = op.featurizer;
          copy.features = op.features;
          op = copy;
          changed.insert({i, o});
          break;
        }
      }
  }
}

}  // namespace

Genome repair(const Genome& input, const SearchSpace& s) {
  Genome g = input;
  g.vocab = s.vocab;
  g.d_model = nearest(s.d_model, g.d_model);
  repair_structure(g, s);
  for (auto& slot : g.slots)
    for (auto& op : slot.ops) snap_knobs(op, g.d_model, s);
  fix_sharing(g, s);
  if (s.max_params > 0) {
    meet_budget(g, s);
    fix_sharing(g, s);
  }
  return canonicalize(g);
}

}  // namespace livs::genome
