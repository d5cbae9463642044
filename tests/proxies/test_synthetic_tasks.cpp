#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>

#include "proxies/synthetic_tasks.hpp"

using namespace livs;
using proxies::TaskKind;

namespace {

proxies::TaskSettings small(TaskKind kind) {
  auto s = proxies::default_task_settings(kind);
  s.train_examples = 200;
  s.test_examples = 50;
  if (kind == TaskKind::mqar) {
    s.vocab = 64;
    s.seq_len = 32;
  }
  if (kind == TaskKind::selective_copying) s.seq_len = 64;
  return s;
}

int64_t scored_count(const proxies::Example& e) {
  int64_t n = 0;
  for (const auto s : e.scored) n += s;
  return n;
}

}  // namespace

TEST_CASE("every task: shapes, token range, scored positions, held-out examples differ, determinism") {
  for (const auto kind : proxies::all_tasks()) {
    CAPTURE(proxies::to_string(kind));
    const auto s = small(kind);
    const auto data = proxies::generate_task(s, 7);
    REQUIRE(int(data.train.size()) == s.train_examples);
    REQUIRE(int(data.test.size()) == s.test_examples);
    std::set<std::vector<int32_t>> train_inputs;
    for (const auto& e : data.train) train_inputs.insert(e.inputs);
    for (const auto* split : {&data.train, &data.test}) {
      for (const auto& e : *split) {
        REQUIRE(int(e.inputs.size()) == s.length());
        REQUIRE(e.targets.size() == e.inputs.size());
        REQUIRE(e.scored.size() == e.inputs.size());
        CHECK(scored_count(e) >= 1);
        for (std::size_t t = 0; t < e.inputs.size(); ++t) {
          CHECK(e.inputs[t] >= 0);
          CHECK(e.inputs[t] < s.vocab);
          CHECK(e.targets[t] >= 0);
          CHECK(e.targets[t] < s.vocab);
        }
      }
    }
    for (const auto& e : data.test) CHECK(train_inputs.count(e.inputs) == 0);
    const auto again = proxies::generate_task(s, 7);
    CHECK(again.test.back().inputs == data.test.back().inputs);
    CHECK(proxies::generate_task(s, 8).train.front().inputs != data.train.front().inputs);
  }
}

TEST_CASE("recall answers are determined by the input: a repeated key's value is the one shown before") {
  for (const auto kind : {TaskKind::in_context_recall, TaskKind::noisy_recall}) {
    const auto s = small(kind);
    for (const auto& e : proxies::generate_task(s, 3).test) {
      // inputs alternate key, value (noise pairs aside); at a scored position t the input is a key
      // and the target is the value that followed that key earlier.
      for (std::size_t t = 0; t < e.inputs.size(); ++t) {
        if (!e.scored[t]) continue;
        int32_t earlier = -1;
        for (std::size_t u = 0; u + 1 < t; ++u)
          if (e.inputs[u] == e.inputs[t] && u % 2 == t % 2) earlier = e.inputs[u + 1];
        CHECK(earlier == e.targets[t]);
      }
    }
  }
}

TEST_CASE("copying, compression, memorisation and MQAR answers follow from the input") {
  SUBCASE("selective copying reproduces the non-blank tokens in order") {
    const auto s = small(TaskKind::selective_copying);
    for (const auto& e : proxies::generate_task(s, 3).test) {
      std::vector<int32_t> shown, answered;
      const int32_t blank = s.vocab - 2, copy = s.vocab - 1;
      std::size_t t = 0;
      for (; e.inputs[t] != copy; ++t)
        if (e.inputs[t] != blank) shown.push_back(e.inputs[t]);
      for (; t < e.inputs.size(); ++t)
        if (e.scored[t]) answered.push_back(e.targets[t]);
      CHECK(shown == answered);
      CHECK(int(shown.size()) == s.tokens_to_copy);
    }
  }
  SUBCASE("compression reconstructs the sequence after the compression token") {
    const auto s = small(TaskKind::compression);
    for (const auto& e : proxies::generate_task(s, 3).test) {
      const int n = s.seq_len - 1;
      CHECK(e.inputs[n] == s.vocab - 1);
      for (int i = 0; i < n; ++i) {
        CHECK(e.scored[n + i] == 1);
        CHECK(e.targets[n + i] == e.inputs[i]);
      }
    }
  }
  SUBCASE("memorisation uses one fixed map in training and held-out examples") {
    const auto s = small(TaskKind::memorization);
    const auto data = proxies::generate_task(s, 3);
    std::map<int32_t, int32_t> map;
    for (const auto* split : {&data.train, &data.test})
      for (const auto& e : *split)
        for (std::size_t t = 1; t < e.inputs.size(); t += 2) {
          CHECK(e.inputs[t] == s.vocab - 1);
          CHECK(e.scored[t] == 1);
          const auto [it, fresh] = map.emplace(e.inputs[t - 1], e.targets[t]);
          CHECK(it->second == e.targets[t]);
        }
    CHECK(map.size() > 100);  // 127 keys; 200 training examples of 16 keys reach nearly all
  }
  SUBCASE("MQAR queries each key once and expects its value from the context") {
    const auto s = small(TaskKind::mqar);
    for (const auto& e : proxies::generate_task(s, 3).test) {
      CHECK(scored_count(e) == s.kv_pairs);
      for (std::size_t t = 0; t < e.inputs.size(); ++t) {
        if (!e.scored[t]) continue;
        int32_t value = -1;
        for (int i = 0; i < s.kv_pairs; ++i)
          if (e.inputs[2 * i] == e.inputs[t]) value = e.inputs[2 * i + 1];
        CHECK(value == e.targets[t]);
      }
    }
  }
  SUBCASE("fuzzy recall ends with the probe: its key motif, then its value motif, scored") {
    const auto s = small(TaskKind::fuzzy_recall);
    for (const auto& e : proxies::generate_task(s, 3).test) {
      const std::size_t n = e.inputs.size();
      CHECK(e.scored[n - 1] == 1);  // the probe's last value token
      // The held-out probe key has the longest motif (3 keys) and appeared
      // earlier followed by the same value tokens as the scored targets.
      std::size_t v = n;
      while (v > 0 && e.scored[v - 1]) --v;  // first scored position of the final value run
      const std::vector<int32_t> key(e.inputs.begin() + long(v) - 2, e.inputs.begin() + long(v) + 1);
      const std::vector<int32_t> value(e.targets.begin() + long(v), e.targets.end());
      bool found = false;
      for (std::size_t u = 0; u + 3 + value.size() <= v - 2 && !found; ++u)
        found = std::equal(key.begin(), key.end(), e.inputs.begin() + long(u)) &&
                std::equal(value.begin(), value.end(), e.inputs.begin() + long(u) + 3);
      CHECK(found);
    }
  }
}

TEST_CASE("task settings: overrides, unknown keys and bad values name the pointer") {
  const Json j = Json{{"vocab", 32}, {"seq_len", 64}};
  const auto s =
      proxies::parse_task_settings(TaskKind::in_context_recall, JsonReader(j, "cfg.json", "/tasks/icr"));
  CHECK(s.vocab == 32);
  CHECK(s.seq_len == 64);
  CHECK(s.train_examples == 12800);
  CHECK(proxies::default_task_settings(TaskKind::mqar).vocab == 8192);
  CHECK(proxies::default_task_settings(TaskKind::memorization).train_examples == 256);
  const Json bad = Json{{"tokens_to_copy", 3}};
  try {
    proxies::parse_task_settings(TaskKind::in_context_recall, JsonReader(bad, "cfg.json", "/tasks/icr"));
    FAIL("expected an InputError");
  } catch (const InputError& e) {
    CHECK(std::string(e.what()).find("cfg.json: /tasks/icr/tokens_to_copy") != std::string::npos);
  }
  const Json negative = Json{{"seq_len", -3}};
  CHECK_THROWS_AS(proxies::parse_task_settings(TaskKind::mqar, JsonReader(negative, "cfg.json", "/t")),
                  InputError);
  proxies::TaskSettings tiny = proxies::default_task_settings(TaskKind::selective_copying);
  tiny.seq_len = 20;
  CHECK_THROWS_AS(proxies::generate_task(tiny, 1), std::invalid_argument);
}

TEST_CASE("task settings: what unscored positions train on, per task and from the config") {
  using proxies::UnscoredTargets;
  CHECK(proxies::default_task_settings(TaskKind::in_context_recall).unscored_targets ==
        UnscoredTargets::copy);
  CHECK(proxies::default_task_settings(TaskKind::fuzzy_recall).unscored_targets == UnscoredTargets::ignore);
  const Json j = Json{{"unscored_targets", "ignore"}};
  const auto s = proxies::parse_task_settings(TaskKind::mqar, JsonReader(j, "cfg.json", "/tasks/mqar"));
  CHECK(s.unscored_targets == UnscoredTargets::ignore);
  CHECK(proxies::to_json(s).at("unscored_targets") == "ignore");
  CHECK(proxies::generate_task(s, 1).unscored_targets == UnscoredTargets::ignore);
  const Json bad = Json{{"unscored_targets", "zero"}};
  try {
    proxies::parse_task_settings(TaskKind::mqar, JsonReader(bad, "cfg.json", "/tasks/mqar"));
    FAIL("expected an InputError");
  } catch (const InputError& e) {
    CHECK(std::string(e.what()).find("cfg.json: /tasks/mqar/unscored_targets") != std::string::npos);
    CHECK(std::string(e.what()).find("\"copy\" or \"ignore\"") != std::string::npos);
  }
}
