// Genome -> ModelSpec. Weight names and shapes follow docs/architecture.md
// ("Weights per class"); linear weights are [out, in].
#include "genome/decode.hpp"

#include <algorithm>

namespace livs::genome {

namespace {

using Shape = std::vector<int64_t>;

int64_t safe_div(int64_t a, int64_t b) { return b > 0 ? a / b : a; }
int64_t dt_rank(int64_t d_model) { return (d_model + 15) / 16; }

void sa_weights(const OpGene& op, int64_t d, std::vector<WeightSpec>& w) {
  const int64_t h = op.sa.heads, kv = op.sa.kv_heads, hd = safe_div(d, h), groups = op.differential ? 2 : 1;
  const bool own_kv = !op.features.valid();
  w.push_back({"wq", Shape{groups * h * hd, d}});
  if (own_kv) {
    w.push_back({"wk", Shape{groups * kv * hd, d}});
    w.push_back({"wv", Shape{kv * hd, d}});
  }
  w.push_back({"wo", Shape{d, h * hd}});
  if (op.sa.qk_norm) {
    w.push_back({"q_norm", Shape{hd}});
    if (own_kv) w.push_back({"k_norm", Shape{hd}});
  }
  if (op.differential) w.push_back({"lambda", Shape{h}});
  if (op.sa.short_conv > 0) {  // depthwise taps per channel of q, k, v
    w.push_back({"q_conv", Shape{groups * h * hd, op.sa.short_conv}});
    if (own_kv) {
      w.push_back({"k_conv", Shape{groups * kv * hd, op.sa.short_conv}});
      w.push_back({"v_conv", Shape{kv * hd, op.sa.short_conv}});
    }
  }
  if (op.sa.output_gate) w.push_back({"w_out_gate", Shape{h * hd, d}});
}

void linattn_weights(const OpGene& op, int64_t d, std::vector<WeightSpec>& w) {
  const int64_t h = op.linattn.heads, hd = safe_div(d, h), groups = op.differential ? 2 : 1;
  const bool own_kv = !op.features.valid();
  w.push_back({"wq", Shape{groups * h * hd, d}});
  if (own_kv) {
    w.push_back({"wk", Shape{groups * h * hd, d}});
    w.push_back({"wv", Shape{h * hd, d}});
  }
  w.push_back({"wo", Shape{d, h * hd}});
  if (op.linattn.gated &&
      own_kv) {  // the decay shapes the state, which a feature sharer takes from its source
    w.push_back({"w_gate", Shape{h * hd, d}});
    w.push_back({"gate_bias", Shape{h * hd}});
  }
  if (op.differential) w.push_back({"lambda", Shape{h}});
  if (op.linattn.short_conv > 0) {
    w.push_back({"q_conv", Shape{groups * h * hd, op.linattn.short_conv}});
    if (own_kv) {
      w.push_back({"k_conv", Shape{groups * h * hd, op.linattn.short_conv}});
      w.push_back({"v_conv", Shape{h * hd, op.linattn.short_conv}});
    }
  }
}

// Differential rec/ssm/gconv: the inner (recurrent, scanned or convolved)
// channels are doubled and the two halves are subtracted, y = y1 - diff_lambda * y2,
// before the output gate and projection.
void rec_weights(const OpGene& op, int64_t d, std::vector<WeightSpec>& w) {
  const int64_t width = op.rec.width, inner = (op.differential ? 2 : 1) * width, k = op.rec.conv_kernel;
  w.push_back({"w_x", Shape{inner, d}});
  w.push_back({"w_y", Shape{width, d}});
  w.push_back({"conv", Shape{inner, k}});
  w.push_back({"conv_bias", Shape{inner}});
  w.push_back({"w_a", Shape{inner, inner}});
  w.push_back({"w_i", Shape{inner, inner}});
  w.push_back({"b_a", Shape{inner}});
  w.push_back({"b_i", Shape{inner}});
  w.push_back({"lambda", Shape{inner}});
  if (op.differential) w.push_back({"diff_lambda", Shape{width}});
  w.push_back({"w_out", Shape{d, width}});
}

void ssm_weights(const OpGene& op, int64_t d, std::vector<WeightSpec>& w) {
  const int64_t di = op.ssm.expand * d, inner = (op.differential ? 2 : 1) * di, n = op.ssm.d_state,
                k = op.ssm.conv_kernel, r = dt_rank(d);
  w.push_back({"in_proj", Shape{inner + di, d}});  // x (inner channels) then z (gate, di)
  w.push_back({"conv", Shape{inner, k}});
  w.push_back({"conv_bias", Shape{inner}});
  w.push_back({"x_proj", Shape{r + 2 * n, inner}});
  w.push_back({"dt_proj", Shape{inner, r}});
  w.push_back({"dt_bias", Shape{inner}});
  w.push_back({"a_log", Shape{inner, n}});
  w.push_back({"d", Shape{inner}});
  if (op.differential) w.push_back({"diff_lambda", Shape{di}});
  w.push_back({"out_proj", Shape{d, di}});
}

// Mamba-2 (SSD): in_proj rows in Mamba-2's order z, x, B, C, dt; the short
// convolution runs over x, B and C together. Differential: the scanned heads
// (x, dt, A, D) are doubled, B and C shared, and the halves subtracted before
// the gated norm.
void ssd_weights(const OpGene& op, int64_t d, std::vector<WeightSpec>& w) {
  const int64_t di = op.ssm.expand * d, inner = (op.differential ? 2 : 1) * di, n = op.ssm.d_state,
                k = op.ssm.conv_kernel, heads = safe_div(inner, op.ssm.head_dim);
  w.push_back({"in_proj", Shape{di + inner + 2 * n + heads, d}});
  w.push_back({"conv", Shape{inner + 2 * n, k}});
  w.push_back({"conv_bias", Shape{inner + 2 * n}});
  w.push_back({"dt_bias", Shape{heads}});
  w.push_back({"a_log", Shape{heads}});
  w.push_back({"d", Shape{heads}});
  if (op.differential) w.push_back({"diff_lambda", Shape{di}});
  w.push_back({"norm", Shape{di}});
  w.push_back({"out_proj", Shape{d, di}});
}

void gconv_weights(const OpGene& op, int64_t d, std::vector<WeightSpec>& w) {
  const int64_t inner = (op.differential ? 2 : 1) * d;
  w.push_back({"w_in", Shape{3 * inner, d}});  // B, C, x~ (inner channels each)
  w.push_back({"conv", Shape{inner, op.gconv.kernel}});
  if (op.differential) w.push_back({"diff_lambda", Shape{d}});
  w.push_back({"w_out", Shape{d, d}});
}

// Gated DeltaNet: q, k, v (heads * head_dim each), beta and the decay per
// head, the short convolution's taps, the output gate, the per-head norm.
void deltanet_weights(const OpGene& op, int64_t d, std::vector<WeightSpec>& w) {
  const int64_t h = op.deltanet.heads, hd = safe_div(d, h), width = h * hd, k = op.deltanet.short_conv;
  w.push_back({"wq", Shape{width, d}});
  w.push_back({"wk", Shape{width, d}});
  w.push_back({"wv", Shape{width, d}});
  w.push_back({"w_beta", Shape{h, d}});
  if (op.deltanet.gated) {
    w.push_back({"w_alpha", Shape{h, d}});
    w.push_back({"a_log", Shape{h}});
    w.push_back({"dt_bias", Shape{h}});
  }
  if (k > 0) {
    w.push_back({"q_conv", Shape{width, k}});
    w.push_back({"k_conv", Shape{width, k}});
    w.push_back({"v_conv", Shape{width, k}});
  }
  w.push_back({"w_out_gate", Shape{width, d}});
  w.push_back({"o_norm", Shape{hd}});
  w.push_back({"wo", Shape{d, width}});
}

}  // namespace

std::vector<WeightSpec> op_weights(const OpGene& op, int d_model) {
  std::vector<WeightSpec> w;
  const int64_t d = d_model;
  switch (op.cls) {
    case LivClass::sa:
      sa_weights(op, d, w);
      break;
    case LivClass::linattn:
      linattn_weights(op, d, w);
      break;
    case LivClass::rec:
      rec_weights(op, d, w);
      break;
    case LivClass::ssm:
      if (op.ssm.form == SsmForm::mamba2)
        ssd_weights(op, d, w);
      else
        ssm_weights(op, d, w);
      break;
    case LivClass::gconv:
      gconv_weights(op, d, w);
      break;
    case LivClass::swiglu:
      w.push_back({"w_gate", Shape{op.swiglu.hidden, d}});
      w.push_back({"w_up", Shape{op.swiglu.hidden, d}});
      w.push_back({"w_down", Shape{d, op.swiglu.hidden}});
      break;
    case LivClass::moe: {
      const int64_t e = op.moe.experts, f = op.moe.hidden;
      w.push_back({"router", Shape{e, d}});
      w.push_back({"w_gate", Shape{e, f, d}});
      w.push_back({"w_up", Shape{e, f, d}});
      w.push_back({"w_down", Shape{e, d, f}});
      break;
    }
    case LivClass::deltanet:
      deltanet_weights(op, d, w);
      break;
  }
  return w;
}

DecodeState op_decode_state(const OpGene& op, int d_model) {
  DecodeState s;
  const int64_t d = d_model, groups = op.differential ? 2 : 1;
  switch (op.cls) {
    case LivClass::sa: {
      const int64_t hd = safe_div(d, op.sa.heads);
      if (op.sa.short_conv > 0)  // the last k-1 projected q (and own k, v) of each sequence
        s.fixed_elements = (op.sa.short_conv - 1) * hd *
                           (groups * op.sa.heads + (op.features.valid() ? 0 : (groups + 1) * op.sa.kv_heads));
      if (op.features.valid()) break;                             // reads its source's cache
      s.per_token_elements = (groups + 1) * op.sa.kv_heads * hd;  // K (doubled when differential) and V
      s.token_limit = op.sa.window;
      break;
    }
    case LivClass::linattn: {
      const int64_t hd = safe_div(d, op.linattn.heads);
      if (op.linattn.short_conv > 0)
        s.fixed_elements = (op.linattn.short_conv - 1) * op.linattn.heads * hd *
                           (groups + (op.features.valid() ? 0 : groups + 1));
      if (op.features.valid()) break;
      s.fixed_elements += groups * op.linattn.heads * hd * hd;
      break;
    }
    case LivClass::rec: {
      const int64_t inner = groups * op.rec.width;
      s.fixed_elements = inner + (op.rec.conv_kernel - 1) * inner;
      break;
    }
    case LivClass::ssm: {
      const int64_t inner = groups * op.ssm.expand * d;
      // mamba2: the heads' states (heads * head_dim * d_state = inner * d_state)
      // and the conv history of x, B and C.
      const int64_t conv_channels = inner + (op.ssm.form == SsmForm::mamba2 ? 2 * op.ssm.d_state : 0);
      s.fixed_elements = inner * op.ssm.d_state + (op.ssm.conv_kernel - 1) * conv_channels;
      break;
    }
    case LivClass::gconv:
      s.fixed_elements = (op.gconv.kernel - 1) * groups * d;
      break;
    case LivClass::deltanet: {  // the d_k x d_v state per head and the conv history of q, k, v
      const int64_t width = op.deltanet.heads * safe_div(d, op.deltanet.heads);
      s.fixed_elements = width * safe_div(d, op.deltanet.heads) +
                         (op.deltanet.short_conv > 0 ? (op.deltanet.short_conv - 1) * 3 * width : 0);
      break;
    }
    case LivClass::swiglu:
    case LivClass::moe:
      break;
  }
  return s;
}

namespace {

OpSpec decode_op(const Genome& g, const OpGene& op) {
  const int d = g.d_model;
  OpSpec spec;
  spec.cls = op.cls;
  spec.sa = {op.sa.heads, op.sa.kv_heads, d / op.sa.heads,  op.sa.window,     op.sa.qk_norm,
             op.sa.rope,  10000.0,        op.sa.short_conv, op.sa.output_gate};
  spec.linattn = {op.linattn.heads, d / op.linattn.heads, op.linattn.feature_map, op.linattn.gated,
                  op.linattn.short_conv};
  spec.rec = {op.rec.width, op.rec.conv_kernel};
  spec.ssm = {op.ssm.expand,
              op.ssm.expand * d,
              op.ssm.d_state,
              op.ssm.conv_kernel,
              static_cast<int>(dt_rank(d)),
              op.ssm.form,
              op.ssm.head_dim,
              static_cast<int>(safe_div(op.ssm.expand * d, op.ssm.head_dim))};
  spec.gconv = {op.gconv.kernel};
  spec.swiglu = {op.swiglu.hidden};
  spec.moe = {op.moe.experts, op.moe.top_k, op.moe.hidden};
  spec.deltanet = {op.deltanet.heads, d / op.deltanet.heads, op.deltanet.gated, op.deltanet.short_conv};
  spec.differential = op.differential;
  if (op.featurizer.valid()) spec.featurizer_source = {op.featurizer.slot, op.featurizer.op};
  if (op.features.valid()) spec.feature_source = {op.features.slot, op.features.op};
  auto weights = op_weights(op, d);
  if (op.featurizer.valid()) {
    for (const auto& w : weights) spec.shared_weight_names.push_back(w.name);
  } else {
    spec.weights = std::move(weights);
  }
  spec.state = op_decode_state(op, d);
  return spec;
}

}  // namespace

ModelSpec decode(const Genome& genome) {
  if (auto problems = check_genome(genome); !problems.empty())
    throw InputError("<genome>", std::move(problems));
  const Genome g = canonicalize(genome);  // sharing chains resolved to the owner
  const int64_t d = g.d_model;
  ModelSpec spec;
  spec.vocab = g.vocab;
  spec.d_model = g.d_model;
  spec.weights = {{"embedding", Shape{g.vocab, d}}, {"final_norm", Shape{d}}};
  for (const auto& slot : g.slots) {
    SlotSpec s;
    s.fusion = slot.fusion;
    s.weights.push_back({"norm", Shape{d}});
    if (slot.fusion == FusionKind::gate) s.weights.push_back({"gate", Shape{d}});
    for (const auto& op : slot.ops) s.ops.push_back(decode_op(g, op));
    spec.slots.push_back(std::move(s));
  }
  return spec;
}

}  // namespace livs::genome
