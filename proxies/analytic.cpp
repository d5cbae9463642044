#include "proxies/analytic.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace livs::proxies {

namespace {

using genome::LivClass;
using genome::OpSpec;
using genome::WeightSpec;

bool is_projection(const std::string& name) {
  static const char* const names[] = {"wq",         "wk",     "wv",      "wo",       "w_gate", "w_up",
                                      "w_down",     "w_x",    "w_y",     "w_a",      "w_i",    "w_out",
                                      "in_proj",    "x_proj", "dt_proj", "out_proj", "w_in",   "router",
                                      "w_out_gate", "w_beta", "w_alpha"};
  return std::find(std::begin(names), std::end(names), name) != std::end(names);
}

// The short-convolution featurizers of sa and linattn (q_conv, k_conv, v_conv).
bool is_short_conv(const std::string& name) {
  return name == "q_conv" || name == "k_conv" || name == "v_conv";
}

const WeightSpec* find_weight(const OpSpec& op, const std::string& name) {
  for (const auto& w : op.weights)
    if (w.name == name) return &w;
  return nullptr;
}

// The weights an operator applies: its own plus those it reads from its featurizer source.
std::vector<const WeightSpec*> applied_weights(const genome::ModelSpec& spec, const OpSpec& op) {
  std::vector<const WeightSpec*> out;
  for (const auto& w : op.weights) out.push_back(&w);
  if (op.featurizer_source.valid()) {
    const auto& source = spec.slots.at(op.featurizer_source.slot).ops.at(op.featurizer_source.op);
    for (const auto& name : op.shared_weight_names) {
      const auto* w = find_weight(source, name);
      if (!w) throw std::invalid_argument("shared weight \"" + name + "\" is missing from its source");
      out.push_back(w);
    }
  }
  return out;
}

double projection_flops(const genome::ModelSpec& spec, const OpSpec& op) {
  double flops = 0.0;
  for (const auto* w : applied_weights(spec, op)) {
    if (is_short_conv(w->name)) {  // depthwise taps [channels, kernel]: a multiply-add per tap
      flops += 2.0 * double(w->shape[0]) * double(w->shape[1]);
      continue;
    }
    if (!is_projection(w->name)) continue;
    if (w->shape.size() == 2) {
      flops += 2.0 * double(w->shape[0]) * double(w->shape[1]);
    } else if (w->shape.size() == 3 && op.cls == LivClass::moe) {  // [E, out, in]: top_k experts per token
      flops += 2.0 * double(op.moe.top_k) * double(w->shape[1]) * double(w->shape[2]);
    } else {
      throw std::invalid_argument("projection \"" + w->name + "\" has an unexpected shape");
    }
  }
  return flops;
}

double mixing_flops(const OpSpec& op, int64_t keys) {
  const double groups = op.differential ? 2.0 : 1.0;
  switch (op.cls) {
    case LivClass::sa: {
      const int64_t attended = op.sa.window > 0 ? std::min<int64_t>(keys, op.sa.window) : keys;
      return groups * 4.0 * op.sa.heads * op.sa.head_dim * double(attended);
    }
    case LivClass::linattn:
      return groups * 4.0 * op.linattn.heads * double(op.linattn.head_dim) * op.linattn.head_dim;
    case LivClass::ssm:  // Mamba-2: H += dt x B^T and y = H C, 2 flops each per state element per token
      return op.ssm.form == genome::SsmForm::mamba2 ? groups * 4.0 * double(op.ssm.d_inner) * op.ssm.d_state
                                                    : 0.0;
    case LivClass::deltanet:  // per head: decay, u = S'^T k, the rank-1 update, o = S^T q (d_k x d_v each)
      return 7.0 * op.deltanet.heads * double(op.deltanet.head_dim) * op.deltanet.head_dim;
    default:
      return 0.0;
  }
}

}  // namespace

double forward_flops_at(const genome::ModelSpec& spec, int64_t keys) {
  double flops = 2.0 * double(spec.vocab) * spec.d_model;  // tied LM head
  for (const auto& slot : spec.slots)
    for (const auto& op : slot.ops) flops += projection_flops(spec, op) + mixing_flops(op, keys);
  return flops;
}

double flops_per_token_train(const genome::ModelSpec& spec, int64_t seq_len) {
  // Only attention depends on the position, linearly in the keys it attends
  // (capped by a window), so the mean over positions is summed exactly.
  double sum = 0.0;
  for (int64_t t = 1; t <= seq_len; ++t) sum += forward_flops_at(spec, t);
  return 3.0 * sum / double(seq_len);
}

double flops_per_token_infer(const genome::ModelSpec& spec, int64_t context) {
  return forward_flops_at(spec, context);
}

std::map<std::string, double> analytic_metrics(const genome::ModelSpec& spec, int64_t train_seq_len,
                                               int64_t context_length, int dtype_bytes) {
  return {{"params", static_cast<double>(spec.params_total())},
          {"params_non_embedding", static_cast<double>(spec.params_non_embedding())},
          {"flops_per_token_train", flops_per_token_train(spec, train_seq_len)},
          {"flops_per_token_infer", flops_per_token_infer(spec, context_length)},
          {"cache_bytes", static_cast<double>(spec.decode_state_elements(context_length) * dtype_bytes)}};
}

}  // namespace livs::proxies
