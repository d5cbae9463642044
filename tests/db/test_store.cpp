// Round trips of every write through the Store and back through a Reader.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <map>

#include "common/input_error.hpp"
#include "db/store.hpp"
#include "temp_dir.hpp"

using namespace livs;
using namespace livs::db;

namespace {

const std::string kHashA = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
const std::string kHashB = "a1b2ffff00000000000000000000000000000000000000000000000000000000";
const std::string kHashC = "c0ffee0000000000000000000000000000000000000000000000000000000000";

Json genome_json(int layers) {
  Json g;
  g["d_model"] = 128;
  g["slots"] = Json::array();
  for (int i = 0; i < layers; ++i) g["slots"].push_back(Json{{"class", i % 2 ? "swiglu" : "sa"}});
  return g;
}

}  // namespace

TEST_CASE("runs: created once, reopened by name, status updated") {
  test::TempDir dir;
  std::string path = dir.file("runs.db");
  Json config = {{"name", "quick"}, {"objectives", {"perplexity", "cache_bytes"}}, {"seed", 7}};
  Store store(path);
  auto first = store.create_or_open_run("quick", config, 18446744073709551615ull);
  CHECK(first.created);
  CHECK(first.run.name == "quick");
  CHECK(first.run.config == config);
  CHECK(first.run.seed == 18446744073709551615ull);  // full uint64 range survives
  CHECK(first.run.status == RunStatus::running);
  CHECK(first.run.tool_version == kToolVersion);
  CHECK(first.run.created_at.size() == 24);  // 2026-11-23T18:43:25.123Z
  CHECK(first.run.created_at.back() == 'Z');

  auto again = store.create_or_open_run("quick", Json::object(), 1);
  CHECK(!again.created);
  CHECK(again.run.id == first.run.id);
  CHECK(again.run.config == config);  // the stored run is returned unchanged
  CHECK(again.run.seed == 18446744073709551615ull);

  auto other = store.create_or_open_run("other", Json::object(), 3);
  CHECK(other.created);
  store.set_run_status(first.run.id, RunStatus::finished);
  CHECK_THROWS_AS(store.set_run_status(9999, RunStatus::finished), std::invalid_argument);

  Reader reader(path);
  auto runs = reader.runs();
  REQUIRE(runs.size() == 2);
  CHECK(runs[0].name == "quick");
  CHECK(runs[0].status == RunStatus::finished);
  CHECK(runs[1].name == "other");
  CHECK(reader.run_by_name("other")->seed == 3);
  CHECK(!reader.run_by_name("nope"));
  CHECK(reader.resolve_run("").name == "other");  // most recent by default
  CHECK(reader.resolve_run("quick").id == first.run.id);
  try {
    reader.resolve_run("nope");
    FAIL("expected an InputError");
  } catch (const InputError& e) {
    std::string message = e.what();
    CHECK(message.find(path) != std::string::npos);
    CHECK(message.find("no run named 'nope' (runs: quick, other)") != std::string::npos);
  }
}

TEST_CASE("an empty database has no run to resolve") {
  test::TempDir dir;
  std::string path = dir.file("empty.db");
  { Store store(path); }
  Reader reader(path);
  CHECK(reader.runs().empty());
  CHECK_THROWS_WITH_AS(reader.resolve_run(""), doctest::Contains("holds no runs"), InputError);
}

TEST_CASE("genomes: upsert keeps the canonical JSON, refines the summary, finds unique prefixes") {
  test::TempDir dir;
  std::string path = dir.file("genomes.db");
  Store store(path);
  store.upsert_genome(kHashA, genome_json(2), "d128 L2 | sa swiglu");
  store.upsert_genome(kHashA, genome_json(2), "d128 L2 | sa(4) swiglu");
  store.upsert_genome(kHashB, genome_json(4), "b");
  store.upsert_genome(kHashC, genome_json(6), "c");

  Reader reader(path);
  auto a = reader.genome(kHashA);
  REQUIRE(a);
  CHECK(a->genome == genome_json(2));
  CHECK(a->genome.dump() == genome_json(2).dump());  // key order preserved
  CHECK(a->summary == "d128 L2 | sa(4) swiglu");
  CHECK(!reader.genome("0000"));

  CHECK(reader.genome_by_prefix("c0ffee").hash == kHashC);
  CHECK(reader.genome_by_prefix("C0FFEE").hash == kHashC);  // hex is case-insensitive
  CHECK(reader.genome_by_prefix(kHashA).hash == kHashA);
  CHECK(reader.genome_by_prefix("a1b2c").hash == kHashA);
  CHECK_THROWS_WITH_AS(reader.genome_by_prefix("a1b2"), doctest::Contains("ambiguous"), InputError);
  CHECK_THROWS_WITH_AS(reader.genome_by_prefix("a1b2"), doctest::Contains(kHashB.c_str()), InputError);
  CHECK_THROWS_WITH_AS(reader.genome_by_prefix("dddd"), doctest::Contains("no genome with hash 'dddd'"),
                       InputError);
  CHECK_THROWS_WITH_AS(reader.genome_by_prefix("a1"), doctest::Contains("at least 4 hexadecimal"),
                       InputError);
  CHECK_THROWS_WITH_AS(reader.genome_by_prefix("a1b2%"), doctest::Contains("hexadecimal"), InputError);
}

TEST_CASE("evaluations: begin, heartbeat, finish with metrics and units, counts") {
  test::TempDir dir;
  std::string path = dir.file("evals.db");
  Store store(path);
  auto run = store.create_or_open_run("r", Json::object(), 42).run;
  store.upsert_genome(kHashA, genome_json(2), "a");
  store.upsert_genome(kHashB, genome_json(4), "b");

  int64_t ok_id = store.begin_evaluation({run.id, kHashA, 0, 0.25, "cpu", 1234567890123ull});
  int64_t failed_id = store.begin_evaluation({run.id, kHashB, 1, 1.0, "cuda:0", 5});
  int64_t running_id = store.begin_evaluation({run.id, kHashA, 1, 1.0, "cpu", 6});
  CHECK(ok_id != failed_id);

  auto started = store.evaluation(running_id);
  REQUIRE(started);
  CHECK(started->status == EvaluationStatus::running);
  CHECK(started->finished_at.empty());
  CHECK(started->heartbeat_at == started->started_at);
  store.heartbeat(running_id);
  CHECK(store.evaluation(running_id)->heartbeat_at >= started->heartbeat_at);

  EvaluationOutcome ok;
  ok.status = EvaluationStatus::ok;
  ok.metrics["perplexity"] = {5.25, ""};
  ok.metrics["cache_bytes"] = {65536, "bytes"};
  ok.metrics["decode_ms"] = {0.125, "ms"};
  ok.metrics["undefined"] = {std::numeric_limits<double>::quiet_NaN(), ""};
  ok.metrics["unbounded"] = {std::numeric_limits<double>::infinity(), ""};
  ok.wall_seconds = 12.5;
  store.finish_evaluation(ok_id, ok);

  EvaluationOutcome failed;
  failed.status = EvaluationStatus::failed;
  failed.error = "non-finite loss at step 17";
  store.finish_evaluation(failed_id, failed);
  EvaluationOutcome bad;
  bad.status = EvaluationStatus::running;
  CHECK_THROWS_AS(store.finish_evaluation(running_id, bad), std::invalid_argument);
  CHECK_THROWS_AS(store.finish_evaluation(99999, ok), std::invalid_argument);

  Reader reader(path);
  auto all = reader.evaluations(run.id);
  REQUIRE(all.size() == 3);
  const auto& e = all[0];
  CHECK(e.id == ok_id);
  CHECK(e.genome_hash == kHashA);
  CHECK(e.generation == 0);
  CHECK(e.fidelity == 0.25);
  CHECK(e.seed == 1234567890123ull);
  CHECK(e.device == "cpu");
  CHECK(e.status == EvaluationStatus::ok);
  CHECK(!e.finished_at.empty());
  CHECK(e.wall_seconds == 12.5);
  REQUIRE(e.metrics.size() == 5);
  CHECK(e.metrics.at("perplexity").value == 5.25);
  CHECK(e.metrics.at("cache_bytes").value == 65536);
  CHECK(e.metrics.at("cache_bytes").unit == "bytes");
  CHECK(e.metrics.at("decode_ms").unit == "ms");
  CHECK(std::isnan(e.metrics.at("undefined").value));
  CHECK(std::isinf(e.metrics.at("unbounded").value));
  CHECK(all[1].status == EvaluationStatus::failed);
  CHECK(all[1].error == "non-finite loss at step 17");
  CHECK(all[1].device == "cuda:0");
  CHECK(all[1].metrics.empty());
  CHECK(all[2].status == EvaluationStatus::running);

  auto counts = reader.evaluation_counts(run.id);
  CHECK(counts.ok == 1);
  CHECK(counts.failed == 1);
  CHECK(counts.running == 1);
  CHECK(counts.interrupted == 0);
  CHECK(counts.total() == 3);

  auto finished = reader.finished_evaluation(run.id, kHashA, 0.25);
  REQUIRE(finished);
  CHECK(finished->id == ok_id);
  CHECK(!reader.finished_evaluation(run.id, kHashA, 1.0));  // that one is still running
  CHECK(reader.finished_evaluation(run.id, kHashB, 1.0)->status == EvaluationStatus::failed);
  CHECK(reader.evaluations_of_genome(kHashA).size() == 2);
}

TEST_CASE("an evaluation of an unknown genome or run is refused by the foreign keys") {
  test::TempDir dir;
  Store store(dir.file("fk.db"));
  auto run = store.create_or_open_run("r", Json::object(), 1).run;
  CHECK_THROWS_AS(store.begin_evaluation({run.id, kHashA, 0, 1.0, "cpu", 0}), DatabaseError);
  store.upsert_genome(kHashA, genome_json(2), "a");
  CHECK_THROWS_AS(store.begin_evaluation({run.id + 1, kHashA, 0, 1.0, "cpu", 0}), DatabaseError);
}

TEST_CASE("generations: population with rank and crowding, hypervolume history, replaced on rewrite") {
  test::TempDir dir;
  std::string path = dir.file("generations.db");
  Store store(path);
  auto run = store.create_or_open_run("r", Json::object(), 1).run;
  for (const auto& h : {kHashA, kHashB, kHashC}) store.upsert_genome(h, genome_json(2), "");
  const double inf = std::numeric_limits<double>::infinity();

  GenerationRecord g0;
  g0.generation = 0;
  g0.hypervolume = 0.5;
  g0.hypervolume_reference = Json::array({1.1, 1.1});
  g0.population = {{kHashA, 0, inf}, {kHashB, 0, inf}, {kHashC, 1, 0.75}};
  store.record_generation(run.id, g0);
  GenerationRecord g1 = g0;
  g1.generation = 1;
  g1.hypervolume = 0.25;  // to be replaced below
  store.record_generation(run.id, g1);
  g1.hypervolume = 0.625;
  g1.population = {{kHashC, 0, inf}, {kHashA, 1, 2.0}};
  store.record_generation(run.id, g1);

  Reader reader(path);
  auto generations = reader.generations(run.id);
  REQUIRE(generations.size() == 2);
  CHECK(generations[0].hypervolume_reference == Json::array({1.1, 1.1}));
  REQUIRE(generations[0].population.size() == 3);
  CHECK(generations[0].population[0].genome_hash == kHashA);
  CHECK(std::isinf(generations[0].population[0].crowding));
  CHECK(generations[0].population[2].rank == 1);
  CHECK(generations[0].population[2].crowding == 0.75);
  REQUIRE(generations[1].population.size() == 2);  // the rewrite replaced, not appended
  CHECK(generations[1].population[0].genome_hash == kHashC);
  CHECK(generations[1].population[1].crowding == 2.0);
  CHECK(reader.latest_generation(run.id) == 1);
  CHECK(!reader.latest_generation(run.id + 1));
  CHECK(reader.generation(run.id, 0)->population.size() == 3);
  CHECK(!reader.generation(run.id, 7));
  auto history = reader.hypervolume_history(run.id);
  REQUIRE(history.size() == 2);
  CHECK(history[0].generation == 0);
  CHECK(history[0].hypervolume == 0.5);
  CHECK(history[1].hypervolume == 0.625);
}

TEST_CASE("lineage: parents in order and operator, per run") {
  test::TempDir dir;
  std::string path = dir.file("lineage.db");
  Store store(path);
  auto r1 = store.create_or_open_run("one", Json::object(), 1).run;
  auto r2 = store.create_or_open_run("two", Json::object(), 2).run;
  for (const auto& h : {kHashA, kHashB, kHashC}) store.upsert_genome(h, genome_json(2), "");
  store.record_lineage({r1.id, kHashA, 0, {}, "sample"});
  store.record_lineage({r1.id, kHashC, 3, {kHashB, kHashA}, "crossover+mutate"});
  store.record_lineage({r2.id, kHashC, 1, {kHashA}, "mutate"});
  store.record_lineage({r2.id, kHashC, 2, {kHashB}, "mutate"});  // replaces run two's record

  Reader reader(path);
  auto sampled = reader.lineage(r1.id, kHashA);
  REQUIRE(sampled);
  CHECK(sampled->parent_hashes.empty());
  CHECK(sampled->operator_name == "sample");
  auto c = reader.lineage(kHashC);
  REQUIRE(c.size() == 2);
  CHECK(c[0].run_id == r1.id);
  CHECK(c[0].generation == 3);
  CHECK(c[0].parent_hashes == std::vector<std::string>{kHashB, kHashA});
  CHECK(c[0].operator_name == "crossover+mutate");
  CHECK(c[1].run_id == r2.id);
  CHECK(c[1].generation == 2);
  CHECK(c[1].parent_hashes == std::vector<std::string>{kHashB});
  CHECK(!reader.lineage(r2.id, kHashA));
}

TEST_CASE("resume: evaluations left running by a dead writer are marked interrupted, finished ones kept") {
  test::TempDir dir;
  std::string path = dir.file("resume.db");
  int64_t run_id = 0, done_id = 0, lost_id = 0, other_run_eval = 0;
  {
    Store store(path);
    run_id = store.create_or_open_run("r", Json::object(), 1).run.id;
    auto other = store.create_or_open_run("other", Json::object(), 1).run.id;
    store.upsert_genome(kHashA, genome_json(2), "");
    store.upsert_genome(kHashB, genome_json(2), "");
    done_id = store.begin_evaluation({run_id, kHashA, 0, 1.0, "cpu", 1});
    lost_id = store.begin_evaluation({run_id, kHashB, 0, 1.0, "cpu", 2});
    store.begin_evaluation({run_id, kHashB, 0, 0.5, "cpu", 3});
    other_run_eval = store.begin_evaluation({other, kHashA, 0, 1.0, "cpu", 4});
    EvaluationOutcome ok;
    ok.metrics["perplexity"] = {3.5, ""};
    store.finish_evaluation(done_id, ok);
  }  // the writer goes away with two evaluations of "r" still running

  Store resumed(path);
  auto opened = resumed.create_or_open_run("r", Json::object(), 1);
  CHECK(!opened.created);
  CHECK(resumed.mark_running_interrupted(run_id) == 2);
  CHECK(resumed.mark_running_interrupted(run_id) == 0);
  auto counts = resumed.evaluation_counts(run_id);
  CHECK(counts.ok == 1);
  CHECK(counts.running == 0);
  CHECK(counts.interrupted == 2);
  auto lost = resumed.evaluation(lost_id);
  CHECK(lost->status == EvaluationStatus::interrupted);
  CHECK(!lost->finished_at.empty());
  CHECK(lost->error.find("interrupted") != std::string::npos);
  CHECK(resumed.evaluation(done_id)->metrics.at("perplexity").value == 3.5);
  CHECK(resumed.evaluation(other_run_eval)->status == EvaluationStatus::running);  // other runs untouched
  // The interrupted one is evaluated again and counted as done.
  CHECK(!resumed.finished_evaluation(run_id, kHashB, 1.0));
  int64_t rerun = resumed.begin_evaluation({run_id, kHashB, 0, 1.0, "cpu", 2});
  resumed.finish_evaluation(rerun, EvaluationOutcome{});
  CHECK(resumed.finished_evaluation(run_id, kHashB, 1.0)->id == rerun);
}

TEST_CASE("hostile strings are bound, never pasted into SQL, and come back verbatim") {
  test::TempDir dir;
  std::string path = dir.file("hostile.db");
  const std::vector<std::string> hostile = {
      "'); DROP TABLE runs; --",
      "\" OR 1=1 --",
      "Robert'); DELETE FROM evaluations WHERE ('1'='1",
      "x' || (SELECT sqlite_version()) || '",
      "?1 ?2 :name @p $v",
      "back\\slash\ttab\nnewline",
      "ünïcødé ✓ 日本語",
      "%_ LIKE wildcards",
      "",
  };
  Store store(path);
  int i = 0;
  for (const auto& text : hostile) {
    ++i;
    std::string hash = std::string(63, '0') + std::to_string(i);
    hash = hash.substr(hash.size() - 64);
    Json config = {{"name", text}, {text, text}};
    auto run = store.create_or_open_run(text, config, 9).run;
    store.upsert_genome(hash, Json{{"note", text}}, text);
    int64_t id = store.begin_evaluation({run.id, hash, 0, 1.0, text, 1});
    EvaluationOutcome outcome;
    outcome.status = EvaluationStatus::failed;
    outcome.error = text;
    outcome.metrics[text + "metric"] = {1.5, text};
    store.finish_evaluation(id, outcome);
    store.record_lineage({run.id, hash, 0, {text}, text});
  }

  Reader reader(path);
  auto runs = reader.runs();
  REQUIRE(runs.size() == hostile.size());
  i = 0;
  for (const auto& text : hostile) {
    ++i;
    CAPTURE(text);
    std::string hash = std::string(63, '0') + std::to_string(i);
    hash = hash.substr(hash.size() - 64);
    auto run = reader.run_by_name(text);
    REQUIRE(run);
    CHECK(run->config.at(text) == text);
    auto genome = reader.genome(hash);
    REQUIRE(genome);
    CHECK(genome->summary == text);
    CHECK(genome->genome.at("note") == text);
    auto evaluations = reader.evaluations(run->id);
    REQUIRE(evaluations.size() == 1);
    CHECK(evaluations[0].device == text);
    CHECK(evaluations[0].error == text);
    CHECK(evaluations[0].metrics.at(text + "metric").unit == text);
    auto lineage = reader.lineage(run->id, hash);
    REQUIRE(lineage);
    CHECK(lineage->operator_name == text);
    CHECK(lineage->parent_hashes == std::vector<std::string>{text});
  }
}

TEST_CASE("transactions: nothing reaches the file until commit, rollback on scope exit, nesting") {
  test::TempDir dir;
  std::string path = dir.file("tx.db");
  Store store(path);
  auto run = store.create_or_open_run("r", Json::object(), 1).run;
  {
    Store::Transaction tx(store);
    store.upsert_genome(kHashA, genome_json(2), "rolled back");
    CHECK(store.genome(kHashA));  // the writer sees its own work
  }
  CHECK(!store.genome(kHashA));
  {
    Store::Transaction outer(store);
    store.upsert_genome(kHashA, genome_json(2), "kept");
    {
      Store::Transaction inner(store);
      store.upsert_genome(kHashB, genome_json(2), "inner, rolled back");
    }
    {
      Store::Transaction inner(store);
      store.upsert_genome(kHashC, genome_json(2), "inner, committed");
      // finish_evaluation uses its own savepoint inside ours
      int64_t id = store.begin_evaluation({run.id, kHashC, 0, 1.0, "cpu", 1});
      store.finish_evaluation(id, EvaluationOutcome{});
      inner.commit();
    }
    Reader reader(path);  // another connection sees none of it yet
    CHECK(!reader.genome(kHashA));
    CHECK(!reader.genome(kHashC));
    outer.commit();
    CHECK(reader.genome(kHashA));
    CHECK(reader.genome(kHashC));
    CHECK(!reader.genome(kHashB));
    CHECK(reader.evaluation_counts(run.id).ok == 1);
  }
}

TEST_CASE("ok evaluations at one fidelity (every seed), and the fidelities a run has with counts") {
  test::TempDir dir;
  std::string path = dir.file("candidates.db");
  Store store(path);
  auto run = store.create_or_open_run("r", Json::object(), 1).run;
  auto other = store.create_or_open_run("other", Json::object(), 1).run;
  for (const auto& h : {kHashA, kHashB, kHashC}) store.upsert_genome(h, genome_json(2), "");
  auto evaluate = [&](int64_t run_id, const std::string& hash, double fidelity, uint64_t seed,
                      EvaluationStatus status, double perplexity) {
    int64_t id = store.begin_evaluation({run_id, hash, 0, fidelity, "cpu", seed});
    if (status == EvaluationStatus::running) return id;
    EvaluationOutcome outcome;
    outcome.status = status;
    outcome.metrics["perplexity"] = {perplexity, ""};
    store.finish_evaluation(id, outcome);
    return id;
  };
  int64_t a_low = evaluate(run.id, kHashA, 0.25, 11, EvaluationStatus::ok, 9.0);
  int64_t a1 = evaluate(run.id, kHashA, 1.0, 11, EvaluationStatus::ok, 4.0);
  int64_t a2 = evaluate(run.id, kHashA, 1.0, 12, EvaluationStatus::ok, 4.5);
  int64_t b_low = evaluate(run.id, kHashB, 0.25, 21, EvaluationStatus::ok, 3.0);
  evaluate(run.id, kHashB, 0.5, 21, EvaluationStatus::failed, 1.0);  // a fidelity with nothing ok
  evaluate(run.id, kHashC, 1.0, 31, EvaluationStatus::failed, 1.0);
  evaluate(run.id, kHashC, 1.0, 32, EvaluationStatus::running, 1.0);
  int64_t a1_again = evaluate(run.id, kHashA, 1.0, 11, EvaluationStatus::ok, 4.25);  // seed 11 once more
  int64_t other_run = evaluate(other.id, kHashC, 0.5, 41, EvaluationStatus::ok, 2.0);

  Reader reader(path);
  auto full = reader.ok_evaluations_at(run.id, 1.0);
  REQUIRE(full.size() == 3);  // every ok one, in the order begun; nothing failed or running
  CHECK(full[0].id == a1);
  CHECK(full[1].id == a2);
  CHECK(full[2].id == a1_again);
  CHECK(full[1].seed == 12);
  CHECK(full[2].metrics.at("perplexity").value == 4.25);
  auto low = reader.ok_evaluations_at(run.id, 0.25);
  REQUIRE(low.size() == 2);
  CHECK(low[0].id == a_low);
  CHECK(low[1].id == b_low);
  CHECK(reader.ok_evaluations_at(run.id, 0.5).empty());
  auto others = reader.ok_evaluations_at(other.id, 0.5);
  REQUIRE(others.size() == 1);
  CHECK(others[0].id == other_run);
  CHECK(reader.ok_evaluations_at(run.id + 100, 1.0).empty());

  auto fidelities = reader.fidelities(run.id);
  REQUIRE(fidelities.size() == 3);  // lowest first
  CHECK(fidelities[0].fidelity == 0.25);
  CHECK(fidelities[0].evaluations.ok == 2);
  CHECK(fidelities[0].evaluations.failed == 0);
  CHECK(fidelities[0].ok_genomes == 2);
  CHECK(fidelities[0].fewest_seeds == 1);
  CHECK(fidelities[0].most_seeds == 1);
  CHECK(fidelities[1].fidelity == 0.5);
  CHECK(fidelities[1].evaluations.ok == 0);
  CHECK(fidelities[1].evaluations.failed == 1);
  CHECK(fidelities[1].ok_genomes == 0);
  CHECK(fidelities[1].most_seeds == 0);
  CHECK(fidelities[2].fidelity == 1.0);
  CHECK(fidelities[2].evaluations.ok == 3);
  CHECK(fidelities[2].evaluations.failed == 1);
  CHECK(fidelities[2].evaluations.running == 1);
  CHECK(fidelities[2].evaluations.total() == 5);
  CHECK(fidelities[2].ok_genomes == 1);
  CHECK(fidelities[2].fewest_seeds == 2);  // seed 11 twice counts once
  CHECK(fidelities[2].most_seeds == 2);
  REQUIRE(reader.fidelities(other.id).size() == 1);
  CHECK(reader.fidelities(run.id + 100).empty());
}

TEST_CASE("generations keep their rejected counts, runs name their genomes") {
  test::TempDir dir;
  std::string path = dir.file("rejected.db");
  Store store(path);
  auto run = store.create_or_open_run("r", Json::object(), 1).run;
  auto other = store.create_or_open_run("other", Json::object(), 1).run;
  for (const auto& h : {kHashA, kHashB}) store.upsert_genome(h, genome_json(2), "");
  GenerationRecord g0;
  g0.generation = 0;
  g0.rejected = 12;
  g0.rejected_by = {{"params", 9}, {"cache_bytes", 3}};
  store.record_generation(run.id, g0);
  GenerationRecord g1;
  g1.generation = 1;  // nothing rejected: the defaults
  store.record_generation(run.id, g1);
  store.label_genome(run.id, kHashA, "preset transformer");
  store.label_genome(run.id, kHashB, "file first.json");
  store.label_genome(run.id, kHashB, "file winner.json");  // naming again replaces
  store.label_genome(other.id, kHashA, "preset lfm2");
  CHECK_THROWS_AS(store.label_genome(run.id, kHashC, "unknown genome"), DatabaseError);

  Reader reader(path);
  auto generations = reader.generations(run.id);
  REQUIRE(generations.size() == 2);
  CHECK(generations[0].rejected == 12);
  CHECK(generations[0].rejected_by == Json{{"params", 9}, {"cache_bytes", 3}});
  CHECK(generations[1].rejected == 0);
  CHECK(generations[1].rejected_by == Json::object());
  auto labels = reader.genome_labels(run.id);
  CHECK(labels ==
        std::map<std::string, std::string>{{kHashA, "preset transformer"}, {kHashB, "file winner.json"}});
  auto of_a = reader.labels_of_genome(kHashA);
  REQUIRE(of_a.size() == 2);
  CHECK(of_a[0].run_id == run.id);
  CHECK(of_a[0].label == "preset transformer");
  CHECK(of_a[1].run_id == other.id);
  CHECK(of_a[1].label == "preset lfm2");
  CHECK(reader.labels_of_genome(kHashC).empty());
}

TEST_CASE("one writer at a time: a second Store is refused until the first closes, readers are not") {
  test::TempDir dir;
  std::string path = dir.file("one-writer.db");
  {
    Store first(path);
    first.create_or_open_run("r", Json::object(), 1);
    CHECK(std::filesystem::exists(path + "-writer.lock"));
    CHECK_THROWS_WITH_AS(Store{path}, doctest::Contains("another livsearch process is writing"), InputError);
    Reader reader(path);
    CHECK(reader.runs().size() == 1);
  }
  CHECK(!std::filesystem::exists(path + "-writer.lock"));  // removed on close
  Store second(path);                                      // the lock went with the first writer
  CHECK(second.runs().size() == 1);
}

TEST_CASE("a writer killed with SIGKILL leaves its evaluations running and its lock free") {
  test::TempDir dir;
  std::string path = dir.file("killed.db");
  {
    Store store(path);
    store.create_or_open_run("r", Json::object(), 1);
    store.upsert_genome(kHashA, genome_json(2), "");
  }
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // The child writes, then dies without running a destructor or closing.
    Store store(path);
    auto run = store.run_by_name("r");
    int64_t done = store.begin_evaluation({run->id, kHashA, 0, 1.0, "cpu", 1});
    store.finish_evaluation(done, EvaluationOutcome{});
    store.begin_evaluation({run->id, kHashA, 1, 0.5, "cpu", 2});
    ::kill(::getpid(), SIGKILL);
    ::_exit(3);  // not reached
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGKILL);
  CHECK(std::filesystem::exists(path + "-writer.lock"));  // left behind, but unlocked
  Store resumed(path);
  auto run = resumed.run_by_name("r");
  auto counts = resumed.evaluation_counts(run->id);
  CHECK(counts.ok == 1);  // the committed evaluation survived the kill
  CHECK(counts.running == 1);
  CHECK(resumed.mark_running_interrupted(run->id) == 1);
}
