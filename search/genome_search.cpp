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
#include <thread>

#include "common/objective_catalogue.hpp"
#include "genome/genome_json.hpp"
#include "genome/operators.hpp"

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

// Registered objectives carry their unit in the catalogue (common/); the
// suffix rules cover metrics outside it.
std::string metric_unit(const std::string& metric) {
  if (const auto* info = find_objective(metric)) return std::string(info->unit);
  auto ends_with = [&](const std::string& suffix) {
    return metric.size() >= suffix.size() &&
           metric.compare(metric.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (ends_with("_bytes") || metric == "peak_memory") return "bytes";
  if (ends_with("_ms")) return "ms";
  if (metric == "params" || metric == "flops" || ends_with("params_total") || ends_with("flops_total"))
    return "count";
  return "";
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

// A finished evaluation as the search sees it.
struct Outcome {
  bool ok = false;
  Metrics metrics;
  int generation = 0;  // the generation whose offspring it was first evaluated for
};

class GenomeSearchRun {
 public:
  GenomeSearchRun(const SearchSettings& settings, const GenomeOperators& operators,
                  const EvaluateFunction& evaluate, db::Store& store, const GenomeSearchOptions& options)
      : settings_(settings),
        evaluate_(evaluate),
        store_(store),
        options_(options),
        evolution_(settings, callbacks(operators)) {}

  GenomeSearchResult run(int stop_after_generation) {
    open_run();
    GenomeSearchResult result;
    result.run_id = run_id_;
    try {
      return run_generations(stop_after_generation, result);
    } catch (const StopRequested&) {
      // The evaluations in flight have finished and are stored; the
      // generation they belong to is bred again on resume.
      store_.set_run_status(run_id_, db::RunStatus::interrupted);
      log("stopped; continue with --resume");
      result.stopped = true;
      return finish(result, last_population_, last_recorded_, false);
    }
  }

 private:
  struct StopRequested {};

  bool stop_requested() const { return options_.stop_requested && options_.stop_requested(); }

  GenomeSearchResult run_generations(int stop_after_generation, GenomeSearchResult& result) {
    std::vector<Individual<Genome>> population;
    int generation = 0;
    if (const auto latest = store_.latest_generation(run_id_)) {
      population = load_population(*latest);
      last_population_ = population;
      last_recorded_ = *latest;
      hypervolume_ = store_.generation(run_id_, *latest)->hypervolume;
      box_ = hypervolume_box(settings_, minimised_of(*latest == 0 ? population : load_population(0)));
      generation = *latest + 1;
      log("resuming run '" + options_.run_name + "' after generation " + std::to_string(*latest) + " (" +
          std::to_string(cache_.size()) + " evaluations in the database)");
    } else {
      const auto children = evolution_.initial_candidates();
      population = evolution_.survive({}, evaluate_children(children, {}, 0, result));
      check_objectives_measured();
      box_ = hypervolume_box(settings_, minimised_of(population));
      record(0, population);
      generation = 1;
      if (stop_after_generation == 0) return finish(result, population, 0, false);
    }

    for (; generation <= settings_.generations; ++generation) {
      if (settings_.max_evaluations > 0 && evaluations_before(generation) >= settings_.max_evaluations) {
        log("stopping: " + std::to_string(evaluations_before(generation)) +
            " evaluations reach max_evaluations");
        break;
      }
      if (stop_requested()) throw StopRequested{};
      const auto children = evolution_.make_offspring(population, generation);
      population =
          evolution_.survive(population, evaluate_children(children, population, generation, result));
      record(generation, population);
      if (generation == stop_after_generation) return finish(result, population, generation, false);
    }
    store_.set_run_status(run_id_, db::RunStatus::finished);
    return finish(result, population, std::max(0, std::min(generation, settings_.generations + 1) - 1), true);
  }

  // Genomes go through their canonical JSON at birth, so a genome bred in
  // this process and one read back from the database on resume are the same
  // value, and breed the same offspring.
  static Genome canonical(const Genome& g) { return genome::genome_from_json(genome::to_canonical_json(g)); }

  static ProblemCallbacks<Genome> callbacks(const GenomeOperators& ops) {
    ProblemCallbacks<Genome> problem;
    problem.sample = [ops](Rng& rng) { return canonical(ops.sample(rng)); };
    problem.mutate = [ops](const Genome& g, Rng& rng) { return canonical(ops.mutate(g, rng)); };
    problem.crossover = [ops](const Genome& a, const Genome& b, Rng& rng) {
      auto children = ops.crossover(a, b, rng);
      for (auto& child : children) child = canonical(child);
      return children;
    };
    problem.identity = [](const Genome& g) { return genome::genome_hash(g); };
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
    for (const auto& record : store_.evaluations(run_id_)) {
      if (record.fidelity != settings_.fidelity) continue;
      if (record.status != db::EvaluationStatus::ok && record.status != db::EvaluationStatus::failed)
        continue;
      if (cache_.count(record.genome_hash)) continue;
      Outcome outcome;
      outcome.ok = record.status == db::EvaluationStatus::ok;
      outcome.generation = record.generation;
      for (const auto& [name, metric] : record.metrics) outcome.metrics[name] = metric.value;
      cache_[record.genome_hash] = std::move(outcome);
    }
  }

  // An objective or constraint that no successful evaluation reports (a typo,
  // or a metric this evaluator does not measure) would silently make every
  // candidate equal in it: refuse it after the initial population instead.
  void check_objectives_measured() const {
    std::map<std::string, std::string> wanted;  // metric -> where the config names it
    for (std::size_t i = 0; i < settings_.objectives.size(); ++i)
      wanted.emplace(settings_.objectives[i].name, "/objectives/" + std::to_string(i));
    for (const auto& c : settings_.constraints) wanted.emplace(c.metric, "/constraints/" + c.metric);
    bool any_ok = false;
    std::set<std::string> reported;
    for (const auto& [hash, outcome] : cache_) {
      if (!outcome.ok) continue;
      any_ok = true;
      for (const auto& [name, value] : outcome.metrics) reported.insert(name);
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

  Fitness fitness_of(const Outcome& outcome) const {
    if (!outcome.ok) {
      return {std::vector<double>(settings_.objectives.size(), std::numeric_limits<double>::infinity()),
              std::numeric_limits<double>::infinity()};
    }
    return {minimised_objectives(outcome.metrics, settings_.objectives),
            constraint_violation(outcome.metrics, settings_.constraints)};
  }

  static std::vector<std::vector<double>> minimised_of(const std::vector<Individual<Genome>>& population) {
    std::vector<std::vector<double>> out;
    for (const auto& member : population) out.push_back(member.fitness.minimised);
    return out;
  }

  // Distinct genomes whose evaluation belongs to generations before `generation`:
  // computed from the generations, not from what this process happened to run,
  // so the budget stops a resumed run where it stops an uninterrupted one.
  int64_t evaluations_before(int generation) const {
    return std::count_if(cache_.begin(), cache_.end(),
                         [&](const auto& entry) { return entry.second.generation < generation; });
  }

  std::vector<Individual<Genome>> load_population(int generation) {
    const auto record = store_.generation(run_id_, generation);
    if (!record)
      throw db::DatabaseError(store_.path() + ": generation " + std::to_string(generation) + " is missing");
    std::vector<Individual<Genome>> population;
    for (const auto& member : record->population) {
      const auto stored = store_.genome(member.genome_hash);
      const auto outcome = cache_.find(member.genome_hash);
      if (!stored || outcome == cache_.end())
        throw db::DatabaseError(store_.path() + ": population member " + member.genome_hash +
                                " of generation " + std::to_string(generation) +
                                " has no finished evaluation");
      population.push_back(
          {genome::genome_from_json(stored->genome, store_.path()), fitness_of(outcome->second)});
    }
    return population;
  }

  void record(int generation, const std::vector<Individual<Genome>>& population) {
    const auto keys = rank_and_crowding(population);
    db::GenerationRecord record;
    record.generation = generation;
    std::vector<Fitness> fitness;
    for (std::size_t i = 0; i < population.size(); ++i) {
      record.population.push_back(
          {genome::genome_hash(population[i].genome), static_cast<int>(keys.rank[i]), keys.crowding[i]});
      fitness.push_back(population[i].fitness);
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

    std::size_t front = 0, feasible = 0;
    for (std::size_t i = 0; i < population.size(); ++i) {
      front += keys.rank[i] == 0;
      feasible += population[i].fitness.violation <= 0.0;
    }
    // ETA from the pace of the generations this process has run.
    ++generations_in_process_;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    const double eta = elapsed / generations_in_process_ * std::max(0, settings_.generations - generation);
    char line[240];
    std::snprintf(line, sizeof line,
                  "generation %d/%d: %zu in population, %zu feasible, %zu on the front, hypervolume %.6f"
                  "  (elapsed %.0fs, eta %.0fs)",
                  generation, settings_.generations, population.size(), feasible, front, record.hypervolume,
                  elapsed, eta);
    log(line);
  }

  std::vector<Individual<Genome>> evaluate_children(const std::vector<Child<Genome>>& children,
                                                    const std::vector<Individual<Genome>>& parents,
                                                    int generation, GenomeSearchResult& result) {
    std::vector<std::string> hashes;
    std::vector<std::size_t> pending;  // indices of children to evaluate now
    std::set<std::string> queued;
    {
      db::Store::Transaction transaction(store_);
      for (std::size_t k = 0; k < children.size(); ++k) {
        const auto& child = children[k];
        hashes.push_back(genome::genome_hash(child.genome));
        const auto& hash = hashes.back();
        if (cache_.count(hash)) {
          ++result.evaluations_reused;
          continue;
        }
        if (!queued.insert(hash).second) continue;  // a duplicate within the batch waits for the first
        store_.upsert_genome(hash, genome::to_canonical_json(child.genome), genome::summary(child.genome));
        db::LineageRecord lineage;
        lineage.run_id = run_id_;
        lineage.child_hash = hash;
        lineage.generation = generation;
        for (auto p : child.parents)
          lineage.parent_hashes.push_back(genome::genome_hash(parents.at(p).genome));
        lineage.operator_name = child.operator_name;
        store_.record_lineage(lineage);
        pending.push_back(k);
      }
      transaction.commit();
    }
    run_pending(children, hashes, pending, generation);
    result.evaluations_run += static_cast<int>(pending.size());

    std::vector<Individual<Genome>> out;
    for (std::size_t k = 0; k < children.size(); ++k)
      out.push_back({children[k].genome, fitness_of(cache_.at(hashes[k]))});
    return out;
  }

  // Evaluations run on worker threads, at most options_.workers at once; the
  // database is written only from this thread (one writer), each result as
  // soon as it arrives so that a crash loses no finished evaluation.
  void run_pending(const std::vector<Child<Genome>>& children, const std::vector<std::string>& hashes,
                   const std::vector<std::size_t>& pending, int generation) {
    if (pending.empty()) return;
    struct Slot {
      EvalRequest request;
      EvalResult result;
      int64_t evaluation_id = 0;
      std::exception_ptr fatal;
    };
    std::vector<Slot> slots(pending.size());
    std::mutex mutex;
    std::condition_variable done_signal;
    std::deque<std::size_t> done;
    std::vector<std::thread> threads;
    std::set<std::size_t> in_flight;
    std::exception_ptr fatal;
    const std::size_t workers = static_cast<std::size_t>(std::max(1, options_.workers));

    auto worker = [&](std::size_t s) {
      try {
        slots[s].result = evaluate_(slots[s].request);
      } catch (const InputError&) {
        slots[s].fatal = std::current_exception();  // a bad config fails every candidate: stop the search
      } catch (const std::exception& e) {
        slots[s].result = EvalResult{EvalStatus::failed, {}, e.what(), slots[s].request.device, 0.0};
      } catch (...) {
        slots[s].fatal = std::current_exception();  // not an evaluation failure: let it end the search
      }
      std::lock_guard lock(mutex);
      done.push_back(s);
      done_signal.notify_one();
    };

    std::size_t next = 0, finished = 0;
    try {
      while (finished < pending.size()) {
        const bool stopping = fatal || stop_requested();
        while (in_flight.size() < workers && next < pending.size() && !stopping) {
          const std::size_t k = pending[next];
          Slot& slot = slots[next];
          slot.request.genome = genome::to_canonical_json(children[k].genome);
          slot.request.genome_hash = hashes[k];
          slot.request.fidelity = settings_.fidelity;
          slot.request.seed = evaluation_seed(settings_.seed, hashes[k]);
          slot.request.settings = options_.eval_settings;
          slot.request.device = options_.device;
          slot.evaluation_id = store_.begin_evaluation(
              {run_id_, hashes[k], generation, settings_.fidelity, options_.device, slot.request.seed});
          in_flight.insert(next);
          threads.emplace_back(worker, next);
          ++next;
        }
        if (in_flight.empty()) break;  // stopping and nothing left running
        std::size_t s;
        {
          std::unique_lock lock(mutex);
          const auto wait = std::chrono::duration<double>(options_.heartbeat_seconds);
          if (!done_signal.wait_for(lock, wait, [&] { return !done.empty(); })) {
            lock.unlock();
            for (auto f : in_flight) store_.heartbeat(slots[f].evaluation_id);
            continue;
          }
          s = done.front();
          done.pop_front();
        }
        in_flight.erase(s);
        ++finished;
        if (slots[s].fatal) {
          fatal = slots[s].fatal;
          continue;
        }
        const auto& result = slots[s].result;
        db::EvaluationOutcome outcome;
        outcome.status =
            result.status == EvalStatus::ok ? db::EvaluationStatus::ok : db::EvaluationStatus::failed;
        for (const auto& [name, value] : result.metrics) outcome.metrics[name] = {value, metric_unit(name)};
        outcome.error = result.error;
        outcome.wall_seconds = result.wall_seconds;
        store_.finish_evaluation(slots[s].evaluation_id, outcome);
        Outcome cached;
        cached.ok = result.status == EvalStatus::ok;
        cached.generation = generation;
        // Through the database's representation (NaN and infinity included),
        // so this run and a resumed one see identical numbers.
        for (const auto& [name, metric] : outcome.metrics) cached.metrics[name] = metric.value;
        cache_[slots[s].request.genome_hash] = std::move(cached);
        log("  [" + std::to_string(finished) + "/" + std::to_string(pending.size()) + "] " +
            genome::summary(children[pending[s]].genome) + ": " + cached_ok_text(slots[s].result));
      }
    } catch (...) {
      for (auto& t : threads) t.join();
      throw;
    }
    for (auto& t : threads) t.join();
    if (fatal) std::rethrow_exception(fatal);
    if (finished < pending.size()) throw StopRequested{};
  }

  static std::string cached_ok_text(const EvalResult& result) {
    if (result.status != EvalStatus::ok) return "failed: " + result.error;
    std::string text;
    for (const auto& [name, value] : result.metrics) {
      char number[64];
      std::snprintf(number, sizeof number, "%.4g", value);
      text += (text.empty() ? "" : ", ") + name + " " + number;
    }
    return text;
  }

  GenomeSearchResult finish(GenomeSearchResult& result, const std::vector<Individual<Genome>>& population,
                            int last_generation, bool finished) const {
    result.population = population;
    result.last_generation = last_generation;
    result.hypervolume = hypervolume_;
    result.finished = finished;
    return result;
  }

  const SearchSettings& settings_;
  const EvaluateFunction& evaluate_;
  db::Store& store_;
  const GenomeSearchOptions& options_;
  Evolution<Genome> evolution_;
  int64_t run_id_ = 0;
  std::map<std::string, Outcome> cache_;
  HypervolumeBox box_;
  double hypervolume_ = 0.0;
  std::vector<Individual<Genome>> last_population_;  // the last recorded generation's
  int last_recorded_ = -1;
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

}  // namespace livs::search
