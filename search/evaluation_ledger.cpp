#include "search/evaluation_ledger.hpp"

#include <algorithm>
#include <set>

namespace livs::search {

void EvaluationLedger::load(const db::Queries& store, int64_t run_id) {
  for (const auto& record : store.evaluations(run_id)) {
    if (record.status != db::EvaluationStatus::ok && record.status != db::EvaluationStatus::failed) continue;
    const Key key{record.genome_hash, record.fidelity, record.seed};
    if (outcomes_.count(key)) continue;
    Outcome outcome;
    outcome.ok = record.status == db::EvaluationStatus::ok;
    outcome.error = record.error;
    outcome.generation = record.generation;
    outcome.wall_seconds = record.wall_seconds;
    outcome.order = recorded_++;
    wall_seconds_ += record.wall_seconds;
    for (const auto& [name, metric] : record.metrics) outcome.metrics[name] = metric.value;
    outcomes_[key] = std::move(outcome);
  }
}

const Outcome* EvaluationLedger::find(const Key& key) const {
  const auto found = outcomes_.find(key);
  return found == outcomes_.end() ? nullptr : &found->second;
}

void EvaluationLedger::record(const Key& key, const db::EvaluationOutcome& stored, int generation) {
  Outcome outcome;
  outcome.ok = stored.status == db::EvaluationStatus::ok;
  outcome.error = stored.error;
  outcome.generation = generation;
  outcome.wall_seconds = stored.wall_seconds;
  outcome.order = recorded_++;
  for (const auto& [name, metric] : stored.metrics) outcome.metrics[name] = metric.value;
  outcomes_.insert_or_assign(key, std::move(outcome));
  wall_seconds_ += stored.wall_seconds;
}

std::vector<std::pair<EvaluationLedger::Key, const Outcome*>> EvaluationLedger::in_order() const {
  std::vector<std::pair<Key, const Outcome*>> out;
  out.reserve(outcomes_.size());
  for (const auto& [key, outcome] : outcomes_) out.emplace_back(key, &outcome);
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.second->order < b.second->order; });
  return out;
}

int64_t EvaluationLedger::genomes_before(double fidelity, int generation) const {
  std::set<std::string> genomes;
  for (const auto& [key, outcome] : outcomes_)
    if (key.fidelity == fidelity && outcome.generation < generation) genomes.insert(key.hash);
  return static_cast<int64_t>(genomes.size());
}

}  // namespace livs::search
