// Rungs of fidelity (successive halving, asynchronous as in ASHA) and the
// search over them: the promotion rule, the ranking of members that reached
// different rungs, and a killed run resuming to the uninterrupted one.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <tuple>

#include "genome_search_fixture.hpp"
#include "search/generation_schedule.hpp"
#include "search/rungs.hpp"

using namespace livs;
using namespace livs::search;
using livs::test::FakeEvaluator;
using livs::test::hashes_of;
using livs::test::run_search;
using livs::test::Setup;
using livs::test::TempDb;

namespace {

Fitness point(double a, double b, double violation = 0.0) { return {{a, b}, violation}; }
const double inf = std::numeric_limits<double>::infinity();

}  // namespace

TEST_CASE("a rung promotes its best 1/eta by constrained rank and crowding, never a failed result") {
  Rungs rungs({0.25, 1.0}, 3);
  rungs.add(0, "a", point(3, 3));
  rungs.add(0, "b", point(1, 1));
  CHECK_FALSE(rungs.next_promotion());  // 2 results: floor(2/3) = 0
  rungs.add(0, "c", point(2, 2));
  auto due = rungs.next_promotion();
  REQUIRE(due);
  CHECK(due->rung == 1);
  CHECK(due->hash == "b");  // dominates the others
  rungs.start(1, "b");
  CHECK_FALSE(rungs.next_promotion());  // b is taken at rung 1, the rung's one promotion

  // An infeasible result ranks after every feasible one, however good its objectives.
  rungs.add(0, "d", point(0.1, 0.1, 5.0));
  rungs.add(0, "e", point(2.5, 0.5));
  rungs.add(0, "f", point(inf, inf, inf));  // failed
  // 6 results: 2 promotions, the first front of the feasible {a, b, c, e} is {b, e}.
  due = rungs.next_promotion();
  REQUIRE(due);
  CHECK(due->hash == "e");
  rungs.add(1, "e", point(1, 1));
  CHECK(rungs.standing("e")->rung == 1);
  CHECK(rungs.standing("a")->rung == 0);
  CHECK_FALSE(rungs.standing("z"));

  // When only failed results are in the quota, nothing is promoted.
  Rungs failing({0.5, 1.0}, 2);
  failing.add(0, "x", point(inf, inf, inf));
  failing.add(0, "y", point(inf, inf, inf));
  CHECK_FALSE(failing.next_promotion());
}

TEST_CASE("a member that reached a higher rung ranks ahead of every lower-rung member") {
  std::vector<Individual<int>> population = {
      {0, {{1, 1}, 0.0, 0}},  // excellent, but only at rung 0
      {1, {{9, 9}, 0.0, 1}},  // poor, at rung 1
      {2, {{5, 5}, 0.0, 1}},  // dominates member 1 within rung 1
      {3, {{2, 2}, 0.0, 0}},
  };
  const auto keys = rank_and_crowding(population);
  CHECK(keys.rank[2] == 0);
  CHECK(keys.rank[1] == 1);
  CHECK(keys.rank[0] == 2);
  CHECK(keys.rank[3] == 3);
  // One rung: Deb's constrained sort, unchanged.
  for (auto& member : population) member.fitness.rung = 0;
  const auto flat = rank_and_crowding(population);
  CHECK(flat.rank[0] == 0);
  CHECK(flat.rank[2] == 2);
}

namespace {

struct RungRun {
  std::vector<std::vector<std::string>> populations;  // per generation
  std::vector<double> hypervolumes;
  std::map<std::tuple<std::string, double, std::string>, double> perplexity;  // (hash, fidelity, seed)
  std::map<double, std::set<std::string>> genomes_at;  // fidelity -> genomes finished there (ok or failed)
};

RungRun read_run(db::Store& store) {
  RungRun out;
  const auto run = store.run_by_name("test");
  for (const auto& g : store.generations(run->id)) {
    std::vector<std::string> hashes;
    for (const auto& m : g.population) hashes.push_back(m.genome_hash);
    out.populations.push_back(hashes);
    out.hypervolumes.push_back(g.hypervolume);
  }
  for (const auto& e : store.evaluations(run->id)) {
    if (e.status == db::EvaluationStatus::failed) out.genomes_at[e.fidelity].insert(e.genome_hash);
    if (e.status != db::EvaluationStatus::ok) continue;
    out.perplexity[{e.genome_hash, e.fidelity, std::to_string(e.seed)}] = e.metrics.at("perplexity").value;
    out.genomes_at[e.fidelity].insert(e.genome_hash);
  }
  return out;
}

void use_rungs(Setup& setup) {
  setup.config["search"]["fidelities"] = {0.25, 1.0};
  setup.config["search"]["eta"] = 3;
  setup.settings = parse_search_settings(JsonReader(setup.config, "test.json"));
  setup.options.config = setup.config;
}

}  // namespace

TEST_CASE("a search over rungs trains every candidate at the lowest fidelity and promotes about 1/eta") {
  TempDb db("rungs_search");
  Setup setup;
  use_rungs(setup);
  FakeEvaluator evaluator;
  db::Store store(db.path);
  const auto result = run_search(setup, evaluator, store);
  CHECK(result.finished);
  CHECK(evaluator.fidelities == std::set<double>{0.25, 1.0});
  const auto run = read_run(store);
  const auto& low = run.genomes_at.at(0.25);
  const auto& high = run.genomes_at.at(1.0);
  // Every promoted genome came through the lowest rung.
  for (const auto& hash : high) CHECK(low.count(hash));
  // At most floor(n/eta) promotions, and all of them made once the last
  // generation is done.
  MESSAGE(low.size() << " at 0.25, " << high.size() << " at 1.0");
  CHECK(high.size() == low.size() / 3);
  // The population holds its top-rung members first.
  const auto last = store.generations(store.run_by_name("test")->id).back();
  bool lower_seen = false;
  for (const auto& member : last.population) {
    const bool top = high.count(member.genome_hash) > 0;
    CHECK_FALSE((top && lower_seen));
    lower_seen = lower_seen || !top;
  }
  CHECK(run.hypervolumes.back() > 0.0);  // from the top-rung members
}

TEST_CASE("killed mid-rung, a search over rungs resumes to the state of the uninterrupted run") {
  Setup setup;
  use_rungs(setup);
  RungRun reference;
  int total = 0;
  {
    TempDb db("rungs_reference");
    FakeEvaluator evaluator;
    db::Store store(db.path);
    run_search(setup, evaluator, store);
    reference = read_run(store);
    total = evaluator.total;
  }
  // Kill at several points, among them promotions, and resume each time.
  for (const int kill_at : {total / 4, total / 2 + 1, (3 * total) / 4 + 2}) {
    CAPTURE(kill_at);
    TempDb db("rungs_killed");
    FakeEvaluator evaluator;
    Setup again;
    use_rungs(again);
    {
      db::Store store(db.path);
      evaluator.kill_after = kill_at;
      CHECK_THROWS_AS(run_search(again, evaluator, store), FakeEvaluator::SimulatedKill);
    }
    const int finished_before = evaluator.total - 1;
    db::Store store(db.path);
    again.options.resume = true;
    evaluator.kill_after = -1;
    const auto resumed = run_search(again, evaluator, store);
    CHECK(resumed.finished);
    // Nothing finished before the kill ran again: only the interrupted one.
    CHECK(evaluator.total - 1 == total);
    CHECK(finished_before <= total);
    const auto run = read_run(store);
    CHECK(run.populations == reference.populations);
    CHECK(run.hypervolumes == reference.hypervolumes);
    CHECK(run.perplexity == reference.perplexity);
  }
}

TEST_CASE("max_train_seconds ends the search stage once its evaluations have taken that long") {
  TempDb db("rungs_budget");
  Setup setup;
  use_rungs(setup);
  setup.settings.max_train_seconds = 6.0;  // the fake evaluation takes `fidelity` seconds
  FakeEvaluator evaluator;
  db::Store store(db.path);
  const auto result = run_search(setup, evaluator, store);
  CHECK(result.finished);
  double seconds = 0.0;
  for (const auto& e : store.evaluations(store.run_by_name("test")->id)) seconds += e.wall_seconds;
  CHECK(seconds >= 6.0);
  CHECK(seconds < 6.0 + 1.0);  // one worker: at most one evaluation started below the budget
  CHECK(result.last_generation < setup.settings.generations);
}
