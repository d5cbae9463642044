#include "proxies/latency.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "common/rng.hpp"
#include "evaluator/model.hpp"

namespace livs::proxies {

LatencySettings parse_latency_settings(const JsonReader& section, int64_t default_context) {
  section.expect_keys({"batch", "prompt", "context", "warmup", "repeats"});
  LatencySettings s;
  s.batch = static_cast<int>(section.integer_or("batch", 1, 1, 4096));
  s.context = section.integer_or("context", default_context, 1, int64_t(1) << 24);
  s.prompt = static_cast<int>(section.integer_or("prompt", std::min<int64_t>(512, s.context), 1, 1 << 20));
  s.warmup = static_cast<int>(section.integer_or("warmup", 3, 0, 1000));
  s.repeats = static_cast<int>(section.integer_or("repeats", 10, 1, 100000));
  return s;
}

Json to_json(const LatencySettings& s) {
  return Json{{"batch", s.batch},
              {"prompt", s.prompt},
              {"context", s.context},
              {"warmup", s.warmup},
              {"repeats", s.repeats}};
}

Timing summarise(std::vector<double> runs) {
  if (runs.empty()) throw std::invalid_argument("summarise: no timed runs");
  std::sort(runs.begin(), runs.end());
  auto at = [&](double p) { return runs[std::size_t(std::lround(p * double(runs.size() - 1)))]; };
  const std::size_t n = runs.size();
  const double median = n % 2 ? runs[n / 2] : 0.5 * (runs[n / 2 - 1] + runs[n / 2]);
  Timing t;
  t.median_ms = median;
  t.spread = median > 0.0 ? (at(0.9) - at(0.1)) / median : 0.0;
  return t;
}

namespace {

Timing time_runs(evaluator::Backend& backend, int warmup, int repeats, evaluator::StepRunner& runner) {
  for (int i = 0; i < warmup; ++i) runner.run();
  std::vector<double> ms;
  for (int i = 0; i < repeats; ++i) ms.push_back(backend.elapsed_ms([&] { runner.run(); }));
  return summarise(std::move(ms));
}

}  // namespace

InferenceMeasurement measure_inference(const genome::ModelSpec& spec, evaluator::Backend& backend,
                                       const LatencySettings& s, uint64_t init_seed, bool timed) {
  evaluator::PlanShape shape;
  shape.batch = s.batch;
  shape.seq = s.prompt;
  shape.decode_batch = s.batch;
  shape.decode_context = s.context;
  const std::optional<int64_t> in_use_before = backend.device_bytes_in_use();
  evaluator::Model model(spec, backend, shape, init_seed);
  InferenceMeasurement m;
  m.state_elements = model.planned_state_elements();
  m.plan_bytes = model.arena_bytes();
  if (!timed && !in_use_before) return m;

  // Tokens are fixed pseudo-random ids: latency does not depend on their values.
  Rng rng(derive_seed(init_seed, "latency tokens"));
  std::vector<int32_t> inputs(int64_t(s.batch) * s.prompt), targets(inputs.size());
  for (auto& t : inputs) t = int32_t(rng.integer(0, spec.vocab - 1));
  for (auto& t : targets) t = int32_t(rng.integer(0, spec.vocab - 1));
  std::vector<int32_t> step_tokens(s.batch);
  for (auto& t : step_tokens) t = int32_t(rng.integer(0, spec.vocab - 1));
  model.set_batch(inputs.data(), targets.data());
  model.set_decode_tokens(step_tokens.data());
  model.reset_decode();
  const int64_t position = s.context - 1;

  if (!timed) {  // untimed, but the device's own figure needs the work done once
    model.forward_on_device();
    model.decode_on_device(position);
    backend.synchronize();
    m.device_bytes = *backend.device_bytes_in_use() - *in_use_before;
    return m;
  }
  // Two untimed runs each: the first eager (it sizes the backend's scratch),
  // the second captures the graph the timed runs replay.
  const auto prefill = backend.make_step_runner([&] { model.forward_on_device(); });
  const auto decode = backend.make_step_runner([&] { model.decode_on_device(position); });
  for (int i = 0; i < 2; ++i) {
    prefill->run();
    decode->run();
  }
  m.prefill = time_runs(backend, s.warmup, s.repeats, *prefill);
  m.decode = time_runs(backend, s.warmup, s.repeats, *decode);
  m.graphs = prefill->replays_graph() && decode->replays_graph();
  if (in_use_before) {
    backend.synchronize();
    m.device_bytes = *backend.device_bytes_in_use() - *in_use_before;
  }
  return m;
}

int64_t training_plan_bytes(const genome::ModelSpec& spec, evaluator::Backend& backend, int batch,
                            int seq_len) {
  evaluator::PlanShape shape;
  shape.batch = batch;
  shape.seq = seq_len;
  evaluator::Model model(spec, backend, shape, 0);
  return model.arena_bytes();
}

}  // namespace livs::proxies
