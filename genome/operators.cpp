// Sampling, mutation and crossover. Each ends in repair(), so its result is
// valid in the space and canonical.
#include "genome/operators.hpp"

#include <algorithm>

#include "genome/variation_support.hpp"

namespace livs::genome {

using namespace detail;

namespace {

Role role_of_op(const Genome& g, const SearchSpace& s, int slot) {
  return g.slots[slot].fusion != FusionKind::none ? Role::mixer : role_of(s, slot);
}

// Make op (slot, o) reuse all weights of a random earlier op that may stand
// in its place: it becomes a copy of that op, so the shapes match.
bool share_featurizer(Genome& g, const SearchSpace& s, int slot, int o, Rng& rng) {
  std::vector<ShareRef> candidates;
  for (const auto& r : earlier_ops(g, slot, role_of_op(g, s, slot)))
    if (s.allows(g.slots[r.slot].ops[r.op].cls)) candidates.push_back(r);
  if (candidates.empty()) return false;
  const ShareRef ref = pick(candidates, rng);
  OpGene copy = g.slots[ref.slot].ops[ref.op];
  copy.featurizer = ref;
  g.slots[slot].ops[o] = copy;
  return true;
}

// Make op (slot, o) read the K and V (state) of a random earlier op of its
// class: it takes the knobs that shape those features.
bool share_features(Genome& g, int slot, int o, Rng& rng) {
  OpGene& op = g.slots[slot].ops[o];
  if (!has_shareable_features(op.cls)) return false;
  std::vector<ShareRef> candidates;
  for (const auto& r : earlier_ops(g, slot, Role::any))
    if (g.slots[r.slot].ops[r.op].cls == op.cls) candidates.push_back(r);
  if (candidates.empty()) return false;
  const ShareRef ref = pick(candidates, rng);
  const OpGene& src = g.slots[ref.slot].ops[ref.op];
  op.sa = src.sa;  // every sa and linattn knob shapes the features
  op.linattn = src.linattn;
  op.differential = src.differential;
  op.featurizer = {};
  op.features = ref;
  return true;
}

void maybe_share(Genome& g, const SearchSpace& s, int slot, int o, Rng& rng) {
  if (s.featurizer_sharing && rng.bernoulli(s.sharing_probability)) {
    share_featurizer(g, s, slot, o, rng);
  } else if (s.feature_sharing && has_shareable_features(g.slots[slot].ops[o].cls) &&
             rng.bernoulli(s.sharing_probability)) {
    share_features(g, slot, o, rng);
  }
}

bool can_fuse(const SearchSpace& s, Role r) {
  return !s.fusion_kinds.empty() && r != Role::channel && any_allowed(s, Role::mixer);
}

Slot sample_slot(const SearchSpace& s, int index, int d_model, Rng& rng) {
  const Role r = role_of(s, index);
  const LivClass c = sample_class(s, r, rng);
  Slot slot;
  slot.ops.push_back(sample_op(c, d_model, s, rng));
  if (can_fuse(s, r) && is_token_mixer(c) && rng.bernoulli(s.fusion_probability)) {
    slot.fusion = pick(s.fusion_kinds, rng);
    slot.ops.push_back(sample_op(sample_class(s, Role::mixer, rng), d_model, s, rng));
  }
  return slot;
}

constexpr int kKnobCount[kClassCount] = {5, 3, 2, 3, 1, 1, 3, 3};  // per class, as in the canonical JSON

// The knobs a mutation may change: kKnobCount, plus the later knobs when the
// space offers a choice of them (sa's short_conv and output_gate, linattn's
// short_conv; ssm's form, and head_dim for a mamba2 op), so spaces without
// them keep their random streams.
int knob_count(const OpGene& op, const SearchSpace& s) {
  const LivClass c = op.cls;
  int n = kKnobCount[class_index(c)];
  if (c == LivClass::sa && (s.sa.short_conv.size() > 1 || s.sa.output_gate.size() > 1)) n += 2;
  if (c == LivClass::linattn && s.linattn.short_conv.size() > 1) n += 1;
  if (c == LivClass::ssm) {
    const bool both_forms = s.ssm.form.size() > 1;
    n += (both_forms || op.ssm.form == SsmForm::mamba2 ? 1 : 0) + (both_forms && op.ssm.form == SsmForm::mamba2 ? 1 : 0);
  }
  return n;
}

// Copy knob k of op's class from `from`.
void copy_knob(OpGene& op, const OpGene& from, int k) {
  switch (op.cls) {
    case LivClass::sa:
      if (k == 0) op.sa.heads = from.sa.heads;
      if (k == 1) op.sa.kv_heads = from.sa.kv_heads;
      if (k == 2) op.sa.window = from.sa.window;
      if (k == 3) op.sa.qk_norm = from.sa.qk_norm;
      if (k == 4) op.sa.rope = from.sa.rope;
      if (k == 5) op.sa.short_conv = from.sa.short_conv;
      if (k == 6) op.sa.output_gate = from.sa.output_gate;
      break;
    case LivClass::linattn:
      if (k == 0) op.linattn.heads = from.linattn.heads;
      if (k == 1) op.linattn.feature_map = from.linattn.feature_map;
      if (k == 2) op.linattn.gated = from.linattn.gated;
      if (k == 3) op.linattn.short_conv = from.linattn.short_conv;
      break;
    case LivClass::rec:
      if (k == 0) op.rec.width = from.rec.width;
      if (k == 1) op.rec.conv_kernel = from.rec.conv_kernel;
      break;
    case LivClass::ssm:
      if (k == 0) op.ssm.expand = from.ssm.expand;
      if (k == 1) op.ssm.d_state = from.ssm.d_state;
      if (k == 2) op.ssm.conv_kernel = from.ssm.conv_kernel;
      if (k == 3) op.ssm.form = from.ssm.form;  // with a fitting head_dim
      if (k == 3 || k == 4) op.ssm.head_dim = from.ssm.head_dim;
      break;
    case LivClass::gconv:
      op.gconv.kernel = from.gconv.kernel;
      break;
    case LivClass::swiglu:
      op.swiglu.hidden = from.swiglu.hidden;
      break;
    case LivClass::moe:
      if (k == 0) op.moe.experts = from.moe.experts;
      if (k == 1) op.moe.top_k = from.moe.top_k;
      if (k == 2) op.moe.hidden = from.moe.hidden;
      break;
    case LivClass::deltanet:
      if (k == 0) op.deltanet.heads = from.deltanet.heads;
      if (k == 1) op.deltanet.gated = from.deltanet.gated;
      if (k == 2) op.deltanet.short_conv = from.deltanet.short_conv;
      break;
  }
}

std::vector<ShareRef> all_ops(const Genome& g) {
  return earlier_ops(g, static_cast<int>(g.slots.size()), Role::any);
}

template <class Pred>
std::vector<ShareRef> ops_where(const Genome& g, Pred&& pred) {
  std::vector<ShareRef> out;
  for (const auto& r : all_ops(g))
    if (pred(g.slots[r.slot].ops[r.op])) out.push_back(r);
  return out;
}

class Mutator {
 public:
  Mutator(Genome g, const SearchSpace& s, Rng& rng) : g_(std::move(g)), s_(s), rng_(rng) {}

  std::string apply() {
    std::vector<std::string> kinds = {"class", "knob"};
    if (s_.featurizer_sharing) kinds.push_back("featurizer");
    if (s_.feature_sharing) kinds.push_back("features");
    if (!s_.fusion_kinds.empty()) kinds.push_back("fusion");
    if (s_.fusion_kinds.size() > 1) kinds.push_back("fusion_kind");
    if (!s_.differential_classes.empty()) kinds.push_back("differential");
    if (next_depth(+1) > 0) kinds.push_back("insert");
    if (next_depth(-1) > 0) kinds.push_back("delete");
    if (s_.d_model.size() > 1) kinds.push_back("d_model");
    const std::string kind = pick(kinds, rng_);
    if (run(kind)) return kind;
    mutate_knob();  // the chosen change had no place to happen
    return "knob";
  }

  Genome& genome() { return g_; }

 private:
  Genome g_;
  const SearchSpace& s_;
  Rng& rng_;

  bool run(const std::string& kind) {
    if (kind == "class") return mutate_class();
    if (kind == "knob") return mutate_knob();
    if (kind == "featurizer") return toggle_featurizer();
    if (kind == "features") return toggle_features();
    if (kind == "fusion") return toggle_fusion();
    if (kind == "fusion_kind") return change_fusion_kind();
    if (kind == "differential") return toggle_differential();
    if (kind == "insert") return insert();
    if (kind == "delete") return erase();
    return change_d_model();
  }

  OpGene& at(const ShareRef& r) { return g_.slots[r.slot].ops[r.op]; }

  bool mutate_class() {
    const ShareRef r = pick(all_ops(g_), rng_);
    const Role need = role_of_op(g_, s_, r.slot);
    LivClass c = at(r).cls;
    for (int tries = 0; tries < 8 && c == at(r).cls; ++tries) c = sample_class(s_, need, rng_);
    at(r) = sample_op(c, g_.d_model, s_, rng_);
    return true;
  }

  bool mutate_knob() {
    const ShareRef r = pick(all_ops(g_), rng_);
    OpGene& op = at(r);
    const OpGene fresh = sample_op(op.cls, g_.d_model, s_, rng_);
    copy_knob(op, fresh, static_cast<int>(rng_.integer(0, knob_count(op, s_) - 1)));
    return true;
  }

  bool toggle_featurizer() {
    const ShareRef r = pick(all_ops(g_), rng_);
    if (at(r).featurizer.valid()) {
      at(r).featurizer = {};
      return true;
    }
    return share_featurizer(g_, s_, r.slot, r.op, rng_);
  }

  bool toggle_features() {
    auto candidates = ops_where(g_, [](const OpGene& op) { return has_shareable_features(op.cls); });
    if (candidates.empty()) return false;
    const ShareRef r = pick(candidates, rng_);
    if (at(r).features.valid()) {
      at(r).features = {};
      return true;
    }
    return share_features(g_, r.slot, r.op, rng_);
  }

  bool toggle_fusion() {
    std::vector<int> slots;
    for (int i = 0; i < static_cast<int>(g_.slots.size()); ++i) {
      const Slot& slot = g_.slots[i];
      if (slot.fusion != FusionKind::none ||
          (can_fuse(s_, role_of(s_, i)) && is_token_mixer(slot.ops[0].cls)))
        slots.push_back(i);
    }
    if (slots.empty()) return false;
    const int i = pick(slots, rng_);
    Slot& slot = g_.slots[i];
    if (slot.fusion != FusionKind::none) {
      unfuse(g_, i, static_cast<int>(rng_.integer(0, 1)));
    } else {
      slot.fusion = pick(s_.fusion_kinds, rng_);
      slot.ops.push_back(sample_op(sample_class(s_, Role::mixer, rng_), g_.d_model, s_, rng_));
    }
    return true;
  }

  bool change_fusion_kind() {
    std::vector<int> fused;
    for (int i = 0; i < static_cast<int>(g_.slots.size()); ++i)
      if (g_.slots[i].fusion != FusionKind::none) fused.push_back(i);
    if (fused.empty()) return false;
    Slot& slot = g_.slots[pick(fused, rng_)];
    std::vector<FusionKind> others;
    for (auto k : s_.fusion_kinds)
      if (k != slot.fusion) others.push_back(k);
    if (others.empty()) return false;
    slot.fusion = pick(others, rng_);
    return true;
  }

  bool toggle_differential() {
    auto candidates = ops_where(g_, [&](const OpGene& op) { return s_.allows_differential(op.cls); });
    if (candidates.empty()) return false;
    OpGene& op = at(pick(candidates, rng_));
    op.differential = !op.differential;
    return true;
  }

  // The next allowed depth above (+1) or below (-1) the current one, or -1.
  int next_depth(int direction) const {
    const int n = static_cast<int>(g_.slots.size());
    int best = -1;
    for (int d : s_.depth) {
      if (direction > 0 && d > n && (best < 0 || d < best)) best = d;
      if (direction < 0 && d < n && d > best) best = d;
    }
    return best;
  }

  // A random position for a block of slots; even in the alternating layout,
  // where every allowed depth is even, so roles keep their parity.
  int position(int limit) {
    if (s_.layout == Layout::alternating) return 2 * static_cast<int>(rng_.integer(0, limit / 2));
    return static_cast<int>(rng_.integer(0, limit));
  }

  bool insert() {
    const int n = static_cast<int>(g_.slots.size()), target = next_depth(+1);
    if (target < 0) return false;
    const int p = position(n);
    std::vector<Slot> block;
    for (int k = 0; k < target - n; ++k) block.push_back(sample_slot(s_, p + k, g_.d_model, rng_));
    insert_slots(g_, p, block);
    return true;
  }

  bool erase() {
    const int n = static_cast<int>(g_.slots.size()), target = next_depth(-1);
    if (target < 0) return false;
    erase_slots(g_, position(target), n - target);
    return true;
  }

  bool change_d_model() {
    std::vector<int> others;
    for (int d : s_.d_model)
      if (d != g_.d_model) others.push_back(d);
    if (others.empty()) return false;
    g_.d_model = pick(others, rng_);
    return true;
  }
};

}  // namespace

Genome sample(const SearchSpace& s, Rng& rng) {
  Genome g;
  g.d_model = pick(s.d_model, rng);
  g.vocab = s.vocab;
  const int depth = pick(s.depth, rng);
  for (int i = 0; i < depth; ++i) {
    g.slots.push_back(sample_slot(s, i, g.d_model, rng));
    for (int o = 0; o < static_cast<int>(g.slots[i].ops.size()); ++o) maybe_share(g, s, i, o, rng);
  }
  return repair(g, s);
}

Genome mutate(const Genome& g, const SearchSpace& s, Rng& rng, std::string* what) {
  Mutator m(repair(g, s), s, rng);
  const std::string kind = m.apply();
  if (what) *what = kind;
  return repair(m.genome(), s);
}

std::pair<Genome, Genome> crossover(const Genome& a, const Genome& b, const SearchSpace& s, Rng& rng) {
  Genome x = repair(a, s), y = repair(b, s);
  const int n = static_cast<int>(std::min(x.slots.size(), y.slots.size()));
  const int step = s.layout == Layout::alternating ? 2 : 1;
  int i = step * static_cast<int>(rng.integer(0, n / step));
  int j = step * static_cast<int>(rng.integer(0, n / step));
  if (i > j) std::swap(i, j);
  // Slots keep their positions, so their references still point at earlier
  // slots; repair drops those that the other parent's ops do not satisfy.
  for (int k = i; k < j; ++k) std::swap(x.slots[k], y.slots[k]);
  return {repair(x, s), repair(y, s)};
}

}  // namespace livs::genome
