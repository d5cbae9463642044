#include "evaluator/trainer.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>
#include <limits>
#include <new>
#include <optional>
#include <stdexcept>
#include <thread>

#include "common/candidate_control.hpp"
#include "common/environment_switch.hpp"
#include "common/rng.hpp"
#include "evaluator/lr_schedule.hpp"
#include "evaluator/model.hpp"

namespace livs::evaluator {

const char* to_string(TrainStatus status) {
  switch (status) {
    case TrainStatus::ok:
      return "ok";
    case TrainStatus::non_finite_loss:
      return "non_finite_loss";
    case TrainStatus::failed:
      return "failed";
  }
  return "?";
}

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Where a training step's host data sits in its HostStaging: the batch
// (inputs then targets, as Model::send_batch sends them), the step's scalar
// inputs and the scalar outputs it reads back, each 16-byte aligned.
struct StepStagingLayout {
  explicit StepStagingLayout(int64_t batch_tokens)
      : tokens(0),
        scalars_in(aligned(std::size_t(2 * batch_tokens) * sizeof(int32_t))),
        scalars_out(aligned(scalars_in + sizeof(StepScalarInputs))),
        bytes(scalars_out + sizeof(StepScalarOutputs)) {}
  static std::size_t aligned(std::size_t offset) { return (offset + 15) / 16 * 16; }
  std::size_t tokens, scalars_in, scalars_out, bytes;
};

// Data problems are the candidate's failure, reported in its status. The
// token ids are checked where windows are read (TokenSequence::copy_checked):
// scanning a memory-mapped data set here would read all of it per candidate.
void check_length(const TokenSequence& tokens, const char* split, int64_t needed) {
  if (tokens.size() < needed)
    throw std::invalid_argument(std::string("the ") + split + " split has " + std::to_string(tokens.size()) +
                                " tokens, fewer than the " + std::to_string(needed) + " one window needs");
}

// Tokens [start, start + T] as T inputs and the T targets that follow each,
// every id checked against the vocabulary.
void read_window(const TokenSequence& tokens, int64_t start, int64_t T, int vocab, int32_t* inputs,
                 int32_t* targets, std::vector<int32_t>& window) {
  tokens.copy_checked(start, T + 1, vocab, window.data());
  std::copy(window.begin(), window.begin() + T, inputs);
  std::copy(window.begin() + 1, window.begin() + T + 1, targets);
}

// Mean cross-entropy over the first eval_tokens of the validation split, cut
// into non-overlapping windows of seq_len predictions (seq_len + 1 tokens).
// `probe`, when given, receives the first batch's windows and their logits.
double evaluate(Model& model, const TrainSettings& s, const TokenSequence& validation, int64_t& predicted,
                ProbeLogits* probe) {
  const int64_t T = s.seq_len, B = s.batch_size;
  const int64_t available = std::min<int64_t>(s.eval_tokens, int64_t(validation.size()));
  const int64_t windows = (available - 1) / T;
  if (windows <= 0)
    throw std::invalid_argument("eval_tokens (" + std::to_string(s.eval_tokens) +
                                ") leaves no window of seq_len + 1 = " + std::to_string(T + 1) +
                                " validation tokens");
  std::vector<int32_t> inputs(B * T), targets(B * T), window(T + 1);
  double sum = 0.0;
  for (int64_t w0 = 0; w0 < windows; w0 += B) {
    throw_if_cancelled();
    const int64_t rows = std::min(B, windows - w0);
    for (int64_t r = 0; r < B; ++r) {
      const int64_t w = w0 + (r < rows ? r : 0);  // unused rows repeat a window; their losses are ignored
      read_window(validation, w * T, T, model.vocab(), &inputs[r * T], &targets[r * T], window);
    }
    model.forward(inputs.data(), targets.data());
    if (probe && w0 == 0) {
      probe->rows = int(std::min<int64_t>(rows, kMaxProbeRows));
      probe->seq = int(T);
      probe->vocab = model.vocab();
      probe->tokens.assign(inputs.begin(), inputs.begin() + probe->rows * T);
      probe->logits = model.logits_of_last_forward(probe->rows);
    }
    const auto& losses = model.token_losses();
    for (int64_t i = 0; i < rows * T; ++i) sum += losses[i];
  }
  predicted = windows * T;
  return sum / double(predicted);
}

// The faults a test injects into the first training step
// (common/fault_injection.hpp): a hang polls the cancellation flag like any
// step does; a stuck step ignores it, as a thread stuck in a kernel would;
// a device fault is the backend's own (CUDA: a sticky error); `die` kills
// the process that trains, wherever that is (an MPI rank, the search).
void inject_step_fault(Backend& backend) {
  switch (injected_fault()) {
    case InjectedFault::hang:
      while (true) {
        throw_if_cancelled();
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    case InjectedFault::stuck:
      while (true) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    case InjectedFault::device:
      backend.inject_device_fault();
      break;
    case InjectedFault::die:
      std::raise(SIGKILL);
      break;
    default:
      break;
  }
}

}  // namespace

TrainReport train_and_evaluate(const genome::ModelSpec& spec, const TrainSettings& s,
                               const TokenSequence& train_tokens, const TokenSequence& validation_tokens,
                               uint64_t seed, Backend& backend, const ProgressFn& progress,
                               TrainedModel* trained) {
  TrainReport report;
  report.params_total = spec.params_total();
  report.params_non_embedding = spec.params_non_embedding();
  report.validation_loss = report.perplexity = std::numeric_limits<double>::infinity();
  auto fail = [&](TrainStatus status, std::string error) {
    report.status = status;
    report.error = std::move(error);
    return report;
  };
  try {
    const int64_t T = s.seq_len, B = s.batch_size;
    check_length(train_tokens, "training", T + 1);
    check_length(validation_tokens, "validation", T + 1);
    PlanShape shape;
    shape.batch = s.batch_size;
    shape.seq = s.seq_len;
    const auto build_start = Clock::now();
    const std::optional<int64_t> in_use_before = backend.device_bytes_in_use();
    Model model(spec, backend, shape, derive_seed(seed, "init"));
    report.plan_bytes = model.arena_bytes();
    const auto& params = model.parameters();

    // The step: a fixed sequence of kernel calls that reads its per-step
    // values (learning rate, bias corrections) from the device and leaves the
    // loss, the gradient norm and the clipping scale there, so it has no host
    // round trip and allocates nothing; on the GPU it is replayed as a CUDA
    // graph from the second step on.
    DeviceStepScalars* scalars = model.step_scalars();
    AdamWStep decayed, not_decayed;
    decayed.beta1 = not_decayed.beta1 = float(s.beta1);
    decayed.beta2 = not_decayed.beta2 = float(s.beta2);
    decayed.weight_decay = float(s.weight_decay);
    not_decayed.weight_decay = 0.0f;
    auto step_body = [&] {
      model.forward_on_device();
      model.zero_grads();
      model.backward();
      backend.grad_clip_scale(&scalars->out.grad_scale, &scalars->out.grad_norm, model.grads(),
                              params.count(), s.grad_clip);
      for (const ParamGroup* group : {&params.decayed(), &params.not_decayed()})
        if (group->count > 0)
          backend.adamw_update_device(model.values() + group->offset, model.grads() + group->offset,
                                      model.adam_m() + group->offset, model.adam_v() + group->offset,
                                      group->count, group == &params.decayed() ? decayed : not_decayed,
                                      scalars);
    };
    const auto runner = backend.make_step_runner(step_body);
    report.build_seconds = seconds_since(build_start);

    const auto train_start = Clock::now();
    Rng data_order(derive_seed(seed, "data"));
    std::vector<int32_t> window(T + 1);
    const int64_t last_start = train_tokens.size() - (T + 1);
    // Two stagings, step k in the one of its parity: the loop queues step k
    // (its batch, its scalars, the step, its scalars back) and only then waits
    // for step k - 1, so the device has step k to run while the host checks
    // step k - 1 and draws the batch of step k + 1. Step k's staging is
    // rewritten at step k + 2, after the wait for step k.
    // LIVSEARCH_STEP_PIPELINE=0 (comparisons, debugging): the backend's
    // synchronous copies, each step checked before the next is queued.
    const bool pipelined = enabled_unless_zero("LIVSEARCH_STEP_PIPELINE");
    const StepStagingLayout layout(B * T);
    auto make_staging = [&] {
      return pipelined ? backend.make_host_staging(layout.bytes)
                       : backend.Backend::make_host_staging(layout.bytes);
    };
    std::array<std::unique_ptr<HostStaging>, 2> stagings = {make_staging(), make_staging()};
    auto queue_step = [&](int step) {
      HostStaging& staging = *stagings[step % 2];
      auto* inputs = reinterpret_cast<int32_t*>(staging.data() + layout.tokens);
      int32_t* targets = inputs + B * T;
      for (int64_t r = 0; r < B; ++r) {
        const int64_t start = data_order.integer(0, last_start);
        read_window(train_tokens, start, T, spec.vocab, &inputs[r * T], &targets[r * T], window);
      }
      model.send_batch(staging, layout.tokens);
      const StepScalarInputs in =
          step_scalar_inputs(float(learning_rate_at(s, step)), float(s.beta1), float(s.beta2), step);
      std::memcpy(staging.data() + layout.scalars_in, &in, sizeof(in));
      staging.to_device(&scalars->in, layout.scalars_in, sizeof(in));
      runner->run();
      staging.from_device(layout.scalars_out, &scalars->out, sizeof(StepScalarOutputs));
      staging.mark();
      if (in_use_before && step <= 2) {  // the first step grows the scratch, the second captures the graph
        const int64_t used = *backend.device_bytes_in_use() - *in_use_before;
        report.peak_memory_device = std::max(report.peak_memory_device.value_or(0), used);
      }
    };
    // Step `step`'s outputs, once they are there; a failure's report, or none.
    auto finish_step = [&](int step) -> std::optional<TrainReport> {
      HostStaging& staging = *stagings[step % 2];
      staging.wait();
      StepScalarOutputs out;  // the one read of the step
      std::memcpy(&out, staging.data() + layout.scalars_out, sizeof(out));
      if (step == 1 && injected_fault() == InjectedFault::nan)
        out.loss = std::numeric_limits<double>::quiet_NaN();
      if (!std::isfinite(out.loss)) {
        report.train_seconds = seconds_since(train_start);
        return fail(TrainStatus::non_finite_loss,
                    "training loss became " + std::to_string(out.loss) + " at step " + std::to_string(step));
      }
      if (!std::isfinite(out.grad_norm)) {
        report.train_seconds = seconds_since(train_start);
        return fail(TrainStatus::non_finite_loss, "gradient norm became " + std::to_string(out.grad_norm) +
                                                      " at step " + std::to_string(step));
      }
      report.train_loss.push_back(out.loss);
      report.steps_done = step;
      report.step_graph = runner->replays_graph();
      if (progress) progress(step, out.loss);
      return std::nullopt;
    };
    for (int step = 1; step <= s.steps; ++step) {
      // Cooperative cancellation (a timeout, a stopped run): between steps,
      // never inside one, so the backend is left in a usable state.
      throw_if_cancelled();
      if (step == 1) inject_step_fault(backend);
      queue_step(step);
      const int ready = pipelined ? step - 1 : step;
      if (ready >= 1)
        if (auto failed = finish_step(ready)) return *failed;
    }
    if (pipelined && s.steps >= 1)
      if (auto failed = finish_step(s.steps)) return *failed;
    report.train_seconds = seconds_since(train_start);

    const auto eval_start = Clock::now();
    ProbeLogits probe;
    const double loss =
        evaluate(model, s, validation_tokens, report.validation_tokens, trained ? &probe : nullptr);
    report.eval_seconds = seconds_since(eval_start);
    if (!std::isfinite(loss))
      return fail(TrainStatus::non_finite_loss, "validation loss is " + std::to_string(loss));
    if (trained) {
      trained->weights = copy_weights(model, spec);
      trained->probe = std::move(probe);
    }
    report.validation_loss = loss;
    report.perplexity = std::exp(loss);
    return report;
  } catch (const std::bad_alloc&) {
    return fail(TrainStatus::failed, "out of memory while building or training the model");
  } catch (const std::exception& e) {
    return fail(TrainStatus::failed, e.what());
  }
}

}  // namespace livs::evaluator
