// One writer, many readers: WAL readers never wait for the writer.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "db/store.hpp"
#include "temp_dir.hpp"

using namespace livs;
using namespace livs::db;

namespace {

std::string hash_of(int i) {
  std::string digits = std::to_string(i);
  return std::string(64 - digits.size(), 'f') + digits;
}

}  // namespace

TEST_CASE("a reader works while the writer holds an open write transaction") {
  test::TempDir dir;
  std::string path = dir.file("locked.db");
  Store store(path);
  auto run = store.create_or_open_run("r", Json::object(), 1).run;
  store.upsert_genome(hash_of(1), Json::object(), "committed");
  int64_t done = store.begin_evaluation({run.id, hash_of(1), 0, 1.0, "cpu", 1});
  store.finish_evaluation(done, EvaluationOutcome{});

  Store::Transaction open_transaction(store);
  store.upsert_genome(hash_of(2), Json::object(), "uncommitted");
  int64_t pending = store.begin_evaluation({run.id, hash_of(2), 0, 1.0, "cpu", 2});
  store.finish_evaluation(pending, EvaluationOutcome{});
  GenerationRecord g;
  g.population = {{hash_of(2), 0, 1.0}};
  store.record_generation(run.id, g);

  // A short busy timeout: a reader that had to wait for the writer's lock
  // would fail with "database is locked" instead of passing slowly.
  auto started = std::chrono::steady_clock::now();
  Reader reader(path, 50);
  CHECK(reader.runs().size() == 1);
  CHECK(reader.genome(hash_of(1)));
  CHECK(!reader.genome(hash_of(2)));  // it sees the last committed state
  CHECK(reader.evaluation_counts(run.id).ok == 1);
  CHECK(reader.evaluations(run.id).size() == 1);
  CHECK(reader.generations(run.id).empty());
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(2));

  open_transaction.commit();
  CHECK(reader.genome(hash_of(2)));
  CHECK(reader.evaluation_counts(run.id).ok == 2);
  CHECK(reader.generations(run.id).size() == 1);
}

TEST_CASE("readers query continuously while a writer commits generation after generation") {
  test::TempDir dir;
  std::string path = dir.file("busy.db");
  int64_t run_id = 0;
  {
    Store store(path);
    run_id = store.create_or_open_run("r", Json::object(), 1).run.id;
  }
  constexpr int kGenerations = 40;
  constexpr int kPerGeneration = 5;
  std::atomic<bool> writing{true};
  std::string writer_error;
  std::thread writer([&] {
    try {
      Store store(path);
      for (int gen = 0; gen < kGenerations; ++gen) {
        GenerationRecord record;
        record.generation = gen;
        record.hypervolume = gen;
        for (int k = 0; k < kPerGeneration; ++k) {
          int i = gen * kPerGeneration + k;
          store.upsert_genome(hash_of(i), Json{{"i", i}}, "");
          int64_t id = store.begin_evaluation({run_id, hash_of(i), gen, 1.0, "cpu", 0});
          store.heartbeat(id);
          EvaluationOutcome outcome;
          outcome.metrics["perplexity"] = {double(i), ""};
          store.finish_evaluation(id, outcome);
          record.population.push_back({hash_of(i), 0, 0.0});
        }
        store.record_generation(run_id, record);
      }
    } catch (const std::exception& e) {
      writer_error = e.what();
    }
    writing = false;
  });

  std::string reader_error;
  int64_t last_seen = 0;
  bool monotonic = true;
  int reads = 0;
  try {
    while (writing || reads == 0) {
      Reader reader(path);  // opened afresh each time, as a CLI command is
      auto counts = reader.evaluation_counts(run_id);
      auto evaluations = reader.evaluations(run_id);
      for (const auto& e : evaluations)
        if (e.status == EvaluationStatus::ok && !e.metrics.count("perplexity")) monotonic = false;
      reader.hypervolume_history(run_id);
      monotonic = monotonic && counts.ok >= last_seen;
      last_seen = counts.ok;
      ++reads;
    }
  } catch (const std::exception& e) {
    reader_error = e.what();
  }
  writer.join();
  CHECK(writer_error.empty());
  CHECK(reader_error.empty());
  CHECK(monotonic);  // snapshots never go backwards, and never show ok without metrics
  CHECK(reads > 0);
  Reader final_reader(path);
  CHECK(final_reader.evaluation_counts(run_id).ok == kGenerations * kPerGeneration);
  CHECK(final_reader.latest_generation(run_id) == kGenerations - 1);
}
