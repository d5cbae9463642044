// bench/zdt: our NSGA-II loop on ZDT1, ZDT2, ZDT3, ZDT4, ZDT6 and DTLZ2 with
// the settings of Deb et al. 2002 (population 100, 250 generations, SBX and
// polynomial mutation with distribution index 20, crossover 0.9, mutation 1/n),
// over several seeds. Prints per problem the median IGD and the median
// hypervolume ratio: the hypervolume of the final first front with reference
// 1.1 on every objective, divided by that of a dense sampling of the analytic front.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cxxopts.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "search/benchmark_problems.hpp"

using namespace livs::search;

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) out.push_back(item);
  return out;
}

// The acceptance thresholds for the hypervolume ratio.
double target_ratio(const std::string& name) {
  if (name == "zdt1") return 0.990;
  if (name == "zdt2") return 0.985;
  if (name == "zdt3") return 0.995;
  if (name == "zdt4") return 0.975;
  if (name == "zdt6") return 0.970;
  if (name == "dtlz2") return 0.86;
  return 0.0;
}

}  // namespace

int main(int argc, char** argv) {
  cxxopts::Options options("zdt", "NSGA-II on ZDT/DTLZ benchmark problems against their analytic fronts");
  options.add_options()("problems", "comma-separated problems",
                        cxxopts::value<std::string>()->default_value("zdt1,zdt2,zdt3,zdt4,zdt6,dtlz2"))(
      "seeds", "number of seeds (1..N)", cxxopts::value<int>()->default_value("5"))(
      "population", "population size", cxxopts::value<int>()->default_value("100"))(
      "generations", "generations, the initial one included", cxxopts::value<int>()->default_value("250"))(
      "h,help", "this help");
  const auto args = options.parse(argc, argv);
  if (args.count("help")) {
    std::printf("%s\n", options.help().c_str());
    return 0;
  }
  const int seeds = args["seeds"].as<int>();
  const int population = args["population"].as<int>();
  const int generations = args["generations"].as<int>();
  if (seeds < 1 || population < 4 || generations < 1) {
    std::fprintf(stderr, "error: need --seeds >= 1, --population >= 4, --generations >= 1\n");
    return 2;
  }

  std::printf(
      "NSGA-II, population %d, %d generations, SBX eta 20 p 0.9, polynomial mutation eta 20 p 1/n, %d "
      "seeds\n",
      population, generations, seeds);
  std::printf("%-6s %4s %12s %12s %12s %12s %8s %6s\n", "problem", "n", "median IGD", "median HV", "true HV",
              "HV ratio", "target", "ok");
  bool all_ok = true;
  for (const auto& name : split(args["problems"].as<std::string>())) {
    BenchmarkProblem problem;
    try {
      problem = make_benchmark_problem(name);
    } catch (const std::invalid_argument& e) {
      std::fprintf(stderr, "error: %s\n", e.what());
      return 2;
    }
    const std::vector<double> reference(static_cast<std::size_t>(problem.objectives), 1.1);
    const double true_hv =
        hypervolume(problem.true_front(problem.objectives == 2 ? 20000 : 20000), reference);
    const auto igd_reference = problem.true_front(problem.objectives == 2 ? 1000 : 1000);

    std::vector<double> igds, hvs;
    const auto start = std::chrono::steady_clock::now();
    for (int seed = 1; seed <= seeds; ++seed) {
      const Evolution<std::vector<double>> nsga2(benchmark_settings(population, generations - 1, seed),
                                                 real_problem_callbacks(problem));
      const auto front = first_front(nsga2.run());
      igds.push_back(inverted_generational_distance(front, igd_reference));
      hvs.push_back(hypervolume(front, reference));
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double ratio = median(hvs) / true_hv;
    const bool ok = ratio >= target_ratio(name);
    all_ok = all_ok && ok;
    std::printf("%-6s %4zu %12.6f %12.6f %12.6f %12.4f %8.3f %6s  (%.1f s)\n", name.c_str(),
                problem.bounds.lower.size(), median(igds), median(hvs), true_hv, ratio, target_ratio(name),
                ok ? "yes" : "NO", seconds);
    std::fflush(stdout);
  }
  return all_ok ? 0 : 1;
}
