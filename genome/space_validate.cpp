// Whether a genome lies inside a search space.
#include <algorithm>
#include <string>

#include "genome/decode.hpp"
#include "genome/search_space.hpp"

namespace livs::genome {

namespace {

std::string list(const std::vector<int>& v) {
  std::string s;
  for (int x : v) s += (s.empty() ? "" : ", ") + std::to_string(x);
  return "{" + s + "}";
}

template <class T>
bool contains(const std::vector<T>& v, const T& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

struct SpaceChecker {
  const Genome& g;
  const SearchSpace& s;
  std::vector<InputProblem> problems;

  void add(std::string pointer, std::string message) {
    problems.push_back({std::move(pointer), std::move(message)});
  }

  void in_set(const std::string& pointer, int value, const std::vector<int>& allowed) {
    if (!contains(allowed, value))
      add(pointer, std::to_string(value) + " is not in the search space's " + list(allowed));
  }
  void in_set(const std::string& pointer, bool value, const std::vector<bool>& allowed) {
    if (!contains(allowed, value))
      add(pointer, std::string(value ? "true" : "false") + " is not allowed by the search space");
  }

  void knobs(const OpGene& op, const std::string& at) {
    const int d = g.d_model;
    switch (op.cls) {
      case LivClass::sa:
        in_set(at + "/heads", op.sa.heads, s.sa.heads);
        in_set(at + "/kv_heads", op.sa.kv_heads, s.sa.kv_heads);
        in_set(at + "/window", op.sa.window, s.windows());
        in_set(at + "/qk_norm", op.sa.qk_norm, s.sa.qk_norm);
        in_set(at + "/rope", op.sa.rope, s.sa.rope);
        in_set(at + "/short_conv", op.sa.short_conv, s.sa.short_conv);
        in_set(at + "/output_gate", op.sa.output_gate, s.sa.output_gate);
        break;
      case LivClass::linattn:
        in_set(at + "/heads", op.linattn.heads, s.linattn.heads);
        if (!contains(s.linattn.feature_map, op.linattn.feature_map))
          add(at + "/feature_map",
              std::string(to_string(op.linattn.feature_map)) + " is not allowed by the search space");
        in_set(at + "/gated", op.linattn.gated, s.linattn.gated);
        in_set(at + "/short_conv", op.linattn.short_conv, s.linattn.short_conv);
        break;
      case LivClass::rec:
        in_set(at + "/width", op.rec.width, s.rec_widths(d));
        in_set(at + "/conv_kernel", op.rec.conv_kernel, s.rec.conv_kernel);
        break;
      case LivClass::ssm:
        in_set(at + "/expand", op.ssm.expand, s.ssm.expand);
        in_set(at + "/d_state", op.ssm.d_state, s.ssm.d_state);
        in_set(at + "/conv_kernel", op.ssm.conv_kernel, s.ssm.conv_kernel);
        if (!contains(s.ssm.form, op.ssm.form))
          add(at + "/form", std::string(to_string(op.ssm.form)) + " is not allowed by the search space");
        if (op.ssm.form == SsmForm::mamba2) in_set(at + "/head_dim", op.ssm.head_dim, s.ssm.head_dim);
        break;
      case LivClass::gconv:
        in_set(at + "/kernel", op.gconv.kernel, s.gconv.kernel);
        break;
      case LivClass::swiglu:
        in_set(at + "/hidden", op.swiglu.hidden, s.swiglu_hiddens(d));
        break;
      case LivClass::moe:
        in_set(at + "/experts", op.moe.experts, s.moe.experts);
        in_set(at + "/top_k", op.moe.top_k, s.moe.top_k);
        in_set(at + "/hidden", op.moe.hidden, s.moe_hiddens(d));
        break;
      case LivClass::deltanet:
        in_set(at + "/heads", op.deltanet.heads, s.deltanet.heads);
        in_set(at + "/gated", op.deltanet.gated, s.deltanet.gated);
        in_set(at + "/short_conv", op.deltanet.short_conv, s.deltanet.short_conv);
        break;
    }
    if (op.differential && !s.allows_differential(op.cls))
      add(at + "/differential",
          std::string("the search space does not allow differential ") + to_string(op.cls));
    if (op.featurizer.valid() && !s.featurizer_sharing)
      add(at + "/share_featurizer", "the search space does not allow featurizer sharing");
    if (op.features.valid() && !s.feature_sharing)
      add(at + "/share_features", "the search space does not allow feature sharing");
  }

  void run() {
    problems = check_genome(g);
    if (!problems.empty()) return;  // the rest assumes a structurally valid genome
    in_set("/d_model", g.d_model, s.d_model);
    if (g.vocab != s.vocab) add("/vocab", "expected the search space's vocab " + std::to_string(s.vocab));
    in_set("/slots", static_cast<int>(g.slots.size()), s.depth);
    for (int i = 0; i < static_cast<int>(g.slots.size()); ++i) {
      const Slot& slot = g.slots[i];
      const bool fusion = slot.fusion != FusionKind::none;
      if (fusion && !contains(s.fusion_kinds, slot.fusion))
        add("/slots/" + std::to_string(i) + "/fusion",
            std::string("the search space does not allow fusion ") + to_string(slot.fusion));
      for (int o = 0; o < static_cast<int>(slot.ops.size()); ++o) {
        const OpGene& op = slot.ops[o];
        const std::string at = op_pointer(i, o, fusion);
        if (!s.allows(op.cls))
          add(at + "/class", std::string("the search space does not allow ") + to_string(op.cls));
        if (s.layout == Layout::alternating && is_token_mixer(op.cls) != (i % 2 == 0))
          add(at + "/class", std::string("the alternating layout needs ") +
                                 (i % 2 == 0 ? "a token mixer" : "swiglu or moe") + " in slot " +
                                 std::to_string(i));
        knobs(op, at);
      }
    }
    if (s.max_params > 0) {
      const int64_t params = decode(g).params_total();
      if (params > s.max_params)
        add("", std::to_string(params) + " parameters exceed the search space's max_params " +
                    std::to_string(s.max_params));
    }
  }
};

}  // namespace

std::vector<InputProblem> validate(const Genome& g, const SearchSpace& space) {
  SpaceChecker c{g, space, {}};
  c.run();
  return c.problems;
}

}  // namespace livs::genome
