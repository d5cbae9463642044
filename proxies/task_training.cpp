#include "proxies/task_training.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "common/candidate_control.hpp"
#include "common/rng.hpp"
#include "evaluator/lr_schedule.hpp"
#include "evaluator/model.hpp"

namespace livs::proxies {

namespace {

void optimiser_step(evaluator::Model& model, evaluator::Backend& backend, const evaluator::TrainSettings& s,
                    int step, double norm) {
  const auto& params = model.parameters();
  evaluator::AdamWStep update;
  update.learning_rate = float(evaluator::learning_rate_at(s, step));
  update.beta1 = float(s.beta1);
  update.beta2 = float(s.beta2);
  update.grad_scale = (s.grad_clip > 0.0 && norm > s.grad_clip) ? float(s.grad_clip / norm) : 1.0f;
  update.step = step;
  for (const evaluator::ParamGroup* group : {&params.decayed(), &params.not_decayed()}) {
    update.weight_decay = group == &params.decayed() ? float(s.weight_decay) : 0.0f;
    if (group->count > 0)
      backend.adamw_update(model.values() + group->offset, model.grads() + group->offset,
                           model.adam_m() + group->offset, model.adam_v() + group->offset, group->count,
                           update);
  }
}

// Held-out accuracy: decode every example token by token, B at a time.
double score(evaluator::Model& model, const std::vector<Example>& test, int B, int L, int vocab) {
  int64_t correct = 0, scored = 0;
  std::vector<int32_t> step_tokens(B);
  std::vector<float> logits(int64_t(B) * vocab);
  for (std::size_t first = 0; first < test.size(); first += B) {
    const int rows = int(std::min<std::size_t>(B, test.size() - first));
    model.reset_decode();
    for (int t = 0; t < L; ++t) {
      for (int r = 0; r < B; ++r) step_tokens[r] = test[first + std::min(r, rows - 1)].inputs[t];
      model.decode_step(step_tokens.data(), t, logits.data());
      for (int r = 0; r < rows; ++r) {
        const Example& e = test[first + r];
        if (!e.scored[t]) continue;
        const float* row = logits.data() + int64_t(r) * vocab;
        const int best = int(std::max_element(row, row + vocab) - row);  // ties: the lower id
        correct += best == e.targets[t];
        ++scored;
      }
    }
  }
  if (scored == 0) throw std::invalid_argument("the held-out examples have no scored position");
  return double(correct) / double(scored);
}

}  // namespace

TaskReport train_on_task(const genome::ModelSpec& spec, const evaluator::TrainSettings& s,
                         const TaskData& data, uint64_t seed, evaluator::Backend& backend) {
  TaskReport report;
  if (data.train.empty() || data.test.empty())
    throw std::invalid_argument("a task needs training and held-out examples");
  const int L = int(data.train.front().inputs.size()), B = s.batch_size;
  evaluator::PlanShape shape;
  shape.batch = B;
  shape.seq = L;
  shape.decode_batch = B;
  shape.decode_context = L;
  evaluator::Model model(spec, backend, shape, derive_seed(seed, "init"));
  Rng order(derive_seed(seed, "task data"));
  std::vector<int32_t> inputs(int64_t(B) * L), targets(inputs.size());
  for (int step = 1; step <= s.steps; ++step) {
    throw_if_cancelled();  // a timeout or a stopped run (common/candidate_control.hpp)
    for (int r = 0; r < B; ++r) {
      const Example& e = data.train[order.integer(0, int64_t(data.train.size()) - 1)];
      std::copy(e.inputs.begin(), e.inputs.end(), inputs.begin() + int64_t(r) * L);
      // Unscored positions: see UnscoredTargets. Plain next-token targets
      // there are mostly unpredictable (random keys, first values) and their
      // noise kept attention from forming the induction circuit (2-layer
      // attention sat at 0.33 in-context recall), so they either copy their
      // input (the default) or are ignored (-1, MAD's ignore_index).
      const bool copy = data.unscored_targets == UnscoredTargets::copy;
      for (int t = 0; t < L; ++t)
        targets[int64_t(r) * L + t] = e.scored[t] ? e.targets[t] : (copy ? e.inputs[t] : -1);
    }
    const double loss = model.forward(inputs.data(), targets.data());
    if (!std::isfinite(loss)) {
      report.ok = false;
      report.error = "task training loss became " + std::to_string(loss) + " at step " + std::to_string(step);
      return report;
    }
    model.zero_grads();
    model.backward();
    const double norm = std::sqrt(backend.sum_of_squares(model.grads(), model.parameters().count()));
    if (!std::isfinite(norm)) {
      report.ok = false;
      report.error = "task gradient norm became " + std::to_string(norm) + " at step " + std::to_string(step);
      return report;
    }
    optimiser_step(model, backend, s, step, norm);
    report.final_loss = loss;
    report.steps_done = step;
  }
  report.accuracy = score(model, data.test, B, L, spec.vocab);
  return report;
}

}  // namespace livs::proxies
