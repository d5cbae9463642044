#pragma once
// The evaluations of one generation over rungs, in the order free workers
// take them: a promotion that is due (search/rungs.hpp) first, else the
// generation's next new candidate at the lowest rung. Nothing waits for a
// rung to fill; the generation ends when no new candidate is left and no
// promotion is due.
//
// Resume: a result the ledger already holds is taken from it, when the
// schedule reaches it, instead of being trained again. With one worker the
// schedule of a resumed generation therefore meets its finished results in
// the order the interrupted run produced them, decides the same promotions,
// and ends in the same state as an uninterrupted run.
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "search/evaluation_ledger.hpp"
#include "search/executor.hpp"
#include "search/rungs.hpp"
#include "search/settings.hpp"

namespace livs::search {

class GenerationSchedule {
 public:
  // make_job builds the request for a genome at a rung (fidelity and seed are
  // filled in here); the ledger and rungs are updated as results arrive.
  using MakeJob = std::function<EvaluationJob(const std::string& hash, std::size_t rung, bool promoted)>;
  GenerationSchedule(const SearchSettings& settings, Rungs& rungs, EvaluationLedger& ledger, int generation,
                     MakeJob make_job);

  // A new candidate of this generation, in breeding order. One the lowest
  // rung already holds (or is training) adds nothing.
  void add_candidate(const std::string& hash);

  // The jobs for run_evaluations.
  JobSource source();

  // The search-stage ledger key of a genome at a rung.
  static EvaluationLedger::Key key(const SearchSettings& settings, const Rungs& rungs,
                                   const std::string& hash, std::size_t rung);

  int trained() const { return trained_; }        // evaluations run
  int reused() const { return reused_; }          // results taken from the ledger
  int promotions() const { return promotions_; }  // promotions decided in this generation
  // Genomes promoted in this generation, in order (some may be from earlier generations).
  const std::vector<std::string>& promoted() const { return promoted_; }

 private:
  std::optional<EvaluationJob> next();
  void finished(const EvaluationJob& job, const db::EvaluationOutcome& outcome);
  // Takes a result the ledger holds into the rungs.
  void reuse(const std::string& hash, std::size_t rung);

  const SearchSettings& settings_;
  Rungs& rungs_;
  EvaluationLedger& ledger_;
  int generation_;
  MakeJob make_job_;
  std::vector<std::string> candidates_;
  std::size_t next_candidate_ = 0;
  std::vector<std::string> promoted_;
  int trained_ = 0, reused_ = 0, promotions_ = 0;
};

// The run's evaluations have trained for settings.max_train_seconds (0: never).
bool train_budget_spent(const SearchSettings& settings, const EvaluationLedger& ledger);

}  // namespace livs::search
