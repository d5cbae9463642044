#pragma once
// The generational loop shared by every algorithm and every problem: NSGA-II
// (Deb et al. 2002), random search and regularised (aging) evolution (Real et
// al. 2019), written over an abstract problem whose genomes are sampled,
// varied and evaluated through callbacks. The real-valued benchmarks (ZDT,
// DTLZ) and the architecture search both run this loop.
//
// Determinism and resume: the random decisions of generation g come only from
// Rng(derive_seed(seed, g)) and from the population that generation g starts
// from. A driver that stores each generation's survivors can therefore
// rebuild generation g's offspring exactly after a crash, whatever happened
// between.
#include <algorithm>
#include <cstddef>
#include <functional>
#include <numeric>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/rng.hpp"
#include "search/pareto.hpp"
#include "search/settings.hpp"

namespace livs::search {

// What the search knows about an evaluated candidate.
struct Fitness {
  std::vector<double> minimised;  // see minimised_objectives()
  double violation = 0.0;         // see constraint_violation(); 0 = feasible
  // The rung of fidelity the values come from (search/rungs.hpp; 0 without
  // rungs). A higher rung always ranks ahead of a lower one.
  std::size_t rung = 0;
};

template <class G>
struct Individual {
  G genome;
  Fitness fitness;
};

// A child before evaluation, with where it came from (for the lineage table).
template <class G>
struct Child {
  G genome;
  std::vector<std::size_t> parents;  // indices into the population it was bred from
  std::string operator_name;         // "sample", "crossover+mutate", "mutate", "copy", ...
};

// Generation 0 drew `attempts` genomes and the problem's `admissible` refused
// every one: the search space cannot meet its analytic constraints.
struct NoAdmissibleGenome {
  std::size_t attempts = 0;
};

template <class G>
struct ProblemCallbacks {
  std::function<G(Rng&)> sample;
  // Recombine two parents into one or more children (repaired, valid genomes).
  std::function<std::vector<G>(const G&, const G&, Rng&)> crossover;
  // A mutated (and repaired) copy.
  std::function<G(const G&, Rng&)> mutate;
  // Identity for de-duplication (the genome hash); leave empty for problems
  // (real vectors) where duplicates cannot matter.
  std::function<std::string(const G&)> identity;
  // Whether a genome may be evaluated at all, decided before any evaluation
  // (for architectures: its analytic metrics meet the constraints). A genome
  // it refuses is drawn again, never handed to `evaluate`. Empty: all may.
  std::function<bool(const G&)> admissible;
  // Evaluate a batch; one Fitness per genome, in order.
  std::function<std::vector<Fitness>(const std::vector<G>&, int generation)> evaluate;
};

// Rank and crowding of every member of a population (Deb 2002's crowded
// comparison keys).
struct RankCrowding {
  std::vector<std::size_t> rank;
  std::vector<double> crowding;
};

// Members that reached different rungs are not compared on their objectives,
// which were measured on different budgets: the highest rung's members take
// the first ranks, sorted among themselves, then the next rung's, and so on.
// Reaching a rung is itself a verdict (the member beat the rest of the rung
// below it), and a lower-rung result is never ranked above a higher-rung one.
// With one rung this is Deb's constrained non-dominated sort.
template <class G>
RankCrowding rank_and_crowding(const std::vector<Individual<G>>& population) {
  RankCrowding keys{std::vector<std::size_t>(population.size()), std::vector<double>(population.size())};
  std::vector<std::size_t> rungs;
  for (const auto& member : population) rungs.push_back(member.fitness.rung);
  std::sort(rungs.begin(), rungs.end(), std::greater<>());
  rungs.erase(std::unique(rungs.begin(), rungs.end()), rungs.end());
  std::size_t offset = 0;
  for (const std::size_t rung : rungs) {
    std::vector<std::size_t> members;
    std::vector<std::vector<double>> points;
    std::vector<double> violation;
    for (std::size_t i = 0; i < population.size(); ++i) {
      if (population[i].fitness.rung != rung) continue;
      members.push_back(i);
      points.push_back(population[i].fitness.minimised);
      violation.push_back(population[i].fitness.violation);
    }
    const auto ranking = constrained_nondominated_sort(points, violation);
    const auto crowding = crowding_distances(points, ranking);
    std::size_t fronts = 0;
    for (std::size_t k = 0; k < members.size(); ++k) {
      keys.rank[members[k]] = offset + ranking.rank[k];
      keys.crowding[members[k]] = crowding[k];
      fronts = std::max(fronts, ranking.rank[k] + 1);
    }
    offset += fronts;
  }
  return keys;
}

// The crowded-comparison order: lower rank, then larger crowding distance.
inline bool crowded_better(const RankCrowding& keys, std::size_t a, std::size_t b) {
  if (keys.rank[a] != keys.rank[b]) return keys.rank[a] < keys.rank[b];
  return keys.crowding[a] > keys.crowding[b];
}

template <class G>
class Evolution {
 public:
  Evolution(SearchSettings settings, ProblemCallbacks<G> problem)
      : settings_(std::move(settings)), problem_(std::move(problem)) {}

  const SearchSettings& settings() const { return settings_; }
  const ProblemCallbacks<G>& problem() const { return problem_; }

  // Generation 0: the warm-start genomes (admissible ones, in order, each
  // once), then distinct sampled genomes up to `population`. Throws
  // NoAdmissibleGenome when sampling finds no admissible genome at all.
  std::vector<Child<G>> initial_candidates(const std::vector<G>& warm_start = {}) const {
    Rng rng(derive_seed(settings_.seed, uint64_t{0}));
    std::vector<Child<G>> children;
    std::set<std::string> seen;
    for (const auto& genome : warm_start) {
      if (!admissible(genome)) continue;
      if (problem_.identity && !seen.insert(problem_.identity(genome)).second) continue;
      children.push_back({genome, {}, "warm start"});
    }
    const std::size_t wanted = std::max(children.size(), static_cast<std::size_t>(settings_.population));
    const std::size_t to_sample = wanted - children.size();
    std::size_t attempts = 0, sampled = 0;
    while (children.size() < wanted && attempts < max_attempts(to_sample)) {
      G genome = problem_.sample(rng);
      ++attempts;
      if (!admissible(genome)) continue;
      ++sampled;
      if (!accept(genome, seen, attempts, to_sample)) continue;
      children.push_back({std::move(genome), {}, "sample"});
    }
    if (sampled == 0 && to_sample > 0 && children.empty()) throw NoAdmissibleGenome{attempts};
    return children;
  }

  // The offspring of generation `generation` (>= 1), bred from `population`
  // (the survivors of generation - 1).
  std::vector<Child<G>> make_offspring(const std::vector<Individual<G>>& population, int generation) const {
    Rng rng(derive_seed(settings_.seed, static_cast<uint64_t>(generation)));
    const auto keys = rank_and_crowding(population);
    std::set<std::string> seen;
    if (problem_.identity)
      for (const auto& member : population) seen.insert(problem_.identity(member.genome));

    const std::size_t wanted = static_cast<std::size_t>(settings_.offspring);
    std::vector<Child<G>> children;
    std::size_t attempts = 0;
    // A space where admissible children are rare ends the generation with
    // fewer children rather than looping forever.
    while (children.size() < wanted && attempts < max_attempts(wanted)) {
      std::vector<Child<G>> batch;
      switch (settings_.algorithm) {
        case Algorithm::nsga2:
          batch = breed_nsga2(population, keys, rng);
          break;
        case Algorithm::random:
          batch.push_back({problem_.sample(rng), {}, "sample"});
          break;
        case Algorithm::aging:
          batch.push_back(breed_aging(population, keys, rng));
          break;
      }
      for (auto& child : batch) {
        ++attempts;
        if (children.size() == wanted) break;
        if (!admissible(child.genome)) continue;
        if (!accept(child.genome, seen, attempts, wanted)) continue;
        children.push_back(std::move(child));
      }
    }
    return children;
  }

  // The population of the next generation. NSGA-II and random search keep the
  // best `population` of parents and offspring together ((mu+lambda) elitism:
  // whole fronts in rank order, the last one cut by crowding distance), ordered
  // best first. Aging evolution appends the offspring and drops the oldest, so
  // its population stays in age order (oldest first).
  std::vector<Individual<G>> survive(const std::vector<Individual<G>>& population,
                                     const std::vector<Individual<G>>& offspring) const {
    std::vector<Individual<G>> merged = population;
    merged.insert(merged.end(), offspring.begin(), offspring.end());
    const std::size_t keep = std::min(merged.size(), static_cast<std::size_t>(settings_.population));
    if (settings_.algorithm == Algorithm::aging) {
      return std::vector<Individual<G>>(merged.end() - static_cast<std::ptrdiff_t>(keep), merged.end());
    }
    const auto keys = rank_and_crowding(merged);
    std::vector<std::size_t> order(merged.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    // Stable: equal keys keep their merged order, so the result is the same everywhere.
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return crowded_better(keys, a, b); });
    std::vector<Individual<G>> survivors;
    survivors.reserve(keep);
    for (std::size_t k = 0; k < keep; ++k) survivors.push_back(merged[order[k]]);
    return survivors;
  }

  // Evaluate children through the problem callback.
  std::vector<Individual<G>> evaluate(const std::vector<Child<G>>& children, int generation) const {
    std::vector<G> genomes;
    genomes.reserve(children.size());
    for (const auto& child : children) genomes.push_back(child.genome);
    const auto fitness = problem_.evaluate(genomes, generation);
    std::vector<Individual<G>> out;
    out.reserve(children.size());
    for (std::size_t i = 0; i < children.size(); ++i) out.push_back({children[i].genome, fitness.at(i)});
    return out;
  }

  // The whole run in memory: generation 0, then settings.generations more.
  // `on_generation(g, population)` sees each generation's survivors.
  std::vector<Individual<G>> run(
      const std::function<void(int, const std::vector<Individual<G>>&)>& on_generation = {}) const {
    auto population = survive({}, evaluate(initial_candidates(), 0));
    if (on_generation) on_generation(0, population);
    for (int g = 1; g <= settings_.generations; ++g) {
      population = survive(population, evaluate(make_offspring(population, g), g));
      if (on_generation) on_generation(g, population);
    }
    return population;
  }

 private:
  bool admissible(const G& genome) const { return !problem_.admissible || problem_.admissible(genome); }

  // How many genomes one batch may draw before it gives up on filling itself.
  static std::size_t max_attempts(std::size_t wanted) { return 200 * wanted + 1000; }

  // A duplicate of a genome already in the population or in this batch is
  // refused, unless the problem offers too few distinct genomes, in which case
  // after many attempts duplicates are let through (and cost nothing, since
  // evaluations are cached by hash) rather than looping forever.
  bool accept(const G& genome, std::set<std::string>& seen, std::size_t attempts, std::size_t wanted) const {
    if (!problem_.identity) return true;
    const bool fresh = seen.insert(problem_.identity(genome)).second;
    return fresh || attempts > 50 * wanted;
  }

  std::size_t tournament(const RankCrowding& keys, std::size_t size, Rng& rng) const {
    const auto last = static_cast<int64_t>(size) - 1;
    std::size_t best = static_cast<std::size_t>(rng.integer(0, last));
    for (int k = 1; k < settings_.tournament_size; ++k) {
      const auto contender = static_cast<std::size_t>(rng.integer(0, last));
      if (crowded_better(keys, contender, best)) best = contender;
    }
    return best;
  }

  std::vector<Child<G>> breed_nsga2(const std::vector<Individual<G>>& population, const RankCrowding& keys,
                                    Rng& rng) const {
    const std::size_t a = tournament(keys, population.size(), rng);
    const std::size_t b = tournament(keys, population.size(), rng);
    std::vector<G> genomes;
    std::string how;
    if (rng.bernoulli(settings_.crossover_probability)) {
      genomes = problem_.crossover(population[a].genome, population[b].genome, rng);
      how = "crossover";
    } else {
      genomes = {population[a].genome, population[b].genome};
      how = "copy";
    }
    std::vector<Child<G>> children;
    for (auto& genome : genomes) {
      std::string name = how;
      if (rng.bernoulli(settings_.mutation_probability)) {
        genome = problem_.mutate(genome, rng);
        name = how == "copy" ? "mutate" : how + "+mutate";
      }
      children.push_back({std::move(genome), {a, b}, name});
    }
    return children;
  }

  // Regularised evolution: the best of a uniform sample (without replacement)
  // of the population, by rank then crowding, is mutated.
  Child<G> breed_aging(const std::vector<Individual<G>>& population, const RankCrowding& keys,
                       Rng& rng) const {
    std::vector<std::size_t> pool(population.size());
    std::iota(pool.begin(), pool.end(), std::size_t{0});
    const std::size_t sample = std::min(pool.size(), static_cast<std::size_t>(settings_.aging_sample_size));
    std::size_t best = 0;
    for (std::size_t k = 0; k < sample; ++k) {  // partial Fisher-Yates
      const auto pick = static_cast<std::size_t>(
          rng.integer(static_cast<int64_t>(k), static_cast<int64_t>(pool.size()) - 1));
      std::swap(pool[k], pool[pick]);
      if (k == 0 || crowded_better(keys, pool[k], best)) best = pool[k];
    }
    return {problem_.mutate(population[best].genome, rng), {best}, "mutate"};
  }

  SearchSettings settings_;
  ProblemCallbacks<G> problem_;
};

}  // namespace livs::search
