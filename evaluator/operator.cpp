#include "evaluator/operator.hpp"

#include <algorithm>
#include <stdexcept>

namespace livs::evaluator {

OpContext::OpContext(const genome::OpSpec& spec_, int slot_, int op_index_, int d_model_, int slots_,
                     double norm_eps_, ParameterStore& params)
    : spec(spec_),
      slot(slot_),
      op_index(op_index_),
      d_model(d_model_),
      slots(slots_),
      norm_eps(norm_eps_),
      params_(params) {}

std::string OpContext::describe() const {
  return "slot " + std::to_string(slot) + " op " + std::to_string(op_index) + " (" +
         genome::to_string(spec.cls) + ")";
}

void OpContext::bind_weight(const std::string& name, std::vector<int64_t> shape, Init init, bool decay,
                            Param* param) {
  for (const auto& w : spec.weights) {
    if (w.name != name) continue;
    if (w.shape != shape)
      throw std::invalid_argument(describe() + ": weight \"" + name + "\" has shape " +
                                  shape_to_string(w.shape) + " in the ModelSpec, the operator needs " +
                                  shape_to_string(shape));
    params_.declare(parameter_name(slot, op_index, name), std::move(shape), init, decay, param);
    bound_.push_back(name);
    return;
  }
  if (std::find(spec.shared_weight_names.begin(), spec.shared_weight_names.end(), name) !=
      spec.shared_weight_names.end()) {
    const auto& src = spec.featurizer_source;
    if (!src.valid() || src.slot >= slot)
      throw std::invalid_argument(describe() + ": shares weight \"" + name +
                                  "\" without an earlier source slot");
    params_.share(parameter_name(src.slot, src.op, name), shape, param);
    bound_.push_back(name);
    return;
  }
  throw std::invalid_argument(describe() + ": the ModelSpec lists no weight \"" + name + "\"");
}

void OpContext::check_all_bound() const {
  for (const auto& w : spec.weights)
    if (std::find(bound_.begin(), bound_.end(), w.name) == bound_.end())
      throw std::invalid_argument(describe() + ": the ModelSpec lists weight \"" + w.name +
                                  "\", which this operator does not use");
}

void Operator::share_features_from(Operator&) {
  throw std::invalid_argument("this operator has no shareable features");
}

std::unique_ptr<Operator> make_operator(OpContext& context) {
  std::unique_ptr<Operator> op;
  switch (context.spec.cls) {
    case genome::LivClass::sa:
      op = make_attention(context);
      break;
    case genome::LivClass::swiglu:
      op = make_swiglu(context);
      break;
    case genome::LivClass::linattn:
      op = make_linear_attention(context);
      break;
    case genome::LivClass::moe:
      op = make_moe(context);
      break;
    case genome::LivClass::rec:
      op = make_rec(context);
      break;
    case genome::LivClass::ssm:
      op = context.spec.ssm.form == genome::SsmForm::mamba2 ? make_ssd(context) : make_ssm(context);
      break;
    case genome::LivClass::gconv:
      op = make_gconv(context);
      break;
    case genome::LivClass::deltanet:
      op = make_deltanet(context);
      break;
    default:
      throw std::invalid_argument(context.describe() + ": operator class \"" +
                                  genome::to_string(context.spec.cls) +
                                  "\" is not implemented by the evaluator yet");
  }
  context.check_all_bound();
  return op;
}

}  // namespace livs::evaluator
