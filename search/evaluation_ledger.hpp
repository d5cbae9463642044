#pragma once
// What a run has already paid for: every finished (ok or failed) evaluation
// of the run, keyed by (genome hash, fidelity, seed). The search looks here
// before it trains anything, so no (hash, fidelity, seed) is ever trained
// twice: not across generations, not between the search and its final stage,
// not across a resume (the ledger is loaded from the database).
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "db/store.hpp"
#include "search/pareto.hpp"

namespace livs::search {

// A finished evaluation as the search sees it.
struct Outcome {
  bool ok = false;
  Metrics metrics;
  std::string error;   // why it failed; empty when ok
  int generation = 0;  // the generation (or final stage) it was recorded for
  double wall_seconds = 0.0;
  int64_t order = 0;  // when it finished among the run's evaluations (loaded: database order)
};

class EvaluationLedger {
 public:
  struct Key {
    std::string hash;
    double fidelity = 1.0;
    uint64_t seed = 0;
    auto operator<=>(const Key&) const = default;
  };

  // Every finished evaluation of the run (the first, should one have been repeated).
  void load(const db::Queries& store, int64_t run_id);

  const Outcome* find(const Key& key) const;
  bool contains(const Key& key) const { return find(key) != nullptr; }
  void record(const Key& key, const db::EvaluationOutcome& outcome, int generation);
  std::size_t size() const { return outcomes_.size(); }

  // Distinct genomes evaluated at `fidelity` for generations before `generation`.
  int64_t genomes_before(double fidelity, int generation) const;
  // The seconds every recorded evaluation took, together.
  double wall_seconds() const { return wall_seconds_; }
  // Every outcome with its key, in the order the evaluations finished.
  std::vector<std::pair<Key, const Outcome*>> in_order() const;

 private:
  std::map<Key, Outcome> outcomes_;
  double wall_seconds_ = 0.0;
  int64_t recorded_ = 0;
};

}  // namespace livs::search
