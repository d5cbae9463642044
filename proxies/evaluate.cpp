#include "proxies/evaluate.hpp"

#include <chrono>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <new>

#include "common/input_error.hpp"
#include "common/objective_catalogue.hpp"
#include "common/rng.hpp"
#include "evaluator/backend_factory.hpp"
#include "evaluator/backend_pool.hpp"
#include "evaluator/data/dataset.hpp"
#include "evaluator/trainer.hpp"
#include "genome/decode.hpp"
#include "genome/genome_json.hpp"
#include "proxies/analytic.hpp"
#include "proxies/task_training.hpp"

namespace livs::proxies {

Json to_json(const EvalSettings& s) {
  Json json{{"data", evaluator::to_json(s.data)},
            {"training", s.training},
            {"context_length", s.context_length},
            {"inference_dtype_bytes", s.inference_dtype_bytes}};
  if (s.latency) json["latency"] = to_json(*s.latency);
  if (!s.tasks.empty()) json["tasks"] = s.tasks;
  return json;
}

EvalSettings eval_settings_from_json(const Json& json) {
  JsonReader root(json, "<evaluation settings>");
  EvalSettings s;
  s.data = evaluator::parse_data_settings(root.at("data"));
  s.training = root.at("training").value();
  s.context_length = root.at("context_length").integer(1);
  s.inference_dtype_bytes = static_cast<int>(root.at("inference_dtype_bytes").integer(1, 8));
  if (const auto latency = root.find("latency"))
    s.latency = parse_latency_settings(*latency, s.context_length);
  if (const auto tasks = root.find("tasks")) {
    tasks->expect_object();
    s.tasks = tasks->value();
  }
  return s;
}

TaskSection parse_task_section(const JsonReader& section) {
  section.expect_object();
  TaskSection out;
  out.seed = static_cast<uint64_t>(section.integer_or("seed", 0, 0));
  if (const auto t = section.find("training")) out.training = evaluator::parse_train_settings(*t);
  for (const auto& name : section.keys()) {
    if (name == "training" || name == "seed") continue;
    TaskKind kind;
    if (!task_from_string(name, kind)) {
      std::string known;
      for (const auto k : all_tasks()) known += (known.empty() ? "" : ", ") + std::string(to_string(k));
      section.at(name).fail_message("unknown task \"" + name + "\" (expected seed, training or one of " +
                                    known + ")");
    }
    out.tasks.push_back(parse_task_settings(kind, section.at(name)));
  }
  return out;
}

const std::vector<MetricInfo>& reported_metrics() {
  static const std::vector<MetricInfo> metrics = [] {
    std::vector<MetricInfo> m;
    for (const char* name :
         {"perplexity", "validation_loss", "params", "params_non_embedding", "flops_per_token_train",
          "flops_per_token_infer", "cache_bytes", "prefill_ms", "prefill_ms_spread", "prefill_tok_s",
          "decode_ms", "decode_ms_spread", "decode_tok_s", "peak_memory_train", "peak_memory_infer",
          "train_seconds", "steps"}) {
      const auto* info = find_objective(name);
      m.push_back({name, info->unit.data(), !info->maximise});
    }
    return m;
  }();
  return metrics;
}

namespace {

// Data sets are read once per process and shared: loading is deterministic
// and the data is never written, so caching keeps evaluate() pure.
std::shared_ptr<const evaluator::Dataset> cached_dataset(const evaluator::DataSettings& settings) {
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<const evaluator::Dataset>> cache;
  const std::string key = evaluator::to_json(settings).dump();
  std::lock_guard lock(mutex);
  auto& slot = cache[key];
  if (!slot) slot = std::make_shared<const evaluator::Dataset>(evaluator::load_dataset(settings));
  return slot;
}

// Task examples are generated once per process for each settings and seed.
std::shared_ptr<const TaskData> cached_task(const TaskSettings& settings, uint64_t seed) {
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<const TaskData>> cache;
  const std::string key = to_json(settings).dump() + "#" + std::to_string(seed);
  std::lock_guard lock(mutex);
  auto& slot = cache[key];
  if (!slot) slot = std::make_shared<const TaskData>(generate_task(settings, seed));
  return slot;
}

// The share of the budget a fidelity buys: steps and warm-up scale together.
evaluator::TrainSettings at_fidelity(evaluator::TrainSettings t, double fidelity) {
  if (fidelity >= 1.0) return t;
  t.steps = std::max(1, static_cast<int>(std::lround(t.steps * fidelity)));
  t.warmup_steps = std::min(t.steps, std::max(1, static_cast<int>(std::lround(t.warmup_steps * fidelity))));
  return t;
}

}  // namespace

std::string check_data(const EvalSettings& settings) {
  const auto data = cached_dataset(settings.data);
  const auto train =
      evaluator::parse_train_settings(JsonReader(settings.training, "<evaluation settings>", "/training"));
  const std::size_t window = std::size_t(train.seq_len) + 1;
  std::string files;
  for (const auto& p : settings.data.paths) files += (files.empty() ? "" : ", ") + p;
  const auto check = [&](std::size_t tokens, const char* split, const std::string& source) {
    if (tokens < window)
      throw InputError(
          source, "",
          std::string("the ") + split + " split has " + std::to_string(tokens) +
              " tokens, fewer than one window of training.seq_len + 1 = " + std::to_string(window) +
              " (more data, a smaller seq_len, or another validation_fraction)");
  };
  check(data->train.size(), "training", files);
  std::string validation_files;
  for (const auto& p : settings.data.validation_paths)
    validation_files += (validation_files.empty() ? "" : ", ") + p;
  check(data->validation.size(), "validation", validation_files.empty() ? files : validation_files);
  return data->description;
}

EvalResult evaluate(const EvalRequest& request, const StepProgress& progress,
                    evaluator::TrainedModel* trained) {
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  try {
    const EvalSettings settings = eval_settings_from_json(request.settings);
    const auto genome = genome::genome_from_json(request.genome, "genome " + request.genome_hash);
    const auto spec = genome::decode(genome);
    auto train =
        evaluator::parse_train_settings(JsonReader(settings.training, "<evaluation settings>", "/training"));
    train = at_fidelity(train, request.fidelity);
    const auto data = cached_dataset(settings.data);
    auto backend =
        evaluator::lease_backend(request.device);  // kept for the next evaluation if this one ends well
    const double setup_seconds = elapsed();

    evaluator::ProgressFn on_step;
    if (progress) on_step = [&](int step, double loss) { progress(step, train.steps, loss); };
    const auto report = evaluator::train_and_evaluate(spec, train, data->train, data->validation,
                                                      request.seed, *backend, on_step, trained);
    if (report.status != evaluator::TrainStatus::ok) {
      // A failed training's error says what failed; the status name would only
      // repeat "failed" (the log line prints "failed: " before the error).
      std::string why = evaluator::to_string(report.status);
      if (report.status == evaluator::TrainStatus::failed && !report.error.empty())
        why = report.error;
      else if (!report.error.empty())
        why += ": " + report.error;
      return failed_evaluation(why, backend->name(), elapsed());
    }
    // The search screened its constraints on these numbers before training:
    // the model that was built must have exactly the parameters they count.
    if (report.params_total != spec.params_total())
      return failed_evaluation("parameter count mismatch: the built model has " +
                                   std::to_string(report.params_total) + ", the analytic count is " +
                                   std::to_string(spec.params_total()),
                               backend->name(), elapsed());
    EvalResult r;
    r.device = backend->name();
    r.metrics =
        analytic_metrics(spec, train.seq_len, settings.context_length, settings.inference_dtype_bytes);
    r.metrics["perplexity"] = report.perplexity;
    r.metrics["validation_loss"] = report.validation_loss;
    r.metrics["train_seconds"] = report.train_seconds;
    r.metrics["steps"] = report.steps_done;
    r.phase_seconds = {{"setup", setup_seconds},
                       {"build", report.build_seconds},
                       {"training", report.train_seconds},
                       {"validation", report.eval_seconds}};
    const double checks_start = elapsed();

    // The analytic cache size must be what the built model's decode state holds.
    // The check runs at the latency context (the model's context unless the
    // latency section sets another); cache_bytes is reported at the model's.
    const LatencySettings latency =
        settings.latency.value_or(LatencySettings{1, 1, settings.context_length, 0, 1});
    const int64_t analytic_state = spec.decode_state_elements(latency.context);
    const auto inference = measure_inference(spec, *backend, latency, derive_seed(request.seed, "init"),
                                             settings.latency.has_value());
    if (inference.state_elements != analytic_state * latency.batch)
      return failed_evaluation("decode state mismatch: the built model holds " +
                                   std::to_string(inference.state_elements) + " elements for " +
                                   std::to_string(latency.batch) + " sequence(s) at context " +
                                   std::to_string(latency.context) + ", the analytic cache_bytes counts " +
                                   std::to_string(analytic_state) + " per sequence",
                               backend->name(), elapsed());
    r.metrics["peak_memory_infer"] = static_cast<double>(inference.plan_bytes);
    // The trained model's own plan: building another model only to size it
    // took about as long as building the one that trained.
    r.metrics["peak_memory_train"] = static_cast<double>(report.plan_bytes);
    // The device's own figures beside the plans (not measured on the CPU).
    if (report.peak_memory_device)
      r.metrics["peak_memory_train_device"] = static_cast<double>(*report.peak_memory_device);
    if (inference.device_bytes)
      r.metrics["peak_memory_infer_device"] = static_cast<double>(*inference.device_bytes);
    if (settings.latency) {
      r.metrics["prefill_ms"] = inference.prefill.median_ms;
      r.metrics["prefill_ms_spread"] = inference.prefill.spread;
      r.metrics["prefill_tok_s"] =
          double(latency.batch) * latency.prompt / (inference.prefill.median_ms / 1e3);
      r.metrics["decode_ms"] = inference.decode.median_ms;
      r.metrics["decode_ms_spread"] = inference.decode.spread;
      r.metrics["decode_tok_s"] = double(latency.batch) / (inference.decode.median_ms / 1e3);
    }
    r.phase_seconds["checks"] = elapsed() - checks_start;  // decode state, memory plans, latency
    if (!settings.tasks.empty()) {
      const double tasks_start = elapsed();
      auto section = parse_task_section(JsonReader(settings.tasks, "<evaluation settings>", "/tasks"));
      const auto task_train = at_fidelity(section.training, request.fidelity);
      for (const auto& task : section.tasks) {
        const std::string name = to_string(task.kind);
        if (task.vocab > spec.vocab)
          return failed_evaluation("task " + name + ": its vocabulary of " + std::to_string(task.vocab) +
                                       " tokens exceeds the model's " + std::to_string(spec.vocab) +
                                       " (set tasks/" + name + "/vocab)",
                                   backend->name(), elapsed());
        const auto data = cached_task(task, derive_seed(section.seed, name));
        const auto report = train_on_task(spec, task_train, *data, derive_seed(request.seed, name), *backend);
        if (!report.ok)
          return failed_evaluation("task " + name + ": " + report.error, backend->name(), elapsed());
        r.metrics[accuracy_metric(task.kind)] = report.accuracy;
      }
      r.phase_seconds["tasks"] = elapsed() - tasks_start;
    }
    r.wall_seconds = elapsed();
    double accounted = 0.0;
    for (const auto& [phase, seconds] : r.phase_seconds) accounted += seconds;
    r.phase_seconds["other"] = std::max(0.0, r.wall_seconds - accounted);  // e.g. freeing the model
    backend.keep();
    return r;
  } catch (const std::bad_alloc&) {
    return failed_evaluation("out of memory", request.device, elapsed());
  } catch (const std::exception& e) {
    return failed_evaluation(e.what(), request.device, elapsed());
  }
}

}  // namespace livs::proxies
