#include "export/weights_check.hpp"

#include <set>

#include "common/input_error.hpp"
#include "genome/checkpoint.hpp"

namespace livs::exports {

namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

void check_weights_match(const Safetensors& weights, const genome::ModelSpec& spec, const std::string& file,
                         const std::string& genome_name) {
  std::vector<InputProblem> problems;
  std::set<std::string> expected;
  for (const auto& w : genome::checkpoint_weights(spec)) {
    expected.insert(w.name);
    const Tensor* t = weights.find(w.name);
    if (!t) {
      problems.push_back(
          {w.name, "missing: " + genome_name + " needs this F32 weight of shape " + shape_text(w.shape)});
    } else if (t->dtype != Dtype::f32 || t->shape != w.shape) {
      problems.push_back({w.name, std::string("is ") + to_string(t->dtype) + " " + shape_text(t->shape) +
                                      ", " + genome_name + " needs F32 " + shape_text(w.shape)});
    }
  }
  for (const auto& t : weights.tensors)
    if (!expected.count(t.name))
      problems.push_back(
          {t.name, "not a weight of " + genome_name + " (is this the checkpoint of another genome?)"});
  constexpr std::size_t kShown = 12;  // a checkpoint of another genome would list every weight
  if (problems.size() > kShown) {
    const std::size_t more = problems.size() - kShown;
    problems.resize(kShown);
    problems.push_back({"", "... and " + std::to_string(more) + " more problems"});
  }
  if (!problems.empty()) throw InputError(file, std::move(problems));
}

}  // namespace livs::exports
