#pragma once
// The search tests' fixture: a fake evaluator (metrics are pure functions of
// the decoded model and the seed), a temporary database and a small config.
#include <doctest/doctest.h>

#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "genome/decode.hpp"
#include "genome/genome_json.hpp"
#include "search/genome_search.hpp"

namespace livs::test {

using namespace livs::search;

// A cheap, deterministic stand-in for training: metrics are pure functions of
// the decoded model (parameters, decode state) and the request's seed, so the
// search's bookkeeping can be tested without a trainer. Genomes whose hash
// starts with 'f' "fail", as a diverging training would.
struct FakeEvaluator {
  std::mutex mutex;
  std::map<std::string, int> calls;  // genome hash -> times evaluated
  int kill_after = -1;               // throw SimulatedKill on this call (counting from 0)
  int total = 0;
  std::set<double> fidelities;                   // every request's fidelity
  std::vector<std::string> full_fidelity_order;  // hashes of the fidelity-1 requests, in call order
  // A training's seconds grow with the model's parameters as well as its
  // steps (reported as train_seconds, beside a fixed tenth of a second).
  bool cost_grows_with_params = false;

  EvalResult operator()(const EvalRequest& request) {
    {
      std::lock_guard lock(mutex);
      if (total++ == kill_after) throw SimulatedKill{};
      ++calls[request.genome_hash];
      fidelities.insert(request.fidelity);
      if (request.fidelity == 1.0) full_fidelity_order.push_back(request.genome_hash);
    }
    EvalResult result;
    result.device = request.device;
    if (request.genome_hash[0] == 'f') {
      result.status = EvalStatus::failed;
      result.error = "loss is not finite";
      return result;
    }
    const auto spec = genome::decode(genome::genome_from_json(request.genome));
    const double params = static_cast<double>(spec.params_non_embedding());
    const double cache = 2.0 * static_cast<double>(spec.decode_state_elements(2048));
    result.metrics["params"] = params;
    result.metrics["cache_bytes"] = cache;
    // A shorter training gives a higher perplexity, and ranks candidates a
    // little differently (a hash-dependent term that fades at fidelity 1),
    // as a real low rung does.
    const double shortfall = 1.0 - request.fidelity;
    const double rank_noise =
        static_cast<double>(std::stoul(request.genome_hash.substr(1, 6), nullptr, 16) % 1000);
    result.metrics["perplexity"] = 5.0 + 2e5 / (params / 100.0 + cache / 1000.0 + 50.0) +
                                   static_cast<double>(request.seed % 997) * 1e-7 +
                                   shortfall * (20.0 + rank_noise * 0.01);
    result.wall_seconds = request.fidelity;  // a training's cost grows with its steps
    if (cost_grows_with_params) {
      result.metrics["train_seconds"] = request.fidelity * params / 1e4;
      result.wall_seconds = 0.1 + result.metrics["train_seconds"];
    }
    return result;
  }
  struct SimulatedKill {};
};

struct TempDb {
  std::string path;
  explicit TempDb(const std::string& name) {
    path = (std::filesystem::temp_directory_path() / ("livsearch_test_" + name + ".db")).string();
    remove();
  }
  ~TempDb() { remove(); }
  void remove() {
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  }
};

inline const char* kConfig = R"({
  "name": "test",
  "seed": 11,
  "search_space": {"d_model": 64, "depth": 4},
  "objectives": ["perplexity", "cache_bytes"],
  "constraints": {"params": {"max": 120000}},
  "search": {"algorithm": "nsga2", "population": 8, "generations": 5, "final": false}
})";

struct Setup {
  Json config = parse_json_text(kConfig, "test.json");
  SearchSettings settings = parse_search_settings(JsonReader(config, "test.json"));
  genome::SearchSpace space = genome::parse_search_space(JsonReader(config, "test.json").at("search_space"));
  GenomeOperators operators = genome_operators(space);
  GenomeSearchOptions options;
  Setup() {
    options.run_name = "test";
    options.config = config;
    options.eval_settings = Json::object();
  }
};

inline std::vector<std::string> hashes_of(const std::vector<Individual<genome::Genome>>& population) {
  std::vector<std::string> out;
  for (const auto& m : population) out.push_back(genome::genome_hash(m.genome));
  return out;
}

inline GenomeSearchResult run_search(Setup& setup, FakeEvaluator& evaluator, db::Store& store,
                                     int stop_after = -1) {
  return run_genome_search(
      setup.settings, setup.operators, [&](const EvalRequest& r) { return evaluator(r); }, store,
      setup.options, stop_after);
}

}  // namespace livs::test
