#include "genome/model_spec.hpp"

#include <algorithm>

namespace livs::genome {

const char* to_string(LivClass c) {
  switch (c) {
    case LivClass::sa: return "sa";
    case LivClass::linattn: return "linattn";
    case LivClass::rec: return "rec";
    case LivClass::ssm: return "ssm";
    case LivClass::gconv: return "gconv";
    case LivClass::swiglu: return "swiglu";
    case LivClass::moe: return "moe";
    case LivClass::deltanet: return "deltanet";
  }
  return "?";
}

const char* to_string(FusionKind f) {
  switch (f) {
    case FusionKind::none: return "none";
    case FusionKind::sum: return "sum";
    case FusionKind::mean: return "mean";
    case FusionKind::gate: return "gate";
  }
  return "?";
}

const char* to_string(FeatureMap f) {
  switch (f) {
    case FeatureMap::elu_plus_one: return "elu_plus_one";
    case FeatureMap::relu: return "relu";
    case FeatureMap::identity: return "identity";
  }
  return "?";
}

const char* to_string(SsmForm f) {
  switch (f) {
    case SsmForm::mamba1: return "mamba1";
    case SsmForm::mamba2: return "mamba2";
  }
  return "?";
}

std::optional<LivClass> liv_class_from_string(const std::string& s) {
  for (auto c : {LivClass::sa, LivClass::linattn, LivClass::rec, LivClass::ssm, LivClass::gconv, LivClass::swiglu,
                 LivClass::moe, LivClass::deltanet})
    if (s == to_string(c)) return c;
  return std::nullopt;
}

bool is_token_mixer(LivClass c) { return c != LivClass::swiglu && c != LivClass::moe; }

int64_t WeightSpec::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

int64_t DecodeState::elements(int64_t context) const {
  int64_t tokens = token_limit > 0 ? std::min(context, token_limit) : context;
  return fixed_elements + per_token_elements * tokens;
}

namespace {
int64_t sum_weights(const std::vector<WeightSpec>& ws, const char* skip = nullptr) {
  int64_t n = 0;
  for (const auto& w : ws)
    if (!skip || w.name != skip) n += w.numel();
  return n;
}
}  // namespace

int64_t ModelSpec::params_total() const {
  int64_t n = sum_weights(weights);
  for (const auto& slot : slots) {
    n += sum_weights(slot.weights);
    for (const auto& op : slot.ops) n += sum_weights(op.weights);
  }
  return n;
}

int64_t ModelSpec::params_non_embedding() const {
  int64_t embedding = 0;
  for (const auto& w : weights)
    if (w.name == "embedding") embedding += w.numel();
  return params_total() - embedding;
}

int64_t ModelSpec::decode_state_elements(int64_t context) const {
  int64_t n = 0;
  for (const auto& slot : slots)
    for (const auto& op : slot.ops) n += op.state.elements(context);
  return n;
}

}  // namespace livs::genome
