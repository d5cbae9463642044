#include "genome/variation_support.hpp"

#include <algorithm>
#include <cstdlib>

namespace livs::genome::detail {

Role role_of(const SearchSpace& s, int slot) {
  if (s.layout == Layout::free) return Role::any;
  return slot % 2 == 0 ? Role::mixer : Role::channel;
}

bool fits(LivClass c, Role r) { return r == Role::any || is_token_mixer(c) == (r == Role::mixer); }

bool any_allowed(const SearchSpace& s, Role r) {
  return std::any_of(std::begin(kAllClasses), std::end(kAllClasses),
                     [&](LivClass c) { return s.allows(c) && fits(c, r); });
}

int nearest(const std::vector<int>& allowed, int value) {
  if (allowed.empty()) return value;  // only a space built in code can have an empty set
  int best = allowed.front();
  for (int v : allowed)
    if (std::abs(static_cast<int64_t>(v) - value) < std::abs(static_cast<int64_t>(best) - value)) best = v;
  return best;
}

LivClass sample_class(const SearchSpace& s, Role r, Rng& rng) {
  double total = 0;
  for (LivClass c : kAllClasses)
    if (fits(c, r)) total += s.class_weights[class_index(c)];
  if (total <= 0) return best_class(s, Role::any);
  double x = rng.uniform() * total;
  LivClass last = best_class(s, r);
  for (LivClass c : kAllClasses) {
    const double w = fits(c, r) ? s.class_weights[class_index(c)] : 0;
    if (w <= 0) continue;
    last = c;
    if (x < w) return c;
    x -= w;
  }
  return last;  // rounding at the top end
}

LivClass best_class(const SearchSpace& s, Role r) {
  LivClass best = LivClass::swiglu;
  double weight = 0;
  for (LivClass c : kAllClasses) {
    const double w = s.class_weights[class_index(c)];
    if (fits(c, r) && w > weight) {
      best = c;
      weight = w;
    }
  }
  if (weight <= 0 && r != Role::any) return best_class(s, Role::any);
  return best;
}

namespace {

std::vector<int> divisors_in(const std::vector<int>& allowed, int n) {
  std::vector<int> out;
  for (int v : allowed)
    if (v > 0 && n % v == 0) out.push_back(v);
  return out;
}

// sa heads that divide d_model, with an even head_dim when RoPE is on.
std::vector<int> sa_heads(const SearchSpace& s, int d, bool rope) {
  std::vector<int> out;
  for (int h : divisors_in(s.sa.heads, d))
    if (!rope || (d / h) % 2 == 0) out.push_back(h);
  return out;
}

bool snap_bool(const std::vector<bool>& allowed, bool value) {
  return std::find(allowed.begin(), allowed.end(), value) != allowed.end() ? value : allowed.front();
}

template <class T>
std::vector<T> at_most(const std::vector<T>& v, T limit) {
  std::vector<T> out;
  for (const T& x : v)
    if (x <= limit) out.push_back(x);
  return out;
}

// Mamba-2: head_dim onto an allowed value dividing expand * d_model; where no
// value divides, the nearest expand that has one, else the Mamba-1 form (when
// allowed; check_consistency rejects a mamba2-only space with neither).
void snap_ssd(OpGene& op, int d, const SearchSpace& s) {
  if (op.ssm.form != SsmForm::mamba2) return;
  auto dims = s.ssd_head_dims(d, op.ssm.expand);
  if (dims.empty()) {
    std::vector<int> expands;
    for (int e : s.ssm.expand)
      if (!s.ssd_head_dims(d, e).empty()) expands.push_back(e);
    if (expands.empty()) {
      op.ssm.form = SsmForm::mamba1;
      return;
    }
    op.ssm.expand = nearest(expands, op.ssm.expand);
    dims = s.ssd_head_dims(d, op.ssm.expand);
  }
  op.ssm.head_dim = nearest(dims, op.ssm.head_dim);
}

}  // namespace

OpGene sample_op(LivClass c, int d, const SearchSpace& s, Rng& rng) {
  OpGene op = default_op(c, d);
  switch (c) {
    case LivClass::sa: {
      op.sa.rope = pick_bool(s.sa.rope, rng);
      auto heads = sa_heads(s, d, op.sa.rope);
      if (heads.empty()) {
        op.sa.rope = !op.sa.rope;
        heads = sa_heads(s, d, op.sa.rope);
      }
      if (!heads.empty()) op.sa.heads = pick(heads, rng);
      auto kv = divisors_in(s.sa.kv_heads, op.sa.heads);
      if (!kv.empty()) op.sa.kv_heads = pick(kv, rng);
      op.sa.window = pick(s.windows(), rng);
      op.sa.qk_norm = pick_bool(s.sa.qk_norm, rng);
      op.sa.short_conv = pick_if_choice(s.sa.short_conv, rng);
      op.sa.output_gate = pick_if_choice(s.sa.output_gate, rng);
      break;
    }
    case LivClass::linattn: {
      auto heads = divisors_in(s.linattn.heads, d);
      if (!heads.empty()) op.linattn.heads = pick(heads, rng);
      op.linattn.feature_map = pick(s.linattn.feature_map, rng);
      op.linattn.gated = pick_bool(s.linattn.gated, rng);
      op.linattn.short_conv = pick_if_choice(s.linattn.short_conv, rng);
      break;
    }
    case LivClass::rec:
      op.rec.width = pick(s.rec_widths(d), rng);
      op.rec.conv_kernel = pick(s.rec.conv_kernel, rng);
      break;
    case LivClass::ssm:
      op.ssm.expand = pick(s.ssm.expand, rng);
      op.ssm.d_state = pick(s.ssm.d_state, rng);
      op.ssm.conv_kernel = pick(s.ssm.conv_kernel, rng);
      // A one-value form set draws nothing, so spaces without mamba2 sample as before.
      op.ssm.form = s.ssm.form.size() > 1 ? pick(s.ssm.form, rng) : s.ssm.form.front();
      if (op.ssm.form == SsmForm::mamba2) {
        auto dims = s.ssd_head_dims(d, op.ssm.expand);
        if (!dims.empty()) op.ssm.head_dim = pick(dims, rng);
        snap_ssd(op, d, s);
      }
      break;
    case LivClass::gconv:
      op.gconv.kernel = pick(s.gconv.kernel, rng);
      break;
    case LivClass::swiglu:
      op.swiglu.hidden = pick(s.swiglu_hiddens(d), rng);
      break;
    case LivClass::moe: {
      op.moe.experts = pick(s.moe.experts, rng);
      auto top_k = at_most(s.moe.top_k, op.moe.experts);
      if (!top_k.empty()) op.moe.top_k = pick(top_k, rng);
      op.moe.hidden = pick(s.moe_hiddens(d), rng);
      break;
    }
    case LivClass::deltanet: {
      auto heads = divisors_in(s.deltanet.heads, d);
      if (!heads.empty()) op.deltanet.heads = pick(heads, rng);
      op.deltanet.gated = pick_bool(s.deltanet.gated, rng);
      op.deltanet.short_conv = pick(s.deltanet.short_conv, rng);
      break;
    }
  }
  op.differential = s.allows_differential(c) && rng.bernoulli(s.differential_probability);
  return op;
}

void snap_knobs(OpGene& op, int d, const SearchSpace& s) {
  switch (op.cls) {
    case LivClass::sa: {
      op.sa.rope = snap_bool(s.sa.rope, op.sa.rope);
      auto heads = sa_heads(s, d, op.sa.rope);
      if (heads.empty() && s.sa.rope.size() > 1) {
        op.sa.rope = !op.sa.rope;
        heads = sa_heads(s, d, op.sa.rope);
      }
      if (!heads.empty()) op.sa.heads = nearest(heads, op.sa.heads);
      auto kv = divisors_in(s.sa.kv_heads, op.sa.heads);
      if (!kv.empty()) op.sa.kv_heads = nearest(kv, op.sa.kv_heads);
      op.sa.window = nearest(s.windows(), s.normalise_window(op.sa.window));
      op.sa.qk_norm = snap_bool(s.sa.qk_norm, op.sa.qk_norm);
      op.sa.short_conv = nearest(s.sa.short_conv, op.sa.short_conv);
      op.sa.output_gate = snap_bool(s.sa.output_gate, op.sa.output_gate);
      break;
    }
    case LivClass::linattn: {
      auto heads = divisors_in(s.linattn.heads, d);
      if (!heads.empty()) op.linattn.heads = nearest(heads, op.linattn.heads);
      const auto& maps = s.linattn.feature_map;
      if (std::find(maps.begin(), maps.end(), op.linattn.feature_map) == maps.end())
        op.linattn.feature_map = maps.front();
      op.linattn.gated = snap_bool(s.linattn.gated, op.linattn.gated);
      op.linattn.short_conv = nearest(s.linattn.short_conv, op.linattn.short_conv);
      break;
    }
    case LivClass::rec:
      op.rec.width = nearest(s.rec_widths(d), op.rec.width);
      op.rec.conv_kernel = nearest(s.rec.conv_kernel, op.rec.conv_kernel);
      break;
    case LivClass::ssm:
      op.ssm.expand = nearest(s.ssm.expand, op.ssm.expand);
      op.ssm.d_state = nearest(s.ssm.d_state, op.ssm.d_state);
      op.ssm.conv_kernel = nearest(s.ssm.conv_kernel, op.ssm.conv_kernel);
      if (std::find(s.ssm.form.begin(), s.ssm.form.end(), op.ssm.form) == s.ssm.form.end())
        op.ssm.form = s.ssm.form.front();
      snap_ssd(op, d, s);
      break;
    case LivClass::gconv:
      op.gconv.kernel = nearest(s.gconv.kernel, op.gconv.kernel);
      break;
    case LivClass::swiglu:
      op.swiglu.hidden = nearest(s.swiglu_hiddens(d), op.swiglu.hidden);
      break;
    case LivClass::moe: {
      op.moe.experts = nearest(s.moe.experts, op.moe.experts);
      auto top_k = at_most(s.moe.top_k, op.moe.experts);
      op.moe.top_k = nearest(top_k.empty() ? s.moe.top_k : top_k, op.moe.top_k);
      op.moe.hidden = nearest(s.moe_hiddens(d), op.moe.hidden);
      break;
    }
    case LivClass::deltanet: {
      auto heads = divisors_in(s.deltanet.heads, d);
      if (!heads.empty()) op.deltanet.heads = nearest(heads, op.deltanet.heads);
      op.deltanet.gated = snap_bool(s.deltanet.gated, op.deltanet.gated);
      op.deltanet.short_conv = nearest(s.deltanet.short_conv, op.deltanet.short_conv);
      break;
    }
  }
  op.differential = op.differential && s.allows_differential(op.cls);
  if (!has_shareable_features(op.cls)) op.features = {};
}

void shrink_knobs(OpGene& op, int d, const SearchSpace& s) {
  switch (op.cls) {
    case LivClass::sa: {
      auto kv = divisors_in(s.sa.kv_heads, op.sa.heads);
      if (!kv.empty()) op.sa.kv_heads = kv.front();
      op.sa.short_conv = s.sa.short_conv.front();
      op.sa.output_gate = s.sa.output_gate.front();
      break;
    }
    case LivClass::linattn:  // parameters depend only on the short convolution
      op.linattn.short_conv = s.linattn.short_conv.front();
      break;
    case LivClass::rec:
      op.rec.width = s.rec_widths(d).front();
      op.rec.conv_kernel = s.rec.conv_kernel.front();
      break;
    case LivClass::ssm:
      op.ssm.expand = s.ssm.expand.front();
      op.ssm.d_state = s.ssm.d_state.front();
      op.ssm.conv_kernel = s.ssm.conv_kernel.front();
      snap_ssd(op, d, s);
      break;
    case LivClass::gconv:
      op.gconv.kernel = s.gconv.kernel.front();
      break;
    case LivClass::swiglu:
      op.swiglu.hidden = s.swiglu_hiddens(d).front();
      break;
    case LivClass::moe:
      op.moe.experts = s.moe.experts.front();
      op.moe.top_k = std::min(op.moe.top_k, op.moe.experts);
      snap_knobs(op, d, s);
      op.moe.hidden = s.moe_hiddens(d).front();
      break;
    case LivClass::deltanet:  // parameters depend on the gate and the conv, not on the heads
      op.deltanet.gated = s.deltanet.gated.front();
      op.deltanet.short_conv = s.deltanet.short_conv.front();
      break;
  }
}

namespace {

template <class F>
void for_each_ref(Genome& g, F&& f) {
  for (auto& slot : g.slots)
    for (auto& op : slot.ops) {
      f(op.featurizer);
      f(op.features);
    }
}

}  // namespace

void insert_slots(Genome& g, int position, const std::vector<Slot>& slots) {
  const int n = static_cast<int>(slots.size());
  for_each_ref(g, [&](ShareRef& r) {
    if (r.valid() && r.slot >= position) r.slot += n;
  });
  g.slots.insert(g.slots.begin() + position, slots.begin(), slots.end());
}

void erase_slots(Genome& g, int position, int count) {
  g.slots.erase(g.slots.begin() + position, g.slots.begin() + position + count);
  for_each_ref(g, [&](ShareRef& r) {
    if (!r.valid() || r.slot < position) return;
    if (r.slot < position + count)
      r = {};
    else
      r.slot -= count;
  });
}

void unfuse(Genome& g, int slot, int keep) {
  Slot& s = g.slots[slot];
  OpGene kept = s.ops[keep];
  s.ops = {kept};
  s.fusion = FusionKind::none;
  for_each_ref(g, [&](ShareRef& r) {
    if (r.slot != slot) return;
    if (r.op == keep)
      r.op = 0;
    else
      r = {};
  });
}

void fix_sharing(Genome& g, const SearchSpace& s) {
  for (int i = 0; i < static_cast<int>(g.slots.size()); ++i) {
    for (auto& op : g.slots[i].ops) {
      auto source = [&](const ShareRef& r) -> const OpGene* {
        if (r.slot < 0 || r.slot >= i || r.op < 0 || r.op >= static_cast<int>(g.slots[r.slot].ops.size()))
          return nullptr;
        return &g.slots[r.slot].ops[r.op];
      };
      if (op.features.valid()) {
        const OpGene* src = source(op.features);
        if (!s.feature_sharing || !src || !features_compatible(*src, op)) op.features = {};
      }
      if (op.featurizer.valid()) {
        const OpGene* src = source(op.featurizer);
        if (!s.featurizer_sharing || !src || !featurizer_compatible(*src, op, g.d_model)) op.featurizer = {};
      }
    }
  }
}

std::vector<ShareRef> earlier_ops(const Genome& g, int slot, Role r) {
  std::vector<ShareRef> out;
  for (int i = 0; i < slot && i < static_cast<int>(g.slots.size()); ++i)
    for (int o = 0; o < static_cast<int>(g.slots[i].ops.size()); ++o)
      if (fits(g.slots[i].ops[o].cls, r)) out.push_back({i, o});
  return out;
}

}  // namespace livs::genome::detail
