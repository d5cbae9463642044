#include "search/genome_search.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <exception>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

#include "common/objective_catalogue.hpp"
#include "genome/genome_json.hpp"
#include "genome/operators.hpp"
#include "search/final_stage.hpp"
#include "search/generation_schedule.hpp"
#include "search/rungs.hpp"

namespace livs::search {

using genome::Genome;

GenomeOperators genome_operators(const genome::SearchSpace& space) {
  GenomeOperators ops;
  ops.sample = [space](Rng& rng) { return genome::sample(space, rng); };
  ops.mutate = [space](const Genome& g, Rng& rng) { return genome::mutate(g, space, rng); };
  ops.crossover = [space](const Genome& a, const Genome& b, Rng& rng) {
    auto [first, second] = genome::crossover(a, b, space, rng);
    return std::vector<Genome>{std::move(first), std::move(second)};
  };
  return ops;
}

HypervolumeBox hypervolume_box(const SearchSettings& settings,
                               const std::vector<std::vector<double>>& initial) {
  const std::size_t m = settings.objectives.size();
  HypervolumeBox box{std::vector<double>(m), std::vector<double>(m)};
  for (std::size_t j = 0; j < m; ++j) {
    const auto& objective = settings.objectives[j];
    const double sign = objective.direction == Direction::maximise ? -1.0 : 1.0;
    double best = std::numeric_limits<double>::infinity(), worst = -std::numeric_limits<double>::infinity();
    for (const auto& point : initial) {
      if (!std::isfinite(point[j])) continue;
      best = std::min(best, point[j]);
      worst = std::max(worst, point[j]);
    }
    if (settings.hypervolume_ideal)
      box.ideal[j] = sign * (*settings.hypervolume_ideal)[j];
    else if (const auto known = known_ideal(objective.name))
      box.ideal[j] = sign * *known;
    else
      box.ideal[j] = std::isfinite(best) ? best : 0.0;
    if (settings.hypervolume_reference) {
      box.reference[j] = sign * (*settings.hypervolume_reference)[j];
    } else {
      const double base = std::isfinite(worst) ? worst : box.ideal[j] + 1.0;
      box.reference[j] = base + 0.1 * (base - box.ideal[j]);
    }
    // A degenerate box (every initial value at the ideal, or an ideal the
    // reference does not exceed) still needs a positive extent.
    if (!(box.reference[j] > box.ideal[j]))
      box.ideal[j] = box.reference[j] - std::max(1.0, std::abs(box.reference[j]));
  }
  return box;
}

double population_hypervolume(const std::vector<Fitness>& population, const HypervolumeBox& box) {
  std::vector<std::vector<double>> feasible;
  for (const auto& f : population)
    if (f.violation <= 0.0) feasible.push_back(f.minimised);
  if (feasible.empty()) return 0.0;
  std::vector<std::vector<double>> front;
  for (auto i : pareto_front_indices(feasible, std::vector<double>(feasible.size(), 0.0)))
    front.push_back(feasible[i]);
  return normalised_hypervolume(front, box.ideal, box.reference);
}

namespace {

class GenomeSearchRun {
 public:
  GenomeSearchRun(const SearchSettings& settings, const GenomeOperators& operators,
                  const EvaluateFunction& evaluate, db::Store& store, const GenomeSearchOptions& options)
      : settings_(settings),
        evaluate_(evaluate),
        store_(store),
        options_(options),
        screen_(options.analytic, settings.constraints, options.max_params),
        evolution_(settings, callbacks(operators)),
        rungs_(settings.rungs(), settings.eta),
        timeout_(std::make_shared<CandidateTimeout>(settings.candidate_timeout, settings.max_train_seconds)) {
  }

  GenomeSearchResult run(int stop_after_generation) {
    open_run();
    if (options_.on_run_opened) options_.on_run_opened();
    GenomeSearchResult result;
    result.run_id = run_id_;
    try {
      return run_generations(stop_after_generation, result);
    } catch (const SearchStopped&) {
      return stopped(result);
    }
  }

  GenomeSearchResult finalize() {
    const auto run = store_.run_by_name(options_.run_name);
    if (!run) throw InputError(store_.path(), "", "no run named '" + options_.run_name + "'");
    run_id_ = run->id;
    const int interrupted = store_.mark_running_interrupted(run_id_);
    if (interrupted > 0) log(std::to_string(interrupted) + " interrupted evaluation(s) will run again");
    ledger_.load(store_, run_id_);
    GenomeSearchResult result;
    result.run_id = run_id_;
    const auto latest = store_.latest_generation(run_id_);
    if (!latest)
      throw InputError(store_.path(), "",
                       "run '" + options_.run_name + "' has no recorded generation to finalize");
    last_recorded_ = *latest;
    store_.set_run_status(run_id_, db::RunStatus::running);
    try {
      final_stage(result);
    } catch (const SearchStopped&) {
      return stopped(result);
    }
    store_.set_run_status(run_id_, db::RunStatus::finished);
    result.last_generation = *latest;
    result.finished = true;
    return result;
  }

 private:
  GenomeSearchResult stopped(GenomeSearchResult& result) {
    // The evaluations in flight were cancelled: those that finished anyway
    // are stored, the others are marked interrupted and run again when the
    // generation they belong to is bred again on resume.
    store_.set_run_status(run_id_, db::RunStatus::interrupted);
    log("stopped; continue with --resume");
    result.stopped = true;
    return finish(result, last_population_, last_recorded_, false);
  }

  bool stop_requested() const { return options_.stop_requested && options_.stop_requested(); }

  GenomeSearchResult run_generations(int stop_after_generation, GenomeSearchResult& result) {
    std::vector<Individual<Genome>> population;
    int generation = 0;
    if (const auto latest = store_.latest_generation(run_id_)) {
      load_rungs(*latest);
      population = load_population(*latest);
      last_population_ = population;
      last_recorded_ = *latest;
      hypervolume_ = store_.generation(run_id_, *latest)->hypervolume;
      box_ = initial_box(load_population(0));
      generation = *latest + 1;
      log("resuming run '" + options_.run_name + "' after generation " + std::to_string(*latest) + " (" +
          std::to_string(ledger_.size()) + " evaluations in the database)");
    } else {
      const auto children = initial_candidates();
      population = evolution_.survive({}, evaluate_children(children, {}, 0, result));
      check_not_all_failed_alike();
      check_objectives_measured();
      box_ = initial_box(population);
      record(0, population);
      generation = 1;
      if (stop_after_generation == 0) return finish(result, population, 0, false);
    }

    for (; generation <= settings_.generations; ++generation) {
      const int64_t before = ledger_.genomes_before(rungs_.fidelity(0), generation);
      if (settings_.max_evaluations > 0 && before >= settings_.max_evaluations) {
        log("stopping: " + std::to_string(before) + " evaluations reach max_evaluations");
        break;
      }
      // A generation the budget ran out in was recorded with what finished.
      if (train_budget_spent(settings_, ledger_)) {
        log("stopping: the evaluations have trained for " + format_seconds(ledger_.wall_seconds()) +
            ", max_train_seconds is " + format_seconds(settings_.max_train_seconds));
        break;
      }
      if (stop_requested()) throw SearchStopped{};
      screen_.reset_counts();
      const auto children = evolution_.make_offspring(population, generation);
      auto offspring = evaluate_children(children, population, generation, result);
      population = evolution_.survive(refreshed(population), offspring);
      record(generation, population);
      if (generation == stop_after_generation) return finish(result, population, generation, false);
    }
    if (stop_requested()) throw SearchStopped{};
    final_stage(result);
    store_.set_run_status(run_id_, db::RunStatus::finished);
    return finish(result, population, last_recorded_, true);
  }

  // Generation 0: the warm-start members the screen admits (those it refuses
  // are reported and left out), then sampled genomes.
  // The refusals are counted when evolution screens the members itself.
  std::vector<Child<Genome>> initial_candidates() {
    std::vector<Genome> warm;
    for (const auto& member : options_.warm_start) {
      const Genome genome = canonical(member.genome);
      warm.push_back(genome);
      const auto broken = screen_.violations(genome);
      if (broken.empty()) {
        labels_[genome::genome_hash(genome)] = member.label;
        continue;
      }
      std::string values;
      for (const auto& violation : broken) values += (values.empty() ? "" : ", ") + violation;
      log("warm start: " + member.label + " breaks an analytic constraint and is left out (" + values + ")");
    }
    try {
      return evolution_.initial_candidates(warm);
    } catch (const NoAdmissibleGenome& none) {
      throw InputError(options_.config_path.empty() ? "config" : options_.config_path, "/constraints",
                       screen_.explain_no_admissible(none.attempts));
    }
  }

  void final_stage(GenomeSearchResult& result) {
    if (settings_.final_seeds <= 0) return;
    const auto last = store_.generation(run_id_, last_recorded_);
    if (!last) return;
    const auto labels = store_.genome_labels(run_id_);
    result.finalists = finalists(*last, ledger_, settings_, labels, settings_.final_top);
    FinalStageRun run;
    run.run_id = run_id_;
    run.generation = last_recorded_ + 1;
    run.eval_settings = options_.eval_settings;
    run.device = options_.device;
    run.executor = executor_options();
    const auto counts = run_final_stage(result.finalists, settings_, evaluate_, store_, ledger_, run);
    result.evaluations_run += counts.evaluations_run;
    result.evaluations_reused += counts.evaluations_reused;
    result.final_table = final_table(result.finalists, settings_, ledger_, labels);
    log("final stage done: fidelity 1, " + std::to_string(settings_.final_seeds) + " seeds");
    for (const auto& line : result.final_table) log(line);
  }

  ExecutorOptions executor_options() const {
    ExecutorOptions executor;
    executor.workers = options_.workers;
    executor.lanes = options_.lanes;
    executor.heartbeat_seconds = options_.heartbeat_seconds;
    executor.stop_requested = options_.stop_requested;
    executor.log = options_.log;
    executor.timeout = timeout_;  // one for the run: the default learns from every evaluation
    executor.faults = options_.faults;
    executor.abandon_grace_seconds = options_.abandon_grace_seconds;
    return executor;
  }

  // Genomes go through their canonical JSON at birth, so a genome bred in
  // this process and one read back from the database on resume are the same
  // value, and breed the same offspring.
  static Genome canonical(const Genome& g) { return genome::genome_from_json(genome::to_canonical_json(g)); }

  ProblemCallbacks<Genome> callbacks(const GenomeOperators& operators) {
    ProblemCallbacks<Genome> problem;
    problem.sample = [sample = operators.sample](Rng& rng) { return canonical(sample(rng)); };
    problem.mutate = [mutate = operators.mutate](const Genome& g, Rng& rng) {
      return canonical(mutate(g, rng));
    };
    problem.crossover = [crossover = operators.crossover](const Genome& a, const Genome& b, Rng& rng) {
      auto children = crossover(a, b, rng);
      for (auto& child : children) child = canonical(child);
      return children;
    };
    problem.identity = [](const Genome& g) { return genome::genome_hash(g); };
    problem.admissible = [this](const Genome& g) { return screen_.admits(g); };
    return problem;
  }

  void log(const std::string& line) const {
    if (options_.log) options_.log(line);
  }

  void open_run() {
    const auto opened = store_.create_or_open_run(options_.run_name, options_.config, settings_.seed);
    run_id_ = opened.run.id;
    if (!opened.created) {
      if (!options_.resume)
        throw InputError(
            store_.path(), "",
            "a run named '" + options_.run_name +
                "' already exists; pass --resume to continue it or give the config another \"name\"");
      if (opened.run.seed != settings_.seed || opened.run.config != options_.config)
        throw InputError(store_.path(), "",
                         "run '" + options_.run_name +
                             "' was started with a different config or seed; resume it with the same config");
      const int interrupted = store_.mark_running_interrupted(run_id_);
      if (interrupted > 0) log(std::to_string(interrupted) + " interrupted evaluation(s) will run again");
      store_.set_run_status(run_id_, db::RunStatus::running);
    }
    ledger_.load(store_, run_id_);
  }

  // An objective or constraint that no successful evaluation reports (a typo,
  // or a metric this evaluator does not measure) would silently make every
  // candidate equal in it: refuse it after the initial population instead.
  // Generation 0 failed whole, every candidate with the same error (a
  // missing dependency, a device that cannot run anything, data every model
  // rejects): evolving from failures would only repeat it, so the run stops
  // here with that reason. Distinct errors are the candidates' own and the
  // search goes on.
  void check_not_all_failed_alike() {
    std::set<std::string> errors;
    for (const auto& [hash, outcome] : generation_zero_) {
      if (!outcome || outcome->ok) return;
      errors.insert(outcome->error);
    }
    if (generation_zero_.size() < 2 || errors.size() != 1) return;
    store_.set_run_status(run_id_, db::RunStatus::interrupted);
    throw std::runtime_error("every candidate of generation 0 (" + std::to_string(generation_zero_.size()) +
                             ") failed with the same error, so the search stops instead of evolving "
                             "failures: " +
                             *errors.begin() +
                             " (the evaluations are in the database; fix the cause and "
                             "start a new run)");
  }

  void check_objectives_measured() const {
    std::map<std::string, std::string> wanted;  // metric -> where the config names it
    for (std::size_t i = 0; i < settings_.objectives.size(); ++i)
      wanted.emplace(settings_.objectives[i].name, "/objectives/" + std::to_string(i));
    for (const auto& c : settings_.constraints) wanted.emplace(c.metric, "/constraints/" + c.metric);
    bool any_ok = false;
    std::set<std::string> reported;
    for (const auto& [hash, outcome] : generation_zero_) {
      if (!outcome->ok) continue;
      any_ok = true;
      for (const auto& [name, value] : outcome->metrics) reported.insert(name);
    }
    if (!any_ok) return;  // every candidate failed: nothing to learn about names
    for (const auto& [metric, pointer] : wanted) {
      if (reported.count(metric)) continue;
      std::string known;
      for (const auto& name : reported) known += (known.empty() ? "" : ", ") + name;
      throw InputError(
          options_.config_path.empty() ? "config" : options_.config_path, pointer,
          "no evaluation reports a metric \"" + metric + "\" (the evaluator reports " + known + ")");
    }
  }

  // The search stage's key of a genome at the lowest rung: its replicate-0 seed there.
  EvaluationLedger::Key search_key(const std::string& hash) const {
    return GenerationSchedule::key(settings_, rungs_, hash, 0);
  }

  static std::string format_seconds(double seconds) {
    char text[32];
    std::snprintf(text, sizeof text, "%.1fs", seconds);
    return text;
  }

  // The rungs as they stood when `generation` was recorded: the search-stage
  // results of that generation and earlier, in the order they finished.
  void load_rungs(int generation) {
    const auto fidelities = settings_.rungs();
    for (const auto& [key, outcome] : ledger_.in_order()) {
      if (outcome->generation > generation || key.seed != evaluation_seed(settings_.seed, key.hash)) continue;
      const auto at = std::find(fidelities.begin(), fidelities.end(), key.fidelity);
      if (at == fidelities.end()) continue;
      rungs_.add(static_cast<std::size_t>(at - fidelities.begin()), key.hash,
                 fitness_of(*outcome, settings_));
    }
  }

  // A genome's fitness: its result at the highest rung it reached.
  Fitness standing_of(const std::string& hash) const {
    const auto standing = rungs_.standing(hash);
    if (!standing)
      throw db::DatabaseError(store_.path() + ": genome " + hash + " has no finished evaluation in run '" +
                              options_.run_name + "'");
    Fitness fitness = standing->fitness;
    fitness.rung = standing->rung;
    return fitness;
  }

  // The population with every member's standing now (a member may have been
  // promoted while this generation ran).
  std::vector<Individual<Genome>> refreshed(std::vector<Individual<Genome>> population) const {
    for (auto& member : population) member.fitness = standing_of(genome::genome_hash(member.genome));
    return population;
  }

  // The hypervolume box comes from generation 0's results at the lowest rung,
  // which are known the same way in a run and in its resumption.
  HypervolumeBox initial_box(const std::vector<Individual<Genome>>& generation_zero) const {
    std::vector<std::vector<double>> points;
    for (const auto& member : generation_zero) {
      const Outcome* outcome = ledger_.find(search_key(genome::genome_hash(member.genome)));
      if (outcome) points.push_back(fitness_of(*outcome, settings_).minimised);
    }
    return hypervolume_box(settings_, points);
  }

  std::vector<Individual<Genome>> load_population(int generation) {
    const auto record = store_.generation(run_id_, generation);
    if (!record)
      throw db::DatabaseError(store_.path() + ": generation " + std::to_string(generation) + " is missing");
    std::vector<Individual<Genome>> population;
    for (const auto& member : record->population) {
      const auto stored = store_.genome(member.genome_hash);
      if (!stored || !rungs_.standing(member.genome_hash))
        throw db::DatabaseError(store_.path() + ": population member " + member.genome_hash +
                                " of generation " + std::to_string(generation) +
                                " has no finished evaluation");
      population.push_back(
          {genome::genome_from_json(stored->genome, store_.path()), standing_of(member.genome_hash)});
    }
    return population;
  }

  void record(int generation, const std::vector<Individual<Genome>>& population) {
    const auto keys = rank_and_crowding(population);
    db::GenerationRecord record;
    record.generation = generation;
    record.rejected = screen_.rejected();
    for (const auto& [metric, count] : screen_.rejected_by()) record.rejected_by[metric] = count;
    std::vector<Fitness> fitness;  // the members at the top rung: the others' values are on smaller budgets
    for (std::size_t i = 0; i < population.size(); ++i) {
      record.population.push_back(
          {genome::genome_hash(population[i].genome), static_cast<int>(keys.rank[i]), keys.crowding[i]});
      if (population[i].fitness.rung == rungs_.top()) fitness.push_back(population[i].fitness);
    }
    record.hypervolume = population_hypervolume(fitness, box_);
    Json reference = Json::array();
    for (std::size_t j = 0; j < settings_.objectives.size(); ++j)
      reference.push_back(settings_.objectives[j].direction == Direction::maximise ? -box_.reference[j]
                                                                                   : box_.reference[j]);
    record.hypervolume_reference = reference;
    store_.record_generation(run_id_, record);
    hypervolume_ = record.hypervolume;
    last_population_ = population;
    last_recorded_ = generation;
    rejected_in_process_ += record.rejected;

    std::size_t front = 0, feasible = 0;
    for (std::size_t i = 0; i < population.size(); ++i) {
      front += keys.rank[i] == 0;
      feasible += population[i].fitness.violation <= 0.0;
    }
    // ETA from the pace of the generations this process has run.
    ++generations_in_process_;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    const double eta = elapsed / generations_in_process_ * std::max(0, settings_.generations - generation);
    char line[320];
    std::snprintf(line, sizeof line,
                  "generation %d/%d: %zu in population, %zu feasible, %zu on the front, hypervolume %.6f, "
                  "%lld rejected before training  (elapsed %.0fs, eta %.0fs)",
                  generation, settings_.generations, population.size(), feasible, front, record.hypervolume,
                  static_cast<long long>(record.rejected), elapsed, eta);
    std::string text = line;
    if (rungs_.count() > 1) {
      // Results per rung so far, and this generation's promotions.
      std::string per_rung;
      for (std::size_t r = 0; r < rungs_.count(); ++r)
        per_rung += (r ? "/" : "") + std::to_string(rungs_.results(r));
      text += "; rungs " + per_rung + " results, " + std::to_string(promotions_) + " promoted";
    }
    log(text);
  }

  // Trains a generation's children at the lowest rung, and every promotion
  // that comes due meanwhile (search/generation_schedule.hpp). Returns the
  // offspring for survival: the children that have a result, each with its
  // standing, then the genomes from earlier generations promoted meanwhile
  // that are no longer in `parents` (their new result is news the population
  // should see).
  std::vector<Individual<Genome>> evaluate_children(const std::vector<Child<Genome>>& children,
                                                    const std::vector<Individual<Genome>>& parents,
                                                    int generation, GenomeSearchResult& result) {
    std::vector<std::string> hashes;
    std::set<std::string> registered;  // the genomes of this batch already stored
    GenerationSchedule schedule(settings_, rungs_, ledger_, generation,
                                [this](const std::string& hash, std::size_t rung, bool promoted) {
                                  return make_job(hash, rung, promoted);
                                });
    {
      db::Store::Transaction transaction(store_);
      for (const auto& child : children) {
        hashes.push_back(genome::genome_hash(child.genome));
        const auto& hash = hashes.back();
        if (rungs_.taken(0, hash) || registered.count(hash)) {
          schedule.add_candidate(hash);  // evaluated before, or a duplicate within the batch
          continue;
        }
        const std::string summary = genome::summary(child.genome);
        const auto label = labels_.find(hash);
        store_.upsert_genome(hash, genome::to_canonical_json(child.genome), summary);
        if (label != labels_.end()) store_.label_genome(run_id_, hash, label->second);
        db::LineageRecord lineage;
        lineage.run_id = run_id_;
        lineage.child_hash = hash;
        lineage.generation = generation;
        for (auto p : child.parents)
          lineage.parent_hashes.push_back(genome::genome_hash(parents.at(p).genome));
        lineage.operator_name = child.operator_name;
        store_.record_lineage(lineage);
        registered.insert(hash);
        schedule.add_candidate(hash);
      }
      transaction.commit();
    }
    run_evaluations(schedule.source(), evaluate_, store_, run_id_, executor_options());
    result.evaluations_run += schedule.trained();
    result.evaluations_reused += schedule.reused();
    promotions_ = schedule.promotions();

    std::vector<Individual<Genome>> out;
    std::set<std::string> present;
    for (const auto& member : parents) present.insert(genome::genome_hash(member.genome));
    for (std::size_t k = 0; k < children.size(); ++k) {
      if (!rungs_.standing(hashes[k])) continue;  // not trained: the budget ran out first
      if (generation == 0) generation_zero_[hashes[k]] = ledger_.find(search_key(hashes[k]));
      out.push_back({children[k].genome, standing_of(hashes[k])});
      present.insert(hashes[k]);
    }
    for (const auto& hash : schedule.promoted()) {
      if (!present.insert(hash).second || !rungs_.standing(hash)) continue;
      out.push_back({genome::genome_from_json(stored_genome(hash).genome, store_.path()), standing_of(hash)});
    }
    return out;
  }

  // The request for a stored genome at a rung; the schedule fills in fidelity and seed.
  // A genome this run stored when it was bred (promotions come from any generation).
  db::GenomeRecord stored_genome(const std::string& hash) const {
    auto stored = store_.genome(hash);
    if (!stored) throw db::DatabaseError(store_.path() + ": genome " + hash + " is not stored");
    return std::move(*stored);
  }

  EvaluationJob make_job(const std::string& hash, std::size_t rung, bool promoted) const {
    const auto stored = stored_genome(hash);
    EvaluationJob job;
    job.request.genome = stored.genome;
    const auto label = labels_.find(hash);
    std::string summary = (label != labels_.end() ? label->second + ": " : "") + stored.summary;
    job.request.settings = options_.eval_settings;
    job.request.device = options_.device;
    if (rungs_.count() > 1) {
      char prefix[96];
      std::snprintf(prefix, sizeof prefix, "rung %zu/%zu (fidelity %.3g)%s ", rung + 1, rungs_.count(),
                    rungs_.fidelity(rung), promoted ? ", promoted" : "");
      summary = prefix + summary;
    }
    job.summary = summary;
    return job;
  }

  GenomeSearchResult finish(GenomeSearchResult& result, const std::vector<Individual<Genome>>& population,
                            int last_generation, bool finished) const {
    result.population = population;
    result.last_generation = last_generation;
    result.hypervolume = hypervolume_;
    result.finished = finished;
    result.rejected = rejected_in_process_;
    return result;
  }

  const SearchSettings& settings_;
  const EvaluateFunction& evaluate_;
  db::Store& store_;
  const GenomeSearchOptions& options_;
  AnalyticScreen screen_;
  Evolution<Genome> evolution_;
  Rungs rungs_;
  std::shared_ptr<CandidateTimeout> timeout_;
  int64_t run_id_ = 0;
  EvaluationLedger ledger_;
  std::map<std::string, std::string> labels_;              // warm-start hash -> label
  std::map<std::string, const Outcome*> generation_zero_;  // for check_objectives_measured
  HypervolumeBox box_;
  double hypervolume_ = 0.0;
  std::vector<Individual<Genome>> last_population_;  // the last recorded generation's
  int last_recorded_ = -1;
  int64_t rejected_in_process_ = 0;
  int promotions_ = 0;  // in the generation last scheduled
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  int generations_in_process_ = 0;
};

}  // namespace

GenomeSearchResult run_genome_search(const SearchSettings& settings, const GenomeOperators& operators,
                                     const EvaluateFunction& evaluate, db::Store& store,
                                     const GenomeSearchOptions& options, int stop_after_generation) {
  GenomeSearchRun run(settings, operators, evaluate, store, options);
  return run.run(stop_after_generation);
}

GenomeSearchResult finalize_run(const SearchSettings& settings, const EvaluateFunction& evaluate,
                                db::Store& store, const GenomeSearchOptions& options) {
  GenomeSearchRun run(settings, GenomeOperators{}, evaluate, store, options);
  return run.finalize();
}

}  // namespace livs::search
