#pragma once
// Inference measurements on the evaluation device: prefill and decode
// latency, the inference and training memory plans, and the decode state the
// built model really holds (checked against the analytic cache size).
//
// Protocol (the same every time): the step is made a step runner
// (Backend::make_step_runner: on the GPU a CUDA graph, captured by two
// untimed runs, so launch overhead is one graph launch, not one per kernel),
// then `warmup` untimed runs, then `repeats` timed runs, each timed by the
// backend (Backend::elapsed_ms: CUDA events on the GPU, a steady clock
// between synchronize() calls on the CPU). Tokens are copied to the device
// once, before; a run is the device work alone. The reported value is the
// median; the spread is (p90 - p10) / median over the timed runs
// (nearest-rank percentiles), 0 for a perfectly steady device.
//   prefill: one forward over [batch, prompt] tokens (embedding, every slot,
//            final norm, LM head and cross-entropy);
//   decode:  one one-token step for `batch` sequences at position context-1,
//            with the decode state planned for `context` tokens, so every
//            cache is read at its full length (a sliding window reads its window).
#include <cstdint>
#include <optional>
#include <vector>

#include "common/json_reader.hpp"
#include "evaluator/backend.hpp"
#include "genome/model_spec.hpp"

namespace livs::proxies {

// The config's "latency" section; every key optional.
//   "latency": {"batch": 1, "prompt": 512, "context": 2048, "warmup": 3, "repeats": 10}
// context defaults to the model's context length.
struct LatencySettings {
  int batch = 1;
  int prompt = 512;
  int64_t context = 2048;
  int warmup = 3;
  int repeats = 10;
};
LatencySettings parse_latency_settings(const JsonReader& section, int64_t default_context);
Json to_json(const LatencySettings& settings);

struct Timing {
  double median_ms = 0.0;
  double spread = 0.0;  // (p90 - p10) / median
};
// Median and spread of timed runs (milliseconds); needs at least one.
Timing summarise(std::vector<double> runs_ms);

struct InferenceMeasurement {
  Timing prefill, decode;      // zero when not timed
  int64_t state_elements = 0;  // decode-state elements the built model holds, all sequences
  int64_t plan_bytes = 0;      // the inference memory plan (one arena allocation)
  // Device memory the model took as the device reports it, after prefill and
  // decode ran (bytes in use then minus before the model was built); empty
  // where the backend does not measure it (CPU).
  std::optional<int64_t> device_bytes;
  bool graphs = false;  // prefill and decode replayed CUDA graphs
};

// Builds the model for inference at settings.batch x prompt / context and
// measures it; with timed = false only the plan and the state are read.
InferenceMeasurement measure_inference(const genome::ModelSpec& spec, evaluator::Backend& backend,
                                       const LatencySettings& settings, uint64_t init_seed, bool timed);

// The training memory plan of a model at batch x seq_len (parameters,
// gradients, AdamW moments, activations): what the trainer allocates.
int64_t training_plan_bytes(const genome::ModelSpec& spec, evaluator::Backend& backend, int batch,
                            int seq_len);

}  // namespace livs::proxies
