#include "genome/genome.hpp"

#include <algorithm>
#include <cmath>

#include "genome/genome_json.hpp"

namespace livs::genome {

bool has_shareable_features(LivClass c) { return c == LivClass::sa || c == LivClass::linattn; }

int scaled_width(double factor, int d_model) {
  const double exact = factor * static_cast<double>(d_model) / 8.0;
  return std::max(8, static_cast<int>(std::lround(exact)) * 8);
}

OpGene default_op(LivClass cls, int d_model) {
  OpGene op;
  op.cls = cls;
  const int heads = std::max(1, d_model / 32);
  switch (cls) {
    case LivClass::sa:
      op.sa.heads = heads;
      op.sa.kv_heads = heads;
      break;
    case LivClass::linattn:
      op.linattn.heads = heads;
      break;
    case LivClass::rec:
      op.rec.width = scaled_width(4.0 / 3.0, d_model);
      break;
    case LivClass::swiglu:
      op.swiglu.hidden = scaled_width(8.0 / 3.0, d_model);
      break;
    case LivClass::moe:
      op.moe.hidden = scaled_width(2.0, d_model);
      break;
    case LivClass::deltanet:
      op.deltanet.heads = heads;
      break;
    case LivClass::ssm:
    case LivClass::gconv:
      break;
  }
  return op;
}

std::string op_pointer(int slot, int op, bool fusion) {
  std::string p = "/slots/" + std::to_string(slot);
  if (fusion) p += "/ops/" + std::to_string(op);
  return p;
}

std::string op_pointer(const Genome& g, int slot, int op) {
  bool fusion =
      slot >= 0 && slot < static_cast<int>(g.slots.size()) && g.slots[slot].fusion != FusionKind::none;
  return op_pointer(slot, op, fusion);
}

namespace {

// Keep only the knobs of the op's own class; the others go back to defaults.
OpGene strip_inactive(const OpGene& op) {
  OpGene out;
  out.cls = op.cls;
  switch (op.cls) {
    case LivClass::sa:
      out.sa = op.sa;
      break;
    case LivClass::linattn:
      out.linattn = op.linattn;
      break;
    case LivClass::rec:
      out.rec = op.rec;
      break;
    case LivClass::ssm:
      out.ssm = op.ssm;
      if (op.ssm.form == SsmForm::mamba1) out.ssm.head_dim = SsmGene{}.head_dim;  // a mamba2 knob
      break;
    case LivClass::gconv:
      out.gconv = op.gconv;
      break;
    case LivClass::swiglu:
      out.swiglu = op.swiglu;
      break;
    case LivClass::moe:
      out.moe = op.moe;
      break;
    case LivClass::deltanet:
      out.deltanet = op.deltanet;
      break;
  }
  out.differential = is_token_mixer(op.cls) && op.differential;
  if (op.featurizer.valid()) out.featurizer = op.featurizer;
  if (has_shareable_features(op.cls) && op.features.valid()) out.features = op.features;
  return out;
}

bool in_range(const Genome& g, const ShareRef& r, int before_slot) {
  return r.slot >= 0 && r.slot < before_slot && r.slot < static_cast<int>(g.slots.size()) && r.op >= 0 &&
         r.op < static_cast<int>(g.slots[r.slot].ops.size());
}

}  // namespace

Genome canonicalize(const Genome& g) {
  Genome out;
  out.d_model = g.d_model;
  out.vocab = g.vocab;
  out.slots.reserve(g.slots.size());
  // new_position[s][o]: where op o of input slot s ended up after sorting.
  std::vector<std::vector<int>> new_position;
  // Slots whose two operands are identical and symmetric: which of them a
  // later reference names is arbitrary, so the first reference decides that
  // it is op 0.
  std::vector<bool> undecided;
  for (int s = 0; s < static_cast<int>(g.slots.size()); ++s) {
    Slot slot;
    slot.fusion = g.slots[s].fusion;
    for (const auto& op_in : g.slots[s].ops) {
      OpGene op = strip_inactive(op_in);
      for (ShareRef* ref : {&op.featurizer, &op.features}) {
        if (!in_range(g, *ref, s)) continue;
        // A chain (A shares from B, B from C) means A uses C's weights/features.
        const OpGene& source = out.slots[ref->slot].ops[new_position[ref->slot][ref->op]];
        const ShareRef& next = ref == &op.featurizer ? source.featurizer : source.features;
        if (next.valid()) {
          *ref = next;
          continue;
        }
        if (undecided[ref->slot]) {
          undecided[ref->slot] = false;
          if (new_position[ref->slot][ref->op] == 1)
            std::swap(new_position[ref->slot][0], new_position[ref->slot][1]);
        }
        ref->op = new_position[ref->slot][ref->op];
      }
      slot.ops.push_back(op);
    }
    std::vector<int> position(slot.ops.size());
    for (int o = 0; o < static_cast<int>(position.size()); ++o) position[o] = o;
    // Sum and mean do not depend on the order of their two operands.
    const bool symmetric = slot.fusion == FusionKind::sum || slot.fusion == FusionKind::mean;
    if (symmetric && slot.ops.size() == 2 &&
        op_to_json(slot.ops[1]).dump() < op_to_json(slot.ops[0]).dump()) {
      std::swap(slot.ops[0], slot.ops[1]);
      position = {1, 0};
    }
    new_position.push_back(position);
    undecided.push_back(symmetric && slot.ops.size() == 2 && slot.ops[0] == slot.ops[1]);
    out.slots.push_back(std::move(slot));
  }
  return out;
}

}  // namespace livs::genome
