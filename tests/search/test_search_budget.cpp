// The search spends evaluations only on genomes worth them: analytic
// constraints are met before training, warm-start members come first and are
// named, the final stage re-trains the front and the warm start over seeds,
// and no (hash, fidelity, seed) is ever trained twice, across a kill too.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <limits>
#include <set>
#include <tuple>

#include "common/duration_text.hpp"
#include "genome/presets.hpp"
#include "genome_search_fixture.hpp"
#include "search/evaluation_ledger.hpp"
#include "search/final_stage.hpp"

using namespace livs;
using namespace livs::search;
using namespace livs::test;

namespace {

// The fake evaluator's own "params" (non-embedding) and cache, before training.
Metrics fake_analytic(const genome::Genome& g) {
  const auto spec = genome::decode(g);
  return {{"params", static_cast<double>(spec.params_non_embedding())},
          {"cache_bytes", 2.0 * static_cast<double>(spec.decode_state_elements(2048))}};
}

void screen_analytics(Setup& setup) { setup.options.analytic = fake_analytic; }

WarmStart warm(const std::string& name, int d_model, int layers) {
  auto g = genome::preset(name, d_model, layers);
  return {"preset " + name, g};
}

// A search at half the steps whose final stage re-trains up to `top` of the
// front and the transformer warm start on 2 seeds each.
void with_final_stage(Setup& setup, int top, int workers) {
  screen_analytics(setup);
  setup.settings.fidelity = 0.5;
  setup.settings.final_top = top;
  setup.settings.final_seeds = 2;
  setup.options.warm_start = {warm("transformer", 64, 2)};
  setup.options.workers = workers;
}

// Every (hash, fidelity, seed) of a run, with its metrics, for comparing runs.
std::map<std::tuple<std::string, double, uint64_t>, std::map<std::string, double>> finished_of(
    const db::Store& store, int64_t run_id) {
  std::map<std::tuple<std::string, double, uint64_t>, std::map<std::string, double>> out;
  for (const auto& e : store.evaluations(run_id)) {
    if (e.status != db::EvaluationStatus::ok && e.status != db::EvaluationStatus::failed) continue;
    auto& metrics = out[{e.genome_hash, e.fidelity, e.seed}];
    for (const auto& [name, m] : e.metrics) metrics[name] = m.value;
  }
  return out;
}

}  // namespace

TEST_CASE("no genome that breaks an analytic constraint reaches the evaluator, and refusals are counted") {
  TempDb db("budget_screen");
  Setup setup;
  screen_analytics(setup);
  FakeEvaluator evaluator;
  db::Store store(db.path);
  std::atomic<int> broken{0};
  const auto result = run_genome_search(
      setup.settings, setup.operators,
      [&](const EvalRequest& r) {
        if (fake_analytic(genome::genome_from_json(r.genome)).at("params") > 120000) ++broken;
        return evaluator(r);
      },
      store, setup.options);
  REQUIRE(result.finished);
  CHECK(broken == 0);
  int64_t rejected = 0;
  for (const auto& g : store.generations(result.run_id)) {
    rejected += g.rejected;
    int64_t by_metric = 0;
    for (const auto& [metric, count] : g.rejected_by.items()) {
      CHECK(metric == "params");
      by_metric += count.get<int64_t>();
    }
    CHECK(by_metric == g.rejected);
  }
  // The default space at d_model 64 draws many genomes over 120k parameters.
  CHECK(rejected > 0);
  CHECK(result.rejected == rejected);
}

TEST_CASE("a space that cannot meet an analytic constraint fails before any training, saying by how much") {
  TempDb db("budget_impossible");
  Setup setup;
  setup.settings.constraints = {{"params", std::nullopt, 1000.0}};
  setup.config["constraints"] = {{"params", {{"max", 1000}}}};
  screen_analytics(setup);
  setup.options.config_path = "tiny.json";
  FakeEvaluator evaluator;
  db::Store store(db.path);
  std::string message;
  try {
    run_search(setup, evaluator, store);
  } catch (const InputError& e) {
    message = e.what();
  }
  CAPTURE(message);
  CHECK(message.find("tiny.json: /constraints: no genome of this space has params <= 1000 after ") == 0);
  CHECK(message.find(" draws; the smallest drawn had params ") != std::string::npos);
  CHECK(evaluator.total == 0);
}

TEST_CASE("warm-start members are evaluated first and named, one over the budget is left out") {
  TempDb db("budget_warm");
  Setup setup;
  screen_analytics(setup);
  setup.options.warm_start = {warm("transformer", 64, 2), warm("lfm2", 64, 2), warm("striped-mamba", 64, 8)};
  setup.options.workers = 1;
  FakeEvaluator evaluator;
  db::Store store(db.path);
  const auto result = run_search(setup, evaluator, store, 0);
  const std::string transformer = genome::genome_hash(genome::preset("transformer", 64, 2));
  const std::string lfm2 = genome::genome_hash(genome::preset("lfm2", 64, 2));
  const std::string big = genome::genome_hash(genome::preset("striped-mamba", 64, 8));
  REQUIRE(fake_analytic(genome::preset("striped-mamba", 64, 8)).at("params") > 120000);
  const auto evaluations = store.evaluations(result.run_id);
  REQUIRE(evaluations.size() >= 2);
  CHECK(evaluations[0].genome_hash == transformer);
  CHECK(evaluations[1].genome_hash == lfm2);
  for (const auto& e : evaluations) CHECK(e.genome_hash != big);
  const auto labels = store.genome_labels(result.run_id);
  CHECK(labels.size() == 2);
  CHECK(labels.at(transformer) == "preset transformer");
  CHECK(labels.at(lfm2) == "preset lfm2");
  // The lineage says where they came from; the population is still full.
  CHECK(store.lineage(result.run_id, transformer)->operator_name == "warm start");
  CHECK(store.generation(result.run_id, 0)->population.size() == 8);
  CHECK(store.generation(result.run_id, 0)->rejected >= 1);  // the big preset at least
}

TEST_CASE("the final stage re-trains the front and the warm start at fidelity 1 over seeds, each once") {
  TempDb db("budget_final");
  Setup setup;
  with_final_stage(setup, 3, 3);
  FakeEvaluator evaluator;
  db::Store store(db.path);
  const auto result = run_search(setup, evaluator, store);
  REQUIRE(result.finished);
  const std::string transformer = genome::genome_hash(genome::preset("transformer", 64, 2));
  REQUIRE(result.finalists.size() >= 2);
  REQUIRE(result.finalists.size() <= 4);
  CHECK(result.finalists.back() == transformer);
  const auto last = store.generation(result.run_id, result.last_generation);
  std::set<std::string> front;
  for (const auto& m : last->population)
    if (m.rank == 0) front.insert(m.genome_hash);
  std::set<std::tuple<std::string, double, uint64_t>> seen;
  std::map<std::string, int> final_seeds;
  for (const auto& e : store.evaluations(result.run_id)) {
    CHECK(seen.insert({e.genome_hash, e.fidelity, e.seed}).second);  // never paid twice
    if (e.fidelity != 1.0) continue;
    CHECK(e.generation == result.last_generation + 1);
    CHECK(e.seed == evaluation_seed(11, e.genome_hash, final_seeds[e.genome_hash]));
    ++final_seeds[e.genome_hash];
  }
  CHECK(final_seeds.size() == result.finalists.size());
  for (const auto& hash : result.finalists) {
    CHECK(final_seeds[hash] == 2);
    CHECK((front.count(hash) || hash == transformer));
  }
  CHECK(result.final_table.size() == result.finalists.size() + 1);
  CHECK(result.final_table.back().find("2/2") != std::string::npos);
}

TEST_CASE("the final stage starts its longest trainings first, as their search-stage runs predict") {
  TempDb db("budget_final_order");
  Setup setup;
  with_final_stage(setup, 4, 1);  // one worker: calls in start order
  std::vector<std::string> lines;
  setup.options.log = [&](const std::string& line) { lines.push_back(line); };
  FakeEvaluator evaluator;
  evaluator.cost_grows_with_params = true;
  db::Store store(db.path);
  const auto result = run_search(setup, evaluator, store);
  REQUIRE(result.finished);
  // The stage's line says how long it should take: here (training linear in
  // the steps, one lane) exactly the sum of what its trainings then took.
  double stage_seconds = 0.0;
  for (const auto& e : store.evaluations(result.run_id))
    if (e.fidelity == 1.0) stage_seconds += e.wall_seconds;
  const std::string expected = "expected about " + format_duration(stage_seconds) + " on 1 lane";
  const auto stage_line = std::find_if(
      lines.begin(), lines.end(), [](const std::string& line) { return line.rfind("final stage:", 0) == 0; });
  REQUIRE(stage_line != lines.end());
  CHECK(stage_line->find(expected) != std::string::npos);
  REQUIRE(result.finalists.size() >= 3);
  const auto params_of = [&](const std::string& hash) {
    return genome::decode(genome::genome_from_json(store.genome(hash)->genome)).params_non_embedding();
  };
  // The finalists' own order is the front's (crowding, then the warm start):
  // here it is not already by size, so the ordering is what put it so.
  std::vector<int64_t> finalist_params;
  for (const auto& hash : result.finalists) finalist_params.push_back(params_of(hash));
  CHECK_FALSE(std::is_sorted(finalist_params.rbegin(), finalist_params.rend()));
  const auto& order = evaluator.full_fidelity_order;
  REQUIRE(order.size() == result.finalists.size() * 2);
  for (std::size_t i = 1; i < order.size(); ++i) CHECK(params_of(order[i - 1]) >= params_of(order[i]));
  // Nothing else changed: the results are the finalists' own, whatever the order.
  for (const auto& hash : result.finalists) CHECK(evaluator.calls[hash] >= 2);
}

TEST_CASE("expected_full_seconds scales a rung's training to fidelity 1 and keeps the rest") {
  Setup setup;
  setup.settings.fidelity = 0.25;  // one rung, at a quarter of the steps
  EvaluationLedger ledger;
  const std::string hash = "abc";
  db::EvaluationOutcome ok;
  ok.status = db::EvaluationStatus::ok;
  ok.wall_seconds = 3.0;
  ok.metrics["train_seconds"] = {2.0, ""};
  ledger.record({hash, 0.25, evaluation_seed(setup.settings.seed, hash)}, ok, 0);
  CHECK(expected_full_seconds(hash, ledger, setup.settings) == doctest::Approx(1.0 + 2.0 / 0.25));
  // Unknown and failed: infinity (they start first).
  CHECK(std::isinf(expected_full_seconds("never", ledger, setup.settings)));
  db::EvaluationOutcome failed;
  failed.status = db::EvaluationStatus::failed;
  failed.wall_seconds = 0.2;
  ledger.record({"bad", 0.25, evaluation_seed(setup.settings.seed, "bad")}, failed, 0);
  CHECK(std::isinf(expected_full_seconds("bad", ledger, setup.settings)));
}

TEST_CASE("expected_stage_seconds: each training on the lane that frees up first") {
  CHECK(expected_stage_seconds({}, 4) == 0.0);
  CHECK(expected_stage_seconds({3, 3, 2, 2, 2}, 2) == 7.0);  // 3+2+2 and 3+2
  CHECK(expected_stage_seconds({5, 1, 1}, 8) == 5.0);        // more lanes than trainings
  CHECK(expected_stage_seconds({4, 2, 2}, 1) == 8.0);
  CHECK(std::isinf(expected_stage_seconds({1, std::numeric_limits<double>::infinity()}, 2)));
}

TEST_CASE("at fidelity 1 the final stage reuses the search's own evaluation as its first seed") {
  TempDb db("budget_final_reuse");
  Setup setup;
  setup.settings.final_top = 2;
  setup.settings.final_seeds = 3;
  FakeEvaluator evaluator;
  db::Store store(db.path);
  const auto result = run_search(setup, evaluator, store);
  REQUIRE(result.finished);
  for (const auto& hash : result.finalists) CHECK(evaluator.calls[hash] == 3);  // search once + 2 more seeds
}

TEST_CASE("killed during the final stage, a resumed run ends with the uninterrupted run's final table") {
  auto configure = [](Setup& setup) { with_final_stage(setup, 3, 2); };
  TempDb reference_db("budget_final_reference");
  Setup reference_setup;
  configure(reference_setup);
  FakeEvaluator reference_evaluator;
  db::Store reference_store(reference_db.path);
  const auto reference = run_search(reference_setup, reference_evaluator, reference_store);
  REQUIRE(reference.finished);
  const int search_calls = reference_evaluator.total - static_cast<int>(reference.finalists.size()) * 2;
  REQUIRE(search_calls > 0);

  TempDb db("budget_final_killed");
  Setup setup;
  configure(setup);
  db::Store store(db.path);
  FakeEvaluator killed;
  killed.kill_after = search_calls + 3;  // inside the final stage
  CHECK_THROWS_AS(run_search(setup, killed, store), FakeEvaluator::SimulatedKill);
  setup.options.resume = true;
  FakeEvaluator resumed;
  const auto result = run_search(setup, resumed, store);
  REQUIRE(result.finished);
  CHECK(result.finalists == reference.finalists);
  CHECK(result.final_table == reference.final_table);
  CHECK(finished_of(store, result.run_id) == finished_of(reference_store, reference.run_id));
  // Only the final stage's missing replicates ran again (the kill lost the ones in flight).
  CHECK(resumed.total <= static_cast<int>(reference.finalists.size()) * 2 - 3 + 2);
}

TEST_CASE("finalize_run gives a run that ended without a final stage the same stage") {
  TempDb with_db("budget_finalize_with");
  Setup with;
  with.settings.final_top = 2;
  with.settings.final_seeds = 2;
  with.settings.fidelity = 0.5;
  FakeEvaluator with_evaluator;
  db::Store with_store(with_db.path);
  const auto reference = run_search(with, with_evaluator, with_store);

  TempDb db("budget_finalize");
  Setup setup;
  setup.settings.fidelity = 0.5;
  setup.settings.final_seeds = 0;
  FakeEvaluator evaluator;
  db::Store store(db.path);
  run_search(setup, evaluator, store);
  setup.settings.final_top = 2;
  setup.settings.final_seeds = 2;
  const auto finalized = finalize_run(
      setup.settings, [&](const EvalRequest& r) { return evaluator(r); }, store, setup.options);
  CHECK(finalized.finished);
  CHECK(finalized.finalists == reference.finalists);
  CHECK(finalized.evaluations_run == static_cast<int>(reference.finalists.size()) * 2);
  CHECK(finished_of(store, finalized.run_id) == finished_of(with_store, reference.run_id));
  // Again: nothing left to train.
  const auto again = finalize_run(
      setup.settings, [&](const EvalRequest& r) { return evaluator(r); }, store, setup.options);
  CHECK(again.evaluations_run == 0);
  CHECK(again.evaluations_reused == static_cast<int>(reference.finalists.size()) * 2);
}
