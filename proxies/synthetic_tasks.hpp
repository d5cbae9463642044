#pragma once
// Synthetic tasks as objectives: MAD's (Poli et al. 2024, "Mechanistic
// Architecture Design", github athms/mad-lab) in-context recall, fuzzy
// recall, noisy recall, selective copying, compression and memorisation, and
// Zoology's multi-query associative recall (Arora et al. 2023, github
// HazyResearch/zoology). Generated here with livs::Rng, so the same seed gives
// the same examples on any machine. Defaults are the papers' baselines
// (docs/architecture.md, "Objectives"), overridable per task in the config.
//
// An example is `length` positions of (input, target, scored): the model reads
// inputs[0..t] and predicts targets[t]. Scored positions carry the task's
// answer; accuracy counts those only. The other targets are the next input
// token; task training (task_training.hpp) replaces them by the position's
// own input, so the answers carry the loss.
#include <cstdint>
#include <string>
#include <vector>

#include "common/json_reader.hpp"

namespace livs::proxies {

enum class TaskKind {
  in_context_recall,
  fuzzy_recall,
  noisy_recall,
  selective_copying,
  compression,
  memorization,
  mqar
};
const std::vector<TaskKind>& all_tasks();
const char* to_string(TaskKind kind);        // "in_context_recall", ...
std::string accuracy_metric(TaskKind kind);  // "in_context_recall_accuracy", ...
bool task_from_string(const std::string& name, TaskKind& kind);

// What the positions that are not answers train on. `copy`: their own input
// token (learned at once through the residual stream, so the answers carry
// the loss and the copy adds a signal that helps induction form early);
// `ignore`: nothing (MAD's ignore_index: only the answers are trained).
enum class UnscoredTargets { copy, ignore };
const char* to_string(UnscoredTargets targets);
bool unscored_targets_from_string(const std::string& name, UnscoredTargets& targets);  // "copy", "ignore"

struct TaskSettings {
  TaskKind kind = TaskKind::in_context_recall;
  int vocab = 16;     // every token id is below this
  int seq_len = 128;  // MAD's seq_len (tokens generated); an example has length() positions
  int train_examples = 12800;
  int test_examples = 1280;
  bool multi_query = true;         // recall tasks: score every repeated key's value, not just the final probe
  int noise_vocab = 0;             // noisy recall: noise tokens (taken from the top of the vocabulary)
  double frac_noise = 0.0;         // noisy recall: share of noise motifs
  int k_motif = 1, v_motif = 1;    // fuzzy recall: the longest key and value motifs
  int tokens_to_copy = 16;         // selective copying
  int kv_pairs = 4;                // mqar: key-value pairs per sequence
  double power_a = 0.01;           // mqar: query gaps drawn from p(x) ~ a x^(a-1)
  bool random_non_queries = true;  // mqar: filler tokens random instead of 0
  UnscoredTargets unscored_targets = UnscoredTargets::copy;

  int length() const;  // positions per example
};

// The paper's baseline for each task.
TaskSettings default_task_settings(TaskKind kind);
// Overrides from a config object, e.g. {"vocab": 32, "seq_len": 64, "train_examples": 512};
// keys that do not apply to the task are rejected; every error names file and pointer.
TaskSettings parse_task_settings(TaskKind kind, const JsonReader& section);
Json to_json(const TaskSettings& settings);

struct Example {
  std::vector<int32_t> inputs, targets;
  std::vector<uint8_t> scored;
};
struct TaskData {
  std::vector<Example> train, test;                          // no test input sequence occurs in train
  UnscoredTargets unscored_targets = UnscoredTargets::copy;  // from the settings
};

// Throws std::invalid_argument when the settings cannot produce an example
// (a vocabulary too small for the task's special tokens, a sequence too short).
TaskData generate_task(const TaskSettings& settings, uint64_t seed);

}  // namespace livs::proxies
