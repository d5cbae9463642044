#include <doctest/doctest.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>

#include "genome/decode.hpp"
#include "genome/genome_json.hpp"
#include "genome_search_fixture.hpp"
#include "search/genome_search.hpp"

using namespace livs;
using namespace livs::search;
using namespace livs::test;

TEST_CASE("genome search records every evaluation, generation and lineage, and evaluates each hash once") {
  TempDb db("genome_search_full");
  Setup setup;
  FakeEvaluator evaluator;
  db::Store store(db.path);
  const auto result = run_search(setup, evaluator, store);
  CHECK(result.finished);
  CHECK(result.last_generation == 5);
  CHECK(result.population.size() == 8);
  CHECK(result.hypervolume > 0.0);

  for (const auto& [hash, count] : evaluator.calls) CHECK(count == 1);
  const auto evaluations = store.evaluations(result.run_id);
  CHECK(evaluations.size() == evaluator.calls.size());
  CHECK(static_cast<int>(evaluations.size()) == result.evaluations_run);
  CHECK(evaluations.size() > 8 + 5 * 4);  // mostly new genomes each generation
  bool some_failed = false;
  for (const auto& e : evaluations) {
    CHECK(e.status != db::EvaluationStatus::running);
    CHECK(e.seed == evaluation_seed(11, e.genome_hash));
    CHECK(store.genome(e.genome_hash).has_value());
    const auto lineage = store.lineage(result.run_id, e.genome_hash);
    REQUIRE(lineage.has_value());
    CHECK((e.generation == 0) == lineage->parent_hashes.empty());
    if (e.status == db::EvaluationStatus::failed) {
      some_failed = true;
      CHECK(e.error == "loss is not finite");
    } else {
      CHECK(e.metrics.at("cache_bytes").unit == "bytes");
      CHECK(e.metrics.at("params").unit == "count");
    }
  }
  CHECK(some_failed);  // hashes starting with 'f' exercise the failure path

  const auto generations = store.generations(result.run_id);
  REQUIRE(generations.size() == 6);
  for (const auto& g : generations) {
    CHECK(g.population.size() == 8);
    CHECK(g.hypervolume_reference.size() == 2);
  }
  CHECK(generations.back().hypervolume == doctest::Approx(result.hypervolume));
  CHECK(generations.back().hypervolume >= generations.front().hypervolume);
  // The survivors are the best of everything: no failed genome survives
  // while enough succeeded, and the recorded ranks start at the front.
  CHECK(generations.back().population[0].rank == 0);
  CHECK(store.run_by_id(result.run_id)->status == db::RunStatus::finished);

  // Running it again without --resume is refused; with it, nothing is re-run.
  CHECK_THROWS_AS(run_search(setup, evaluator, store), InputError);
  setup.options.resume = true;
  const int before = evaluator.total;
  const auto again = run_search(setup, evaluator, store);
  CHECK(evaluator.total == before);
  CHECK(hashes_of(again.population) == hashes_of(result.population));
  // A different config cannot resume the run.
  setup.options.config["search"]["population"] = 9;
  CHECK_THROWS_AS(run_search(setup, evaluator, store), InputError);
}

TEST_CASE("a run stopped and a run killed mid-generation resume to the uninterrupted run's final front") {
  TempDb reference_db("genome_search_reference");
  TempDb killed_db("genome_search_killed");
  Setup setup;
  setup.options.workers = 2;

  FakeEvaluator reference_evaluator;
  std::vector<std::string> reference_front;
  std::map<std::string, double> reference_perplexity;
  {
    db::Store store(reference_db.path);
    reference_front = hashes_of(run_search(setup, reference_evaluator, store).population);
    for (const auto& e : store.evaluations(store.run_by_name("test")->id))
      if (e.status == db::EvaluationStatus::ok)
        reference_perplexity[e.genome_hash] = e.metrics.at("perplexity").value;
  }

  FakeEvaluator evaluator;
  {  // Stopped cleanly after generation 1.
    db::Store store(killed_db.path);
    const auto partial = run_search(setup, evaluator, store, 1);
    CHECK_FALSE(partial.finished);
    CHECK(partial.last_generation == 1);
  }
  int finished_before_kill = 0;
  {  // Killed in the middle of generation 3: the evaluate call throws past the search.
    db::Store store(killed_db.path);
    setup.options.resume = true;
    evaluator.kill_after = evaluator.total + 8 + 3;  // all of generation 2, part of generation 3
    CHECK_THROWS_AS(run_search(setup, evaluator, store), FakeEvaluator::SimulatedKill);
    const auto run = store.run_by_name("test");
    CHECK(store.latest_generation(run->id) == 2);
    const auto counts = store.evaluation_counts(run->id);
    CHECK(counts.running >= 1);  // the one in flight when it died
    finished_before_kill = static_cast<int>(counts.ok + counts.failed);
  }
  {  // Resumed: finished evaluations are kept, the interrupted one runs again.
    db::Store store(killed_db.path);
    evaluator.kill_after = -1;
    const auto calls_before = evaluator.calls;
    const auto resumed = run_search(setup, evaluator, store);
    CHECK(resumed.finished);
    CHECK(resumed.evaluations_reused > 0);
    CHECK(hashes_of(resumed.population) == reference_front);

    const auto run = store.run_by_name("test");
    const auto counts = store.evaluation_counts(run->id);
    CHECK(counts.running == 0);
    CHECK(counts.interrupted >= 1);
    CHECK(counts.ok + counts.failed >= finished_before_kill);
    // No genome that had finished before the kill was evaluated again.
    for (const auto& [hash, count] : evaluator.calls) {
      const auto before = calls_before.find(hash);
      if (before != calls_before.end() && count > before->second) {
        // Only an interrupted evaluation may run twice.
        bool was_interrupted = false;
        for (const auto& e : store.evaluations(run->id))
          was_interrupted =
              was_interrupted || (e.genome_hash == hash && e.status == db::EvaluationStatus::interrupted);
        CHECK(was_interrupted);
      }
    }
    // Same evaluations, same numbers as the uninterrupted run.
    std::map<std::string, double> perplexity;
    for (const auto& e : store.evaluations(run->id))
      if (e.status == db::EvaluationStatus::ok) perplexity[e.genome_hash] = e.metrics.at("perplexity").value;
    CHECK(perplexity == reference_perplexity);
  }
}

TEST_CASE("max_evaluations stops at a generation boundary, aging and random search run through the driver") {
  for (const char* algorithm : {"aging", "random"}) {
    CAPTURE(algorithm);
    TempDb db(std::string("genome_search_") + algorithm);
    Setup setup;
    setup.config["search"]["algorithm"] = algorithm;
    setup.config["search"]["max_evaluations"] = 20;
    setup.options.config = setup.config;
    setup.settings = parse_search_settings(JsonReader(setup.config, "test.json"));
    FakeEvaluator evaluator;
    db::Store store(db.path);
    const auto result = run_search(setup, evaluator, store);
    // 8 initial + 8 per generation: generation 2 ends at 24 >= 20, so generation 3 never starts.
    CHECK(result.last_generation == 2);
    CHECK(result.population.size() == 8);
    CHECK(static_cast<int>(store.evaluations(result.run_id).size()) <= 24);
  }
}

TEST_CASE("the search's fidelity reaches every request and every record") {
  TempDb db("genome_search_fidelity");
  Setup setup;
  setup.config["search"]["fidelity"] = 0.25;
  setup.config["search"]["generations"] = 1;
  setup.options.config = setup.config;
  setup.settings = parse_search_settings(JsonReader(setup.config, "test.json"));
  FakeEvaluator evaluator;
  db::Store store(db.path);
  const auto result = run_search(setup, evaluator, store);
  CHECK(evaluator.fidelities == std::set<double>{0.25});
  const auto records = store.evaluations(result.run_id);
  REQUIRE(!records.empty());
  for (const auto& record : records) CHECK(record.fidelity == 0.25);
}

TEST_CASE("hypervolume box: configured, known and derived bounds") {
  SearchSettings settings;
  settings.objectives = {{"perplexity", Direction::minimise},
                         {"accuracy", Direction::maximise},
                         {"beauty", Direction::minimise}};
  const std::vector<std::vector<double>> initial = {{20, -0.5, 3}, {40, -0.25, 1}};
  auto box = hypervolume_box(settings, initial);
  CHECK(box.ideal == std::vector<double>{1.0, -1.0, 1.0});  // known, known, best seen
  CHECK(box.reference[0] == doctest::Approx(40 + 0.1 * 39));
  CHECK(box.reference[1] == doctest::Approx(-0.25 + 0.1 * 0.75));
  CHECK(box.reference[2] == doctest::Approx(3 + 0.1 * 2));
  settings.hypervolume_reference = std::vector<double>{100, 0.0, 10};
  box = hypervolume_box(settings, initial);
  CHECK(box.reference == std::vector<double>{100, -0.0, 10});
  // A point at the ideal covers the whole box; infeasible points count for nothing.
  CHECK(population_hypervolume({{{1.0, -1.0, 1.0}, 0.0}}, box) == doctest::Approx(1.0));
  CHECK(population_hypervolume({{{1.0, -1.0, 1.0}, 0.5}}, box) == 0.0);
}

TEST_CASE("an objective no evaluation reports is an error naming the config's pointer") {
  TempDb db("genome_search_unmeasured");
  Setup setup;
  setup.config["objectives"][1] = "decode_ms";
  setup.options.config = setup.config;
  setup.options.config_path = "test.json";
  setup.settings = parse_search_settings(JsonReader(setup.config, "test.json"));
  FakeEvaluator evaluator;
  db::Store store(db.path);
  try {
    run_search(setup, evaluator, store);
    FAIL("expected an InputError");
  } catch (const InputError& e) {
    CHECK(std::string(e.what()).find(
              "test.json: /objectives/1: no evaluation reports a metric \"decode_ms\"") == 0);
  }
}

TEST_CASE(
    "a stop request finishes the evaluations in flight, marks the run interrupted, and resume completes it") {
  TempDb reference_db("genome_search_stop_reference");
  TempDb stopped_db("genome_search_stopped");
  Setup setup;
  setup.options.workers = 2;
  FakeEvaluator reference_evaluator;
  std::vector<std::string> reference_front;
  {
    db::Store store(reference_db.path);
    reference_front = hashes_of(run_search(setup, reference_evaluator, store).population);
  }
  FakeEvaluator evaluator;
  {
    db::Store store(stopped_db.path);
    setup.options.stop_requested = [&] { return evaluator.total >= 13; };  // in generation 1
    const auto stopped = run_search(setup, evaluator, store);
    CHECK(stopped.stopped);
    CHECK_FALSE(stopped.finished);
    CHECK(stopped.last_generation == 0);
    const auto run = store.run_by_name("test");
    CHECK(run->status == db::RunStatus::interrupted);
    const auto counts = store.evaluation_counts(run->id);
    CHECK(counts.running == 0);  // nothing left half-done
    CHECK(counts.ok + counts.failed == evaluator.total);
  }
  {
    db::Store store(stopped_db.path);
    setup.options.stop_requested = {};
    setup.options.resume = true;
    const auto resumed = run_search(setup, evaluator, store);
    CHECK(resumed.finished);
    CHECK(hashes_of(resumed.population) == reference_front);
    CHECK(evaluator.total == reference_evaluator.total);  // nothing evaluated twice
    CHECK(store.run_by_name("test")->status == db::RunStatus::finished);
  }
}

TEST_CASE("a generation 0 that fails whole with one error stops the run with it, distinct errors do not") {
  const auto failing = [](std::function<std::string(const EvalRequest&)> error_of) {
    return [error_of](const EvalRequest& request) {
      EvalResult result;
      result.status = EvalStatus::failed;
      result.device = request.device;
      result.error = error_of(request);
      return result;
    };
  };
  {
    TempDb db("genome_search_all_failed_alike");
    Setup setup;
    db::Store store(db.path);
    std::string message;
    try {
      run_genome_search(setup.settings, setup.operators, failing([](const EvalRequest&) {
                          return std::string("CUDA error: no kernel image");
                        }),
                        store, setup.options);
    } catch (const std::runtime_error& e) {
      message = e.what();
    }
    CHECK(message.find("every candidate of generation 0") != std::string::npos);
    CHECK(message.find("CUDA error: no kernel image") != std::string::npos);
    const auto run = store.run_by_name(setup.options.run_name);
    REQUIRE(run.has_value());
    CHECK(run->status == db::RunStatus::interrupted);
    CHECK(store.evaluations(run->id).size() >= 2);  // the failures are kept, with their reason
  }
  {
    TempDb db("genome_search_all_failed_apart");
    Setup setup;
    db::Store store(db.path);
    // Each candidate's own failure: the search goes on (and finds nothing).
    const auto result = run_genome_search(setup.settings, setup.operators, failing([](const EvalRequest& r) {
                                            return "loss is not finite in " + r.genome_hash;
                                          }),
                                          store, setup.options);
    CHECK(result.finished);
  }
}
