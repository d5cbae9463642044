#include "genome/presets.hpp"

#include <algorithm>

namespace livs::genome {

namespace {

Slot striped(const OpGene& op) { return Slot{FusionKind::none, {op}}; }

// Attention with head_dim 32 (at least one head), as in small Transformer++ models.
OpGene attention(int d_model, int window, int kv_divisor) {
  OpGene op = default_op(LivClass::sa, d_model);
  op.sa.kv_heads = std::max(1, op.sa.heads / kv_divisor);
  op.sa.window = window;
  return op;
}

OpGene mlp(int d_model, double expansion) {
  OpGene op = default_op(LivClass::swiglu, d_model);
  op.swiglu.hidden = scaled_width(expansion, d_model);
  return op;
}

// The token mixer of layer i (of `layers`) for each preset.
OpGene mixer(const std::string& name, int d_model, int i) {
  if (name == "transformer") return attention(d_model, 0, 1);
  if (name == "griffin") {  // two RG-LRU blocks, then one local MQA block
    if (i % 3 == 2) return attention(d_model, 128, 1 << 30);
    return default_op(LivClass::rec, d_model);  // width 4/3 d_model, conv 4
  }
  if (name == "striped-mamba") {  // attention 1 in 4
    if (i % 4 == 3) return attention(d_model, 0, 1);
    return default_op(LivClass::ssm, d_model);  // expand 2, d_state 16, conv 4
  }
  if (name == "mamba2-hybrid") {  // Mamba-2 (SSD) blocks with attention 1 in 4
    if (i % 4 == 3) return attention(d_model, 0, 1);
    OpGene op = default_op(LivClass::ssm, d_model);  // expand 2, conv 4
    op.ssm.form = SsmForm::mamba2;
    op.ssm.d_state = 64;
    // Mamba-2's head_dim 64 where it divides d_inner (a multiple of 16), else 32 or 16.
    const int d_inner = op.ssm.expand * d_model;
    op.ssm.head_dim = d_inner % 64 == 0 ? 64 : d_inner % 32 == 0 ? 32 : 16;
    return op;
  }
  if (name == "lfm2") {  // short gated convolutions with a minority of GQA blocks
    if (i % 3 == 2) return attention(d_model, 0, 2);
    return default_op(LivClass::gconv, d_model);  // kernel 3
  }
  if (name == "linear-transformer") {  // with the short convolution on q, k, v that gives it word order
    OpGene op = default_op(LivClass::linattn, d_model);
    op.linattn.short_conv = 4;
    return op;
  }
  if (name == "gated-deltanet-hybrid") {  // Qwen3-Next: three Gated DeltaNet blocks, then gated attention
    if (i % 4 == 3) {
      OpGene op = attention(d_model, 0, 1);
      op.sa.output_gate = true;
      return op;
    }
    return default_op(LivClass::deltanet, d_model);  // gated, short conv 4, head_dim 32
  }
  // hyena-like: gated convolutions with long explicit filters
  OpGene op = default_op(LivClass::gconv, d_model);
  op.gconv.kernel = 64;
  return op;
}

double mlp_expansion(const std::string& name) { return name == "griffin" ? 3.0 : 8.0 / 3.0; }

}  // namespace

const std::vector<std::string>& preset_names() {
  static const std::vector<std::string> names = {
      "transformer",        "griffin",    "striped-mamba", "lfm2",
      "linear-transformer", "hyena-like", "mamba2-hybrid", "gated-deltanet-hybrid"};
  return names;
}

Genome preset(const std::string& name, int d_model, int layers) {
  const auto& names = preset_names();
  if (std::find(names.begin(), names.end(), name) == names.end()) {
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
    throw InputError("presets", "", "unknown preset \"" + name + "\" (expected one of " + list + ")");
  }
  if (d_model < 8 || d_model > (1 << 16) || d_model % 8 != 0)
    throw InputError("presets", "d_model",
                     "expected a multiple of 8 in [8, 65536], got " + std::to_string(d_model));
  if (layers < 1 || layers > 1024)
    throw InputError("presets", "layers", "expected an integer in [1, 1024], got " + std::to_string(layers));
  Genome g;
  g.d_model = d_model;
  g.vocab = 256;
  for (int i = 0; i < layers; ++i) {
    g.slots.push_back(striped(mixer(name, d_model, i)));
    g.slots.push_back(striped(mlp(d_model, mlp_expansion(name))));
  }
  return canonicalize(g);
}

}  // namespace livs::genome
