#include "proxies/synthetic_tasks.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <stdexcept>

#include "common/rng.hpp"

namespace livs::proxies {

const std::vector<TaskKind>& all_tasks() {
  static const std::vector<TaskKind> kinds = {TaskKind::in_context_recall,
                                              TaskKind::fuzzy_recall,
                                              TaskKind::noisy_recall,
                                              TaskKind::selective_copying,
                                              TaskKind::compression,
                                              TaskKind::memorization,
                                              TaskKind::mqar};
  return kinds;
}

const char* to_string(TaskKind kind) {
  switch (kind) {
    case TaskKind::in_context_recall:
      return "in_context_recall";
    case TaskKind::fuzzy_recall:
      return "fuzzy_recall";
    case TaskKind::noisy_recall:
      return "noisy_recall";
    case TaskKind::selective_copying:
      return "selective_copying";
    case TaskKind::compression:
      return "compression";
    case TaskKind::memorization:
      return "memorization";
    case TaskKind::mqar:
      return "mqar";
  }
  return "?";
}

std::string accuracy_metric(TaskKind kind) { return std::string(to_string(kind)) + "_accuracy"; }

bool task_from_string(const std::string& name, TaskKind& kind) {
  for (const auto k : all_tasks())
    if (name == to_string(k)) {
      kind = k;
      return true;
    }
  return false;
}

int TaskSettings::length() const {
  switch (kind) {
    case TaskKind::in_context_recall:
    case TaskKind::noisy_recall:
      return multi_query ? seq_len - 1 : seq_len;  // seq_len tokens (+ a copy prefix), shifted by one
    case TaskKind::fuzzy_recall:
      return seq_len;  // padded to seq_len + 1 tokens, shifted by one
    case TaskKind::selective_copying:
    case TaskKind::mqar:
      return seq_len;
    case TaskKind::compression:
      return 2 * seq_len - 2;  // seq_len - 1 tokens, the compression token, the reconstruction
    case TaskKind::memorization:
      return 2 * (seq_len / 2);
  }
  return seq_len;
}

TaskSettings default_task_settings(TaskKind kind) {
  TaskSettings s;  // MAD's in-context recall baseline
  s.kind = kind;
  switch (kind) {
    case TaskKind::in_context_recall:
      break;
    case TaskKind::fuzzy_recall:
      s.k_motif = s.v_motif = 3;
      // Copy targets make the copy the default answer here: with them a
      // 2-layer transformer scored 0.003-0.020 after 1000-3000 steps, below
      // the 0.146 majority baseline; ignored ones gave 0.188 (docs/architecture.md).
      s.unscored_targets = UnscoredTargets::ignore;
      break;
    case TaskKind::noisy_recall:
      s.vocab = 32;
      s.noise_vocab = 16;
      s.frac_noise = 0.2;
      break;
    case TaskKind::selective_copying:
      s.seq_len = 256;
      s.tokens_to_copy = 16;
      break;
    case TaskKind::compression:
      s.seq_len = 32;
      break;
    case TaskKind::memorization:
      s.vocab = 256;
      s.seq_len = 32;
      s.train_examples = 256;
      s.test_examples = 256;
      break;
    case TaskKind::mqar:  // Zoology's defaults
      s.vocab = 8192;
      s.seq_len = 64;
      s.kv_pairs = 4;
      s.train_examples = 100000;
      s.test_examples = 3000;
      break;
  }
  return s;
}

const char* to_string(UnscoredTargets targets) {
  return targets == UnscoredTargets::copy ? "copy" : "ignore";
}

bool unscored_targets_from_string(const std::string& name, UnscoredTargets& targets) {
  for (const auto t : {UnscoredTargets::copy, UnscoredTargets::ignore})
    if (name == to_string(t)) {
      targets = t;
      return true;
    }
  return false;
}

TaskSettings parse_task_settings(TaskKind kind, const JsonReader& section) {
  TaskSettings s = default_task_settings(kind);
  std::vector<std::string_view> keys = {"vocab", "seq_len", "train_examples", "test_examples",
                                        "unscored_targets"};
  const bool recall =
      kind == TaskKind::in_context_recall || kind == TaskKind::noisy_recall || kind == TaskKind::fuzzy_recall;
  if (recall) keys.insert(keys.end(), {"multi_query", "noise_vocab", "frac_noise"});
  if (kind == TaskKind::fuzzy_recall) keys.insert(keys.end(), {"k_motif", "v_motif"});
  if (kind == TaskKind::selective_copying) keys.push_back("tokens_to_copy");
  if (kind == TaskKind::mqar) keys.insert(keys.end(), {"kv_pairs", "power_a", "random_non_queries"});
  section.expect_object();
  for (const auto& key : section.keys())
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) {
      std::string list;
      for (const auto k : keys) list += (list.empty() ? "" : ", ") + std::string(k);
      section.at(key).fail_message("unknown key \"" + key + "\" for task " + to_string(kind) + " (expected " +
                                   list + ")");
    }
  s.vocab = static_cast<int>(section.integer_or("vocab", s.vocab, 4, 1 << 20));
  s.seq_len = static_cast<int>(section.integer_or("seq_len", s.seq_len, 4, 1 << 16));
  s.train_examples = static_cast<int>(section.integer_or("train_examples", s.train_examples, 1, 1 << 24));
  s.test_examples = static_cast<int>(section.integer_or("test_examples", s.test_examples, 1, 1 << 24));
  if (const auto v = section.find("multi_query")) s.multi_query = v->boolean();
  s.noise_vocab = static_cast<int>(section.integer_or("noise_vocab", s.noise_vocab, 0, 1 << 20));
  s.frac_noise = section.number_or("frac_noise", s.frac_noise, 0.0, 0.95);
  s.k_motif = static_cast<int>(section.integer_or("k_motif", s.k_motif, 1, 8));
  s.v_motif = static_cast<int>(section.integer_or("v_motif", s.v_motif, 1, 8));
  s.tokens_to_copy = static_cast<int>(section.integer_or("tokens_to_copy", s.tokens_to_copy, 1, 1 << 15));
  s.kv_pairs = static_cast<int>(section.integer_or("kv_pairs", s.kv_pairs, 1, 1 << 15));
  s.power_a = section.number_or("power_a", s.power_a, 1e-6, 1.0);
  if (const auto v = section.find("random_non_queries")) s.random_non_queries = v->boolean();
  if (const auto v = section.find("unscored_targets")) {
    const std::string name = v->string();
    if (!unscored_targets_from_string(name, s.unscored_targets))
      v->fail_message("expected \"copy\" or \"ignore\", got \"" + name + "\"");
  }
  if (s.frac_noise > 0.0 && s.noise_vocab == 0)
    section.fail_message("\"frac_noise\" > 0 needs \"noise_vocab\" > 0");
  return s;
}

Json to_json(const TaskSettings& s) {
  return Json{{"task", to_string(s.kind)},
              {"vocab", s.vocab},
              {"seq_len", s.seq_len},
              {"train_examples", s.train_examples},
              {"test_examples", s.test_examples},
              {"multi_query", s.multi_query},
              {"noise_vocab", s.noise_vocab},
              {"frac_noise", s.frac_noise},
              {"k_motif", s.k_motif},
              {"v_motif", s.v_motif},
              {"tokens_to_copy", s.tokens_to_copy},
              {"kv_pairs", s.kv_pairs},
              {"power_a", s.power_a},
              {"random_non_queries", s.random_non_queries},
              {"unscored_targets", to_string(s.unscored_targets)}};
}

namespace {

void require(bool ok, const TaskSettings& s, const std::string& what) {
  if (!ok) throw std::invalid_argument(std::string("task ") + to_string(s.kind) + ": " + what);
}

int32_t pick(Rng& rng, int32_t lo, int32_t hi_exclusive) {
  return int32_t(rng.integer(lo, hi_exclusive - 1));
}

// A token stream with a flag per token saying whether it is an answer; the
// example reads tokens[0..n-2] and predicts tokens[1..n-1].
struct Stream {
  std::vector<int32_t> tokens;
  std::vector<uint8_t> answer;
  void push(int32_t t, bool is_answer = false) {
    tokens.push_back(t);
    answer.push_back(is_answer ? 1 : 0);
  }
  Example shifted() const {
    Example e;
    e.inputs.assign(tokens.begin(), tokens.end() - 1);
    e.targets.assign(tokens.begin() + 1, tokens.end());
    e.scored.assign(answer.begin() + 1, answer.end());
    return e;
  }
};

// MAD in-context recall (noisy when frac_noise > 0): key-value pairs, a key
// always maps to the same value; with multi_query every repeated key's value
// is scored, else a copy prefix and the final probe's value only.
Example recall_example(const TaskSettings& s, Rng& rng) {
  const int ns = (s.multi_query ? s.vocab : s.vocab - 1) - s.noise_vocab;
  require(ns >= 4, s, "vocab leaves fewer than 4 key/value tokens after the special and noise tokens");
  require(s.seq_len % 2 == 0 && s.seq_len >= 4, s, "seq_len must be even and >= 4");
  const int32_t copy_prefix = s.vocab - 1;
  const int pairs = s.seq_len / 2;
  const int not_noise = pick(rng, 0, pairs - 1);  // at least one real pair before the probe
  std::map<int32_t, int32_t> kv;
  std::vector<int32_t> presented;
  Stream out;
  for (int i = 0; i < pairs - 1; ++i) {
    if (s.frac_noise > 0.0 && i != not_noise && rng.uniform() < s.frac_noise) {
      out.push(pick(rng, ns, ns + s.noise_vocab));
      out.push(pick(rng, ns, ns + s.noise_vocab));
      continue;
    }
    const int32_t k = pick(rng, 0, ns / 2);
    const bool seen = kv.count(k) > 0;
    if (!seen) kv[k] = pick(rng, ns / 2, ns);
    out.push(k);
    out.push(kv[k], seen && s.multi_query);
    if (!seen) presented.push_back(k);
  }
  const int32_t probe = presented[rng.integer(0, int64_t(presented.size()) - 1)];
  if (!s.multi_query) out.push(copy_prefix);
  out.push(probe);
  out.push(kv[probe], true);
  return out.shifted();
}

std::vector<int32_t> motif(Rng& rng, int32_t lo, int32_t hi, int size) {
  std::vector<int32_t> pool;
  for (int32_t t = lo; t < hi; ++t) pool.push_back(t);
  std::vector<int32_t> m;
  for (int i = 0; i < size; ++i) {  // distinct tokens in random order: a random permutation prefix
    const auto j = rng.integer(i, int64_t(pool.size()) - 1);
    std::swap(pool[i], pool[j]);
    m.push_back(pool[i]);
  }
  return m;
}

// MAD fuzzy in-context recall: keys and values are motifs of 1..k_motif and
// 1..v_motif distinct tokens; held-out examples use only the longest keys.
Example fuzzy_example(const TaskSettings& s, Rng& rng, bool training) {
  const int32_t copy_prefix = s.vocab - 1, pad = s.multi_query ? s.vocab - 1 : s.vocab - 2;
  const int ns = (s.multi_query ? s.vocab - 1 : s.vocab - 2) - s.noise_vocab;
  require(ns / 2 >= s.k_motif && ns - ns / 2 >= s.v_motif, s, "vocab too small for the key and value motifs");
  auto key_size = [&] { return training ? int(rng.integer(1, s.k_motif)) : s.k_motif; };
  auto value_size = [&] { return int(rng.integer(1, s.v_motif)); };
  const auto k_probe = motif(rng, 0, ns / 2, key_size());
  const auto v_probe = motif(rng, ns / 2, ns, value_size());
  const int probe_size = int(k_probe.size() + v_probe.size());
  // The pairs fill up to `bound`; the probe pair goes in early enough that
  // the loop always reaches it (one pair adds at most k_motif + v_motif tokens).
  const int bound = s.seq_len - probe_size - (s.k_motif + s.v_motif);
  require(bound - (s.k_motif + s.v_motif) >= 1, s, "seq_len too short for the motifs");
  const int probe_at = pick(rng, 0, bound - (s.k_motif + s.v_motif));
  bool probe_added = false;
  std::map<std::vector<int32_t>, std::vector<int32_t>> kv;
  Stream out;
  while (int(out.tokens.size()) < bound) {
    if (int(out.tokens.size()) >= probe_at && !probe_added) {
      for (const auto t : k_probe) out.push(t);
      for (const auto t : v_probe) out.push(t);
      kv[k_probe] = v_probe;
      probe_added = true;
      continue;
    }
    const int ks = key_size(), vs = value_size();
    if (s.frac_noise > 0.0 && rng.uniform() < s.frac_noise) {
      for (int i = 0; i < ks + vs; ++i) out.push(pick(rng, ns, ns + s.noise_vocab));
      continue;
    }
    const auto k = motif(rng, 0, ns / 2, ks);
    const bool seen = kv.count(k) > 0;
    if (!seen) kv[k] = k == k_probe ? v_probe : motif(rng, ns / 2, ns, vs);
    for (const auto t : k) out.push(t);
    for (const auto t : kv[k]) out.push(t, seen && s.multi_query);
  }
  if (!s.multi_query) out.push(copy_prefix);
  for (const auto t : k_probe) out.push(t);
  for (const auto t : v_probe) out.push(t, true);
  require(int(out.tokens.size()) <= s.seq_len + 1, s, "motifs overflow seq_len");
  Stream padded;
  while (int(padded.tokens.size()) + int(out.tokens.size()) < s.seq_len + 1) padded.push(pad);
  for (std::size_t i = 0; i < out.tokens.size(); ++i) padded.push(out.tokens[i], out.answer[i]);
  return padded.shifted();
}

// Aligned example: targets[t] is the answer where scored, else the next input.
Example aligned(std::vector<int32_t> inputs, const std::vector<int32_t>& answers,
                const std::vector<uint8_t>& scored) {
  Example e;
  e.targets.resize(inputs.size());
  for (std::size_t t = 0; t < inputs.size(); ++t)
    e.targets[t] = scored[t] ? answers[t] : (t + 1 < inputs.size() ? inputs[t + 1] : inputs[t]);
  e.inputs = std::move(inputs);
  e.scored = scored;
  return e;
}

// MAD selective copying: tokens to copy scattered among blanks, a copy token,
// then blanks during which the tokens are reproduced in order.
Example selective_copying_example(const TaskSettings& s, Rng& rng) {
  const int n = s.tokens_to_copy, blanks = s.seq_len - 2 * n - 1;
  require(blanks > 0, s, "seq_len must be > 2 * tokens_to_copy + 1");
  require(s.vocab >= 3, s, "vocab must be >= 3");
  const int32_t copy = s.vocab - 1, blank = s.vocab - 2;
  std::vector<int32_t> to_copy;
  for (int i = 0; i < n; ++i) to_copy.push_back(pick(rng, 0, s.vocab - 2));
  std::vector<int32_t> in;
  int placed = 0;
  for (int slot = 0; slot < n + blanks; ++slot) {  // each placement of n among n + blanks equally likely
    const int left = n + blanks - slot;
    if (rng.integer(0, left - 1) < n - placed)
      in.push_back(to_copy[placed++]);
    else
      in.push_back(blank);
  }
  in.push_back(copy);
  for (int i = 0; i < n; ++i) in.push_back(blank);
  std::vector<int32_t> answers(in.size(), 0);
  std::vector<uint8_t> scored(in.size(), 0);
  for (int i = 0; i < n; ++i) {
    answers[n + blanks + 1 + i] = to_copy[i];
    scored[n + blanks + 1 + i] = 1;
  }
  return aligned(std::move(in), answers, scored);
}

// Compression, causal form: MAD encodes the sequence into its compression
// token and decodes it with an MLP; livsearch's models are causal language
// models, so from the compression token on they reconstruct the sequence.
Example compression_example(const TaskSettings& s, Rng& rng) {
  const int n = s.seq_len - 1;
  const int32_t compress = s.vocab - 1;
  std::vector<int32_t> x;
  for (int i = 0; i < n; ++i) x.push_back(pick(rng, 0, s.vocab - 1));
  std::vector<int32_t> in = x;
  in.push_back(compress);
  for (int i = 0; i + 1 < n; ++i) in.push_back(x[i]);
  std::vector<int32_t> answers(in.size(), 0);
  std::vector<uint8_t> scored(in.size(), 0);
  for (int i = 0; i < n; ++i) {
    answers[n + i] = x[i];
    scored[n + i] = 1;
  }
  return aligned(std::move(in), answers, scored);
}

// MAD memorisation: a fixed key -> value map (the same for every example of a
// seed); each key is followed by an insert token at which its value is due.
Example memorization_example(const TaskSettings& s, Rng& rng, const std::vector<int32_t>& value_of) {
  const int32_t insert = s.vocab - 1;
  std::vector<int32_t> in, answers;
  std::vector<uint8_t> scored;
  for (int i = 0; i < s.seq_len / 2; ++i) {
    const int32_t k = pick(rng, 0, int32_t(value_of.size()));
    in.insert(in.end(), {k, insert});
    answers.insert(answers.end(), {0, value_of[k]});
    scored.insert(scored.end(), {0, 1});
  }
  return aligned(std::move(in), answers, scored);
}

std::vector<int32_t> memorization_map(const TaskSettings& s, uint64_t seed) {
  const int ns = s.vocab - 1;
  require(ns >= 2, s, "vocab must be >= 3");
  Rng rng(derive_seed(seed, "memorization map"));
  std::vector<int32_t> values;
  for (int32_t v = ns / 2; v < ns; ++v) values.push_back(v);
  for (std::size_t i = values.size(); i > 1; --i)
    std::swap(values[i - 1], values[rng.integer(0, int64_t(i) - 1)]);
  values.resize(ns / 2);  // keys 0 .. ns/2 - 1, each with its own value
  return values;
}

// Zoology MQAR: kv_pairs distinct keys with values, then each key queried
// once at a gap drawn from a power law; the value is due at the query.
Example mqar_example(const TaskSettings& s, Rng& rng) {
  const int n = s.kv_pairs, half = s.vocab / 2;
  require(half - 1 >= n && s.vocab - half >= n, s, "vocab too small for kv_pairs distinct keys and values");
  const int space = (s.seq_len - 2 * n) / 2;
  require(space >= n, s, "seq_len must leave room for kv_pairs queries");
  auto distinct = [&](int32_t lo, int32_t hi) {
    std::set<int32_t> used;
    std::vector<int32_t> out;
    while (int(out.size()) < n) {
      const int32_t t = pick(rng, lo, hi);
      if (used.insert(t).second) out.push_back(t);
    }
    return out;
  };
  const auto keys = distinct(1, half), values = distinct(half, s.vocab);
  std::vector<double> weight(space);
  for (int x = 0; x < space; ++x) weight[x] = s.power_a * std::pow(double(x + 1), s.power_a - 1.0);
  std::vector<int32_t> in(s.seq_len, 0), answers(s.seq_len, 0);
  std::vector<uint8_t> scored(s.seq_len, 0);
  for (int i = 0; i < n; ++i) {
    in[2 * i] = keys[i];
    in[2 * i + 1] = values[i];
  }
  if (s.random_non_queries)
    for (int t = 2 * n; t < s.seq_len; ++t) in[t] = pick(rng, 0, s.vocab);
  for (int i = 0; i < n; ++i) {  // gaps without replacement, by weight
    double total = 0;
    for (const double w : weight) total += w;
    double r = rng.uniform() * total;
    int gap = 0;
    while (gap + 1 < space && (r -= weight[gap]) >= 0) ++gap;
    while (weight[gap] == 0.0) gap = (gap + 1) % space;
    weight[gap] = 0.0;
    const int at = 2 * n + 2 * gap;
    in[at] = keys[i];
    answers[at] = values[i];
    scored[at] = 1;
  }
  return aligned(std::move(in), answers, scored);
}

}  // namespace

TaskData generate_task(const TaskSettings& s, uint64_t seed) {
  std::vector<int32_t> value_of;
  if (s.kind == TaskKind::memorization) value_of = memorization_map(s, seed);
  auto make = [&](Rng& rng, bool training) {
    switch (s.kind) {
      case TaskKind::in_context_recall:
      case TaskKind::noisy_recall:
        return recall_example(s, rng);
      case TaskKind::fuzzy_recall:
        return fuzzy_example(s, rng, training);
      case TaskKind::selective_copying:
        return selective_copying_example(s, rng);
      case TaskKind::compression:
        return compression_example(s, rng);
      case TaskKind::memorization:
        return memorization_example(s, rng, value_of);
      case TaskKind::mqar:
        return mqar_example(s, rng);
    }
    throw std::logic_error("unknown task");
  };
  TaskData data;
  data.unscored_targets = s.unscored_targets;
  std::set<std::vector<int32_t>> seen;
  Rng train_rng(derive_seed(seed, "task train"));
  for (int i = 0; i < s.train_examples; ++i) {
    data.train.push_back(make(train_rng, true));
    seen.insert(data.train.back().inputs);
  }
  Rng test_rng(derive_seed(seed, "task test"));
  for (int i = 0; i < s.test_examples; ++i) {
    for (int attempt = 0;; ++attempt) {
      auto e = make(test_rng, false);
      if (seen.insert(e.inputs).second) {
        data.test.push_back(std::move(e));
        break;
      }
      require(attempt < 1000, s, "cannot draw held-out examples that differ from the training examples");
    }
  }
  return data;
}

}  // namespace livs::proxies
