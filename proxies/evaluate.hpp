#pragma once
// The evaluator side of the evaluate contract (common/evaluate_contract.hpp):
// decode the genome, train it for its share of the budget on the requested
// device, and measure its objectives. A pure function of the request: the
// seed travels inside it, data files are read-only, and every failure
// (non-finite loss, out of memory, a kernel error, a bad genome) becomes a
// failed result with its reason instead of an exception, so the search goes on.
#include <cstdint>
#include <functional>
#include <optional>

#include "common/evaluate_contract.hpp"
#include "evaluator/data/data_settings.hpp"
#include "evaluator/train_settings.hpp"
#include "evaluator/trained_model.hpp"
#include "proxies/latency.hpp"
#include "proxies/synthetic_tasks.hpp"

namespace livs::proxies {

// What every evaluation of a search shares: the settings JSON an
// EvalRequest carries. `training` is the config's "training" section as
// written (validated by evaluator::parse_train_settings).
struct EvalSettings {
  evaluator::DataSettings data;
  Json training = Json::object();
  int64_t context_length = 2048;  // for cache_bytes
  int inference_dtype_bytes = 2;  // bf16 inference state
  // Prefill/decode timing ("latency" key); absent: no timed runs (the
  // inference plan is still built at batch 1 to check cache_bytes and to
  // report peak_memory_infer).
  std::optional<LatencySettings> latency;
  // Synthetic tasks ("tasks" key): {"seed": 0, "training": {...a training
  // section...}, "<task name>": {...overrides of the task's defaults...}, ...};
  // every task named is trained and scored (proxies/synthetic_tasks.hpp). The
  // examples come from tasks.seed, so every candidate sees the same ones.
  Json tasks = Json::object();
};
Json to_json(const EvalSettings& settings);

// The tasks a "tasks" section names, with their resolved settings; checks
// "seed" and "training" too. Every error is an InputError naming the pointer.
struct TaskSection {
  uint64_t seed = 0;
  evaluator::TrainSettings training;
  std::vector<TaskSettings> tasks;
};
TaskSection parse_task_section(const JsonReader& section);
EvalSettings eval_settings_from_json(const Json& json);

// Reads the corpus the settings name (the copy every evaluation of this
// process then shares) and checks that each split holds at least one window
// of training.seq_len + 1 tokens, so that a broken or too-short data file
// stops a search or an eval before anything trains, instead of failing every
// candidate with the same error. Throws InputError naming the file; returns
// the data's one-line description.
std::string check_data(const EvalSettings& settings);

// Called after every training step (step, loss).
using StepProgress = std::function<void(int step, int steps, double loss)>;

// `trained`, when given, receives the trained weights and the probe logits of
// the perplexity training (evaluator::train_and_evaluate); meaningful only
// when the result is ok.
EvalResult evaluate(const EvalRequest& request, const StepProgress& progress = {},
                    evaluator::TrainedModel* trained = nullptr);

// The metrics evaluate() reports (with latency settings), with their units
// from the objective catalogue (for the database and the tables).
struct MetricInfo {
  const char* name;
  const char* unit;
  bool minimise;
};
const std::vector<MetricInfo>& reported_metrics();

}  // namespace livs::proxies
