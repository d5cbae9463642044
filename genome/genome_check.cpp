// Structural validity of a genome, independent of any search space.
#include <cstdint>
#include <string>

#include "genome/decode.hpp"
#include "genome/genome.hpp"

namespace livs::genome {

namespace {

std::string str(int v) { return std::to_string(v); }

struct Checker {
  const Genome& g;
  std::vector<InputProblem> problems;

  void add(std::string pointer, std::string message) {
    problems.push_back({std::move(pointer), std::move(message)});
  }

  // Inclusive range check; returns whether the value is inside.
  bool range(const std::string& pointer, int value, int lo, int hi) {
    if (value >= lo && value <= hi) return true;
    add(pointer, "expected an integer in [" + str(lo) + ", " + str(hi) + "], got " + str(value));
    return false;
  }

  // The short-convolution featurizer: 0 (off) or a kernel of 2 to 4 taps.
  void short_conv(const std::string& pointer, int kernel) {
    if (kernel != 0 && (kernel < 2 || kernel > 4))
      add(pointer, "expected 0 (off) or a kernel in [2, 4], got " + str(kernel));
  }

  void knobs(const OpGene& op, const std::string& at) {
    const int d = g.d_model;
    switch (op.cls) {
      case LivClass::sa: {
        const bool heads_ok = range(at + "/heads", op.sa.heads, 1, 1024);
        if (heads_ok && d % op.sa.heads != 0)
          add(at + "/heads", str(op.sa.heads) + " does not divide d_model " + str(d));
        // An omitted kv_heads equals heads: a bad heads is one problem, not two.
        const bool kv_heads_follows_bad_heads = !heads_ok && op.sa.kv_heads == op.sa.heads;
        if (!kv_heads_follows_bad_heads && range(at + "/kv_heads", op.sa.kv_heads, 1, 1024) && heads_ok &&
            op.sa.heads % op.sa.kv_heads != 0)
          add(at + "/kv_heads", str(op.sa.kv_heads) + " does not divide heads " + str(op.sa.heads));
        range(at + "/window", op.sa.window, 0, 1 << 24);
        if (heads_ok && d % op.sa.heads == 0 && op.sa.rope && (d / op.sa.heads) % 2 != 0)
          add(at + "/rope", "RoPE needs an even head_dim, got " + str(d / op.sa.heads));
        short_conv(at + "/short_conv", op.sa.short_conv);
        break;
      }
      case LivClass::linattn:
        if (range(at + "/heads", op.linattn.heads, 1, 1024) && d % op.linattn.heads != 0)
          add(at + "/heads", str(op.linattn.heads) + " does not divide d_model " + str(d));
        short_conv(at + "/short_conv", op.linattn.short_conv);
        break;
      case LivClass::rec:
        range(at + "/width", op.rec.width, 1, 1 << 16);
        range(at + "/conv_kernel", op.rec.conv_kernel, 1, 64);
        break;
      case LivClass::ssm:
        range(at + "/expand", op.ssm.expand, 1, 16);
        range(at + "/d_state", op.ssm.d_state, 1, 1024);
        range(at + "/conv_kernel", op.ssm.conv_kernel, 1, 64);
        // In 64 bits: a damaged genome's d_model and expand may be out of
        // range (each reported above) and their product overflow an int.
        if (const int64_t d_inner = int64_t(op.ssm.expand) * d;
            op.ssm.form == SsmForm::mamba2 && range(at + "/head_dim", op.ssm.head_dim, 1, 1024) &&
            op.ssm.expand >= 1 && d_inner % op.ssm.head_dim != 0)
          add(at + "/head_dim", str(op.ssm.head_dim) + " does not divide d_inner = expand * d_model = " +
                                    std::to_string(d_inner));
        break;
      case LivClass::gconv:
        range(at + "/kernel", op.gconv.kernel, 1, 4096);
        break;
      case LivClass::swiglu:
        range(at + "/hidden", op.swiglu.hidden, 1, 1 << 20);
        break;
      case LivClass::moe:
        if (range(at + "/experts", op.moe.experts, 2, 1024))
          range(at + "/top_k", op.moe.top_k, 1, op.moe.experts);
        range(at + "/hidden", op.moe.hidden, 1, 1 << 20);
        break;
      case LivClass::deltanet:
        if (range(at + "/heads", op.deltanet.heads, 1, 1024) && d % op.deltanet.heads != 0)
          add(at + "/heads", str(op.deltanet.heads) + " does not divide d_model " + str(d));
        short_conv(at + "/short_conv", op.deltanet.short_conv);
        if (op.differential) add(at + "/differential", "deltanet has no differential form");
        break;
    }
    if (op.differential && !is_token_mixer(op.cls))
      add(at + "/differential",
          std::string("only token mixers can be differential, not ") + to_string(op.cls));
  }

  // The source of a reference, or nullptr after reporting why there is none.
  const OpGene* source(const ShareRef& ref, int slot, const std::string& at) {
    if (ref.slot >= slot) {
      add(at + "/slot", "sharing must refer to an earlier slot than " + str(slot) + ", got " + str(ref.slot));
      return nullptr;
    }
    const auto& src_slot = g.slots[ref.slot];
    if (ref.op < 0 || ref.op >= static_cast<int>(src_slot.ops.size())) {
      add(at + "/op", "slot " + str(ref.slot) + " has " + str(static_cast<int>(src_slot.ops.size())) +
                          " op(s), got op " + str(ref.op));
      return nullptr;
    }
    return &src_slot.ops[ref.op];
  }

  void sharing(const OpGene& op, int slot, const std::string& at, bool knobs_ok) {
    if (op.featurizer.valid()) {
      const std::string p = at + "/share_featurizer";
      if (const OpGene* src = source(op.featurizer, slot, p)) {
        const std::string where = op_pointer(g, op.featurizer.slot, op.featurizer.op);
        if (src->cls != op.cls) {
          add(p, std::string("featurizer sharing needs the same class: source ") + where + " is " +
                     to_string(src->cls) + ", this op is " + to_string(op.cls));
        } else if (knobs_ok && !featurizer_compatible(*src, op, g.d_model)) {
          add(p, "featurizer sharing needs identical weight shapes, but " + where +
                     " differs in knobs that shape its weights");
        }
      }
    }
    if (op.features.valid()) {
      const std::string p = at + "/share_features";
      if (!has_shareable_features(op.cls)) {
        add(p, std::string("only sa and linattn have shareable features, not ") + to_string(op.cls));
        return;
      }
      if (const OpGene* src = source(op.features, slot, p)) {
        const std::string where = op_pointer(g, op.features.slot, op.features.op);
        if (src->cls != op.cls) {
          add(p, std::string("feature sharing needs the same class: source ") + where + " is " +
                     to_string(src->cls) + ", this op is " + to_string(op.cls));
        } else if (!features_compatible(*src, op)) {
          add(p,
              op.cls == LivClass::sa
                  ? "feature sharing needs the same heads, kv_heads, window, qk_norm, rope, short_conv and "
                    "differential as " +
                        where
                  : "feature sharing needs the same heads, feature_map, gated, short_conv and differential "
                    "as " +
                        where);
        }
      }
    }
  }

  void run() {
    const bool d_ok = range("/d_model", g.d_model, 8, 1 << 16);
    range("/vocab", g.vocab, 2, 1 << 24);
    if (g.slots.empty()) add("/slots", "expected at least one slot");
    if (g.slots.size() > 4096) add("/slots", "expected at most 4096 slots");
    for (int s = 0; s < static_cast<int>(g.slots.size()); ++s) {
      const Slot& slot = g.slots[s];
      const bool fusion = slot.fusion != FusionKind::none;
      const std::string sp = "/slots/" + str(s);
      if (!fusion && slot.ops.size() != 1) {
        add(sp, "a striped slot holds exactly one op, got " + str(static_cast<int>(slot.ops.size())));
        continue;
      }
      if (fusion && slot.ops.size() != 2) {
        add(sp + "/ops",
            "a fusion slot holds exactly two ops, got " + str(static_cast<int>(slot.ops.size())));
        continue;
      }
      for (int o = 0; o < static_cast<int>(slot.ops.size()); ++o) {
        const OpGene& op = slot.ops[o];
        const std::string at = op_pointer(s, o, fusion);
        if (fusion && !is_token_mixer(op.cls))
          add(at + "/class", std::string("a fusion slot combines token mixers, got ") + to_string(op.cls));
        const std::size_t before = problems.size();
        if (d_ok) knobs(op, at);
        sharing(op, s, at, d_ok && problems.size() == before);
      }
    }
  }
};

}  // namespace

bool featurizer_compatible(const OpGene& source, const OpGene& op, int d_model) {
  if (source.cls != op.cls) return false;
  auto wa = op_weights(source, d_model), wb = op_weights(op, d_model);
  if (wa.size() != wb.size()) return false;
  for (std::size_t i = 0; i < wa.size(); ++i)
    if (wa[i].name != wb[i].name || wa[i].shape != wb[i].shape) return false;
  return true;
}

bool features_compatible(const OpGene& a, const OpGene& b) {
  if (a.cls != b.cls || !has_shareable_features(a.cls) || a.differential != b.differential) return false;
  if (a.cls == LivClass::sa)
    return a.sa.heads == b.sa.heads && a.sa.kv_heads == b.sa.kv_heads && a.sa.window == b.sa.window &&
           a.sa.qk_norm == b.sa.qk_norm && a.sa.rope == b.sa.rope && a.sa.short_conv == b.sa.short_conv;
  return a.linattn.heads == b.linattn.heads && a.linattn.feature_map == b.linattn.feature_map &&
         a.linattn.gated == b.linattn.gated && a.linattn.short_conv == b.linattn.short_conv;
}

std::vector<InputProblem> check_genome(const Genome& g) {
  Checker c{g, {}};
  c.run();
  return c.problems;
}

}  // namespace livs::genome
