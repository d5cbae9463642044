#include "search/generation_schedule.hpp"

#include "common/evaluate_contract.hpp"

namespace livs::search {

GenerationSchedule::GenerationSchedule(const SearchSettings& settings, Rungs& rungs, EvaluationLedger& ledger,
                                       int generation, MakeJob make_job)
    : settings_(settings),
      rungs_(rungs),
      ledger_(ledger),
      generation_(generation),
      make_job_(std::move(make_job)) {}

bool train_budget_spent(const SearchSettings& settings, const EvaluationLedger& ledger) {
  return settings.max_train_seconds > 0.0 && ledger.wall_seconds() >= settings.max_train_seconds;
}

EvaluationLedger::Key GenerationSchedule::key(const SearchSettings& settings, const Rungs& rungs,
                                              const std::string& hash, std::size_t rung) {
  return {hash, rungs.fidelity(rung), evaluation_seed(settings.seed, hash)};
}

void GenerationSchedule::add_candidate(const std::string& hash) {
  if (rungs_.taken(0, hash)) {
    ++reused_;
    return;
  }
  candidates_.push_back(hash);
}

void GenerationSchedule::reuse(const std::string& hash, std::size_t rung) {
  rungs_.add(rung, hash, fitness_of(*ledger_.find(key(settings_, rungs_, hash, rung)), settings_));
  ++reused_;
}

std::optional<EvaluationJob> GenerationSchedule::next() {
  while (true) {
    // Skip candidates that became taken since they were added (a duplicate
    // within the generation).
    while (next_candidate_ < candidates_.size() && rungs_.taken(0, candidates_[next_candidate_])) {
      ++next_candidate_;
      ++reused_;
    }
    std::string hash;
    std::size_t rung = 0;
    const auto due = rungs_.next_promotion();
    if (due) {
      hash = due->hash;
      rung = due->rung;
    } else if (next_candidate_ < candidates_.size()) {
      hash = candidates_[next_candidate_];
    } else {
      return std::nullopt;
    }
    // A finished result is taken whatever the budget: it costs nothing, and a
    // resumed run must meet the results the interrupted one had.
    const bool found = ledger_.contains(key(settings_, rungs_, hash, rung));
    if (!found && train_budget_spent(settings_, ledger_)) return std::nullopt;
    if (due) {
      ++promotions_;
      promoted_.push_back(hash);
    } else {
      ++next_candidate_;
    }
    if (found) {
      reuse(hash, rung);
      continue;
    }
    rungs_.start(rung, hash);
    EvaluationJob job = make_job_(hash, rung, due.has_value());
    const auto k = key(settings_, rungs_, hash, rung);
    job.request.genome_hash = hash;
    job.request.fidelity = k.fidelity;
    job.request.seed = k.seed;
    job.generation = generation_;
    job.tag = rung;
    return job;
  }
}

void GenerationSchedule::finished(const EvaluationJob& job, const db::EvaluationOutcome& outcome) {
  const auto k = key(settings_, rungs_, job.request.genome_hash, job.tag);
  ledger_.record(k, outcome, generation_);
  rungs_.add(job.tag, job.request.genome_hash, fitness_of(*ledger_.find(k), settings_));
  ++trained_;
}

JobSource GenerationSchedule::source() {
  JobSource source;
  source.next = [this] { return next(); };
  source.finished = [this](const EvaluationJob& job, const db::EvaluationOutcome& outcome) {
    finished(job, outcome);
  };
  return source;
}

}  // namespace livs::search
