#pragma once
// What the executor's tests share: a database in a temporary folder with one
// run, and jobs for genomes "aaaa0", "aaaa1", ...
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "db/store.hpp"
#include "search/executor.hpp"

namespace livs::search {

struct TempStore {
  std::filesystem::path folder;
  std::unique_ptr<db::Store> store;
  int64_t run_id = 0;
  explicit TempStore(const std::string& name) {
    folder = std::filesystem::temp_directory_path() /
             ("livsearch-executor-" + name + "-" + std::to_string(::getpid()));
    std::filesystem::remove_all(folder);
    std::filesystem::create_directories(folder);
    store = std::make_unique<db::Store>((folder / "run.db").string());
    run_id = store->create_or_open_run("faults", Json::object(), 1).run.id;
  }
  ~TempStore() {
    store.reset();
    std::error_code ignored;
    std::filesystem::remove_all(folder, ignored);
  }
};

// Jobs for genomes "aaaa0", "aaaa1", ... (registered in the store).
inline std::vector<EvaluationJob> jobs(db::Store& store, int count) {
  std::vector<EvaluationJob> out;
  for (int i = 0; i < count; ++i) {
    EvaluationJob job;
    job.request.genome_hash = "aaaa" + std::to_string(i);
    job.request.genome = Json::object();
    job.request.seed = uint64_t(i);
    job.summary = job.request.genome_hash;
    store.upsert_genome(job.request.genome_hash, Json::object(), job.summary);
    out.push_back(job);
  }
  return out;
}

}  // namespace livs::search
