// Reader::Snapshot: every query inside it sees one state of the database,
// while a writer goes on committing; after it, the reader sees the new rows.
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>

#include "common/json_reader.hpp"
#include "db/store.hpp"

using namespace livs;

TEST_CASE("a reader's snapshot keeps one state while the writer commits, and ends cleanly") {
  const auto dir =
      std::filesystem::temp_directory_path() / ("livsearch_snapshot_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "s.db").string();
  {
    db::Store store(path);
    const auto run =
        store.create_or_open_run("r", parse_json_text(R"({"objectives": ["perplexity"]})", "t"), 1).run;
    store.upsert_genome("aaaa", Json::object(), "a");
    db::Reader reader(path);
    {
      db::Reader::Snapshot snapshot(reader);
      CHECK(reader.evaluations(run.id).empty());
      store.begin_evaluation({run.id, "aaaa", 0, 1.0, "cpu", 1});  // committed by the writer
      CHECK(reader.evaluations(run.id).empty());                   // not seen inside the snapshot
      CHECK(reader.evaluation_counts(run.id).running == 0);
    }
    CHECK(reader.evaluations(run.id).size() == 1);  // seen after it
    CHECK(reader.evaluation_counts(run.id).running == 1);
  }
  std::filesystem::remove_all(dir);
}
