// bench/search_throughput: candidates per minute when several candidates
// train at once on one device (issue 15, item 2), and on several GPUs
// (issue 20's scaling table: --gpus).
//
// A search with `--workers N` runs N evaluations in flight, each on its own
// thread with its own backend (on the GPU: its own CUDA stream, cuBLAS handle
// and captured step graph). Small models leave most of an H200 idle, so this
// is where search throughput comes from. This program times exactly that
// path: a fixed list of candidates, each trained and scored by
// proxies::evaluate() (what the search calls), with N threads taking the next
// candidate as they free up, for each N of --workers. With --gpus G1,G2,...
// each row runs N lanes on each of the first G GPUs (lanes interleaved, as
// `livsearch search --devices` runs them: search/lanes.hpp), for every G
// and N.
//
// The list: the presets at the config's model size, then genomes sampled
// from the config's search space (seeded, so the list is the same every run)
// until it holds at least --genomes candidates and covers every LIV class,
// every fusion kind, both sharing genes and the differential form; genomes
// over the config's `params` constraint are skipped, as the search screens
// them. A warm-up evaluation runs first so that no row pays for the device's
// start-up or the corpus's tokenisation.
//
//   search_throughput [--config bench/search_quality/gpu.json] [--workers 1,2,4,8]
//                     [--genomes 24] [--device auto] [--gpus 1,2,4,8] [--seed 1] [--list-only]
//                     [--kernel-timeline]
//
// Output: one row per GPU count and worker count (candidates per minute,
// speed-up over the first row, median and max seconds per candidate,
// failures), the median seconds of each of evaluate()'s phases (setup,
// build, training, validation, checks, other: where a candidate's time goes
// as workers share the device), the share of lanes x wall the lanes spent
// evaluating (the rest is the end of the list, where lanes wait for the
// last candidates), and one "JSON {...}" line per row. Numbers
// go to docs/benchmarks.md, never to a test.
//
// --kernel-timeline (CUDA): every kernel, copy and fill the device ran
// (bench/kernel_timeline/, CUPTI), and per row the share of the wall time
// the device ran anything, how many ran at once while it did, the device
// work per candidate against the first row's, and the kernels whose time
// grew the most against the first row: whether candidates that share the
// device wait for each other's kernels (busy near 100%), run them slower
// (work per candidate grows) or leave it idle (neither).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cxxopts.hpp>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "bench/kernel_timeline/cupti_tracer.hpp"
#include "cli/config.hpp"
#include "cli/run_support.hpp"
#include "common/evaluate_contract.hpp"
#include "common/input_error.hpp"
#include "common/rng.hpp"
#include "evaluator/backend_factory.hpp"
#include "genome/decode.hpp"
#include "genome/genome_json.hpp"
#include "genome/operators.hpp"
#include "genome/presets.hpp"
#include "proxies/evaluate.hpp"
#include "search/lanes.hpp"

using namespace livs;

namespace {

struct Candidate {
  std::string origin;  // "preset lfm2" or "sampled 7"
  genome::Genome genome;
  std::string hash;
};

// What the list must cover: every class, fusion kind, sharing gene and the
// differential form, each by at least one candidate.
struct Coverage {
  std::set<std::string> seen;

  void add(const genome::Genome& g) {
    for (const auto& slot : g.slots) {
      seen.insert(std::string("fusion ") + genome::to_string(slot.fusion));
      for (const auto& op : slot.ops) {
        seen.insert(std::string("class ") + genome::to_string(op.cls));
        if (op.featurizer.valid()) seen.insert("featurizer sharing");
        if (op.features.valid()) seen.insert("feature sharing");
        if (op.differential) seen.insert("differential");
      }
    }
  }

  static std::vector<std::string> wanted() {
    std::vector<std::string> out;
    for (const auto c : genome::kAllClasses) out.push_back(std::string("class ") + genome::to_string(c));
    for (const auto f : {genome::FusionKind::none, genome::FusionKind::sum, genome::FusionKind::mean,
                         genome::FusionKind::gate})
      out.push_back(std::string("fusion ") + genome::to_string(f));
    out.insert(out.end(), {"featurizer sharing", "feature sharing", "differential"});
    return out;
  }

  std::vector<std::string> missing() const {
    std::vector<std::string> out;
    for (const auto& w : wanted())
      if (!seen.count(w)) out.push_back(w);
    return out;
  }
};

std::optional<double> params_limit(const cli::Config& config) {
  for (const auto& c : config.search.constraints)
    if (c.metric == "params" && c.max) return *c.max;
  return std::nullopt;
}

Candidate make_candidate(std::string origin, genome::Genome g, const cli::Config& config) {
  g.vocab = config.data.vocab;
  g = genome::canonicalize(g);
  std::string hash = genome::genome_hash(g);
  return {std::move(origin), std::move(g), std::move(hash)};
}

// The presets, then sampled genomes until the list is long enough and covers
// everything (or the attempts run out: the missing items are reported).
std::vector<Candidate> candidate_list(const cli::Config& config, int wanted, uint64_t seed,
                                      std::vector<std::string>& missing) {
  const auto limit = params_limit(config);
  auto fits = [&](const genome::Genome& g) {
    return !limit || double(genome::decode(g).params_total()) <= *limit;
  };
  std::vector<Candidate> out;
  std::set<std::string> hashes;
  Coverage coverage;
  auto take = [&](Candidate c) {
    if (!fits(c.genome) || !hashes.insert(c.hash).second) return false;
    coverage.add(c.genome);
    out.push_back(std::move(c));
    return true;
  };
  for (const auto& name : genome::preset_names())
    take(make_candidate("preset " + name, genome::preset(name, config.model.d_model, config.model.layers),
                        config));
  Rng rng(seed);
  for (int attempt = 0; attempt < 20000; ++attempt) {
    if (int(out.size()) >= wanted && coverage.missing().empty()) break;
    Candidate c = make_candidate("", genome::sample(config.space, rng), config);
    // Past the wanted length, only a genome that covers something new joins.
    if (int(out.size()) >= wanted) {
      Coverage with = coverage;
      with.add(c.genome);
      if (with.seen.size() == coverage.seen.size()) continue;
    }
    c.origin = "sampled " + std::to_string(attempt);
    take(std::move(c));
  }
  missing = coverage.missing();
  return out;
}

struct Row {
  int workers = 0;  // per device
  int devices = 1;
  double wall_seconds = 0.0;
  std::vector<double> candidate_seconds;
  std::vector<double> train_seconds;  // of the candidates that trained; the rest of a candidate's
                                      // seconds is its fixed cost (build, validation, memory checks)
  std::map<std::string, std::vector<double>> phase_seconds;  // evaluate()'s phases, of those that ended well
  // The lanes' time inside evaluate() over lanes x wall: below 1 where lanes
  // waited, at the end, for the last candidates of the list.
  double lane_busy_fraction = 0.0;
  int failed = 0;
  std::vector<std::string> errors;
};

EvalRequest request_for(const Candidate& c, const Json& settings, const cli::Config& config,
                        const std::string& device) {
  EvalRequest r;
  r.genome = genome::to_canonical_json(c.genome);
  r.genome_hash = c.hash;
  r.fidelity = 1.0;
  r.seed = evaluation_seed(config.seed, c.hash, 0);
  r.settings = settings;
  r.device = device;
  return r;
}

// One thread per lane; each takes the next candidate as it frees up.
Row run_row(const std::vector<Candidate>& list, const std::vector<search::Lane>& lanes, const Json& settings,
            const cli::Config& config) {
  Row row;
  row.candidate_seconds.assign(list.size(), 0.0);
  std::atomic<std::size_t> next{0};
  std::mutex mutex;
  double lane_seconds = 0.0;
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (const auto& lane : lanes)
    threads.emplace_back([&, device = lane.device] {
      for (std::size_t i = next++; i < list.size(); i = next++) {
        const auto began = std::chrono::steady_clock::now();
        const EvalResult r = proxies::evaluate(request_for(list[i], settings, config, device));
        const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
        std::lock_guard lock(mutex);
        lane_seconds += took;
        row.candidate_seconds[i] = r.wall_seconds;
        if (const auto it = r.metrics.find("train_seconds"); it != r.metrics.end())
          row.train_seconds.push_back(it->second);
        for (const auto& [phase, seconds] : r.phase_seconds) row.phase_seconds[phase].push_back(seconds);
        if (r.status != EvalStatus::ok) {
          ++row.failed;
          row.errors.push_back(list[i].origin + ": " + r.error);
        }
      }
    });
  for (auto& t : threads) t.join();
  row.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  row.lane_busy_fraction =
      row.wall_seconds > 0 ? lane_seconds / (double(lanes.size()) * row.wall_seconds) : 0.0;
  return row;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// A comma-separated list of integers in [1, 64]; `flag` names it in errors.
std::vector<int> parse_counts(const std::string& text, const std::string& flag) {
  std::vector<int> out;
  std::size_t begin = 0;
  while (begin <= text.size()) {
    const std::size_t comma = std::min(text.find(',', begin), text.size());
    const std::string item = text.substr(begin, comma - begin);
    std::size_t used = 0;
    int n = 0;
    try {
      n = std::stoi(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size() || item.empty() || n < 1 || n > 64)
      throw InputError(flag, "",
                       "expected a comma-separated list of integers in [1, 64], got '" + text + "'");
    out.push_back(n);
    begin = comma + 1;
  }
  return out;
}

// The names whose time grew the most against the first row (at most 8).
void print_most_added(const bench::Timeline& now, const bench::Timeline& first, const char* what) {
  std::printf("  %s with the most time added against the first row (count, seconds, the first row's):\n",
              what);
  int shown = 0;
  for (const auto& c : bench::compare_by_name(now, first)) {
    if (shown++ == 8 || c.added_seconds() <= 0.0) break;
    std::printf("    %-60s %8zu %9.4f %9.4f  +%.4f\n", c.name.c_str(), c.count, c.seconds, c.baseline_seconds,
                c.added_seconds());
  }
}

// The first row's trace and its totals: the baseline of the later rows (the
// same candidates, its workers' count), summarised once.
struct FirstTrace {
  bench::KernelTracer::Trace trace;
  double device_seconds = 0.0, call_seconds = 0.0;
};

// The --kernel-timeline lines of a row.
void report_timeline(bench::KernelTracer::Trace trace, const Row& row, std::size_t candidates,
                     FirstTrace& first, Json& line) {
  const double n = double(candidates);
  const bench::TimelineSummary device = bench::summarize(trace.device, row.wall_seconds);
  const bench::TimelineSummary calls = bench::summarize(trace.host_calls, row.wall_seconds);
  const bool is_first = first.trace.device.empty();
  if (is_first) {
    first.device_seconds = device.span_seconds;
    first.call_seconds = calls.span_seconds;
  }
  const double first_device = first.device_seconds, first_calls = first.call_seconds;
  std::printf(
      "  device: busy %.1f%% of the row's %.2f s, %.2f kernels at once while busy, device work %.4f s a "
      "candidate (%.2fx the first row's); %zu spans on %zu streams, %zu records dropped\n",
      100.0 * device.busy_fraction(), row.wall_seconds, device.mean_overlap(), device.span_seconds / n,
      first_device > 0 ? device.span_seconds / first_device : 0.0, device.spans, device.streams,
      trace.dropped);
  std::printf("  host: CUDA runtime calls %.4f s a candidate (%.2fx the first row's), %zu calls\n",
              calls.span_seconds / n, first_calls > 0 ? calls.span_seconds / first_calls : 0.0, calls.spans);
  line["kernel_timeline"] = {{"busy_fraction", device.busy_fraction()},
                             {"kernels_at_once", device.mean_overlap()},
                             {"device_seconds_per_candidate", device.span_seconds / n},
                             {"runtime_call_seconds_per_candidate", calls.span_seconds / n},
                             {"spans", device.spans},
                             {"streams", device.streams},
                             {"dropped", trace.dropped}};
  if (is_first) {
    first.trace = std::move(trace);
    return;
  }
  print_most_added(trace.device, first.trace.device, "kernels");
  print_most_added(trace.host_calls, first.trace.host_calls, "runtime calls");
}

int run(int argc, char** argv) {
  cxxopts::Options options("search_throughput",
                           "Candidates per minute on one device at several worker counts (issue 15)");
  options.add_options()("config", "a livsearch config: data, training, search space, constraints",
                        cxxopts::value<std::string>()->default_value("bench/search_quality/gpu.json"))(
      "workers", "comma-separated worker counts", cxxopts::value<std::string>()->default_value("1,2,4,8"))(
      "genomes", "at least this many candidates (presets first)", cxxopts::value<int>()->default_value("24"))(
      "device", "auto, cpu, cuda or cuda:N (default: the config's)", cxxopts::value<std::string>())(
      "gpus", "comma-separated GPU counts: each row uses cuda:0 .. cuda:G-1 (instead of --device)",
      cxxopts::value<std::string>())("seed", "seed of the sampled genomes",
                                     cxxopts::value<uint64_t>()->default_value("1"))(
      "list-only", "print the candidate list and stop")(
      "kernel-timeline", "trace the device's kernels (CUPTI) and say how the rows shared it")("h,help",
                                                                                              "this help");
  const auto args = options.parse(argc, argv);
  if (args.count("help")) {
    std::cout << options.help() << "\n";
    return 0;
  }
  const cli::Config config = cli::load_config(args["config"].as<std::string>());
  const std::vector<int> worker_counts = parse_counts(args["workers"].as<std::string>(), "--workers");
  std::vector<int> gpu_counts;
  if (args.count("gpus")) {
    gpu_counts = parse_counts(args["gpus"].as<std::string>(), "--gpus");
    const int visible = evaluator::cuda_device_count();
    for (const int g : gpu_counts)
      if (g > visible)
        throw InputError("--gpus", "",
                         std::to_string(g) + " GPUs asked for, this machine has " + std::to_string(visible));
  }
  const int wanted = args["genomes"].as<int>();
  if (wanted < 1 || wanted > 10000)
    throw InputError("--genomes", "", "expected an integer in [1, 10000], got " + std::to_string(wanted));

  std::vector<std::string> missing;
  const auto list = candidate_list(config, wanted, args["seed"].as<uint64_t>(), missing);
  std::printf("config %s: %zu candidates, %d steps of %d x %d tokens each\n", config.path.c_str(),
              list.size(), config.train.steps, config.train.batch_size, config.train.seq_len);
  for (const auto& c : list)
    std::printf("  %-14s %s  %s\n", c.origin.c_str(), c.hash.substr(0, 12).c_str(),
                genome::summary(c.genome).c_str());
  if (!missing.empty()) {
    std::string text;
    for (const auto& m : missing) text += (text.empty() ? "" : ", ") + m;
    std::printf("not covered by the list (the search space may exclude them): %s\n", text.c_str());
  }
  std::fflush(stdout);
  if (args.count("list-only")) return 0;

  // The device sets of the rows: the --device alone, or the first G GPUs for each G of --gpus.
  std::vector<std::vector<std::string>> device_sets;
  if (gpu_counts.empty()) {
    device_sets.push_back(
        {cli::resolve_device(args.count("device") ? args["device"].as<std::string>() : config.device)});
  } else {
    for (const int g : gpu_counts) {
      std::vector<std::string> devices;
      for (int d = 0; d < g; ++d) devices.push_back("cuda:" + std::to_string(d));
      device_sets.push_back(devices);
    }
  }
  const Json settings = proxies::to_json(cli::eval_settings_of(config));
  // Traced from before any backend or step graph exists (cupti_tracer.hpp).
  std::unique_ptr<bench::KernelTracer> tracer;
  if (args.count("kernel-timeline")) {
    // Its figures (busy share, kernels at once) are one device's.
    if (!gpu_counts.empty())
      throw InputError("--kernel-timeline", "", "traces one device; give --device instead of --gpus");
    for (const auto& devices : device_sets)
      for (const auto& device : devices)
        if (device.rfind("cuda", 0) != 0)
          throw InputError("--kernel-timeline", "", "traces a CUDA device; the rows run on " + device);
    std::string why_not;
    tracer = bench::KernelTracer::start(why_not);
    if (!tracer) throw std::runtime_error("--kernel-timeline: " + why_not);
  }
  // Warm-up: each device's start-up and the corpus's tokenisation, paid once.
  for (const auto& device : device_sets.back())
    proxies::evaluate(request_for(list.front(), settings, config, device));
  if (tracer) (void)tracer->take();  // the warm-up's
  FirstTrace first_trace;

  std::printf("\n%-6s %-8s %12s %10s %10s %12s %12s %14s %7s\n", "gpus", "workers", "wall s", "cand/min",
              "speed-up", "median s", "max s", "median train s", "failed");
  double first_rate = 0.0;
  for (const auto& devices : device_sets) {
    for (const int workers : worker_counts) {
      Row row = run_row(list, search::local_lanes(devices, workers), settings, config);
      row.workers = workers;
      row.devices = static_cast<int>(devices.size());
      const double rate = 60.0 * double(list.size()) / row.wall_seconds;
      if (first_rate == 0.0) first_rate = rate;
      const double max_s = *std::max_element(row.candidate_seconds.begin(), row.candidate_seconds.end());
      std::printf("%-6d %-8d %12.1f %10.2f %9.2fx %12.2f %12.2f %14.2f %7d\n", row.devices, workers,
                  row.wall_seconds, rate, rate / first_rate, median(row.candidate_seconds), max_s,
                  median(row.train_seconds), row.failed);
      // Where a candidate's time goes as the workers share the device.
      Json phases = Json::object();
      std::string phase_line;
      for (const auto& [phase, seconds] : row.phase_seconds) {
        const double typical = median(seconds);
        phases[phase] = typical;
        char part[64];
        std::snprintf(part, sizeof part, " %s %.3f", phase.c_str(), typical);
        phase_line += part;
      }
      if (!phase_line.empty()) std::printf("  median s by phase:%s\n", phase_line.c_str());
      std::printf(
          "  lanes busy %.1f%% of the row (the rest: lanes idle at the end, waiting for the last "
          "candidates)\n",
          100.0 * row.lane_busy_fraction);
      for (const auto& e : row.errors) std::printf("  failed: %s\n", e.c_str());
      Json line = {{"devices", devices},
                   {"workers", workers},
                   {"candidates", list.size()},
                   {"wall_seconds", row.wall_seconds},
                   {"candidates_per_minute", rate},
                   {"speedup", rate / first_rate},
                   {"median_candidate_seconds", median(row.candidate_seconds)},
                   {"max_candidate_seconds", max_s},
                   {"median_train_seconds", median(row.train_seconds)},
                   {"median_phase_seconds", phases},
                   {"lane_busy_fraction", row.lane_busy_fraction},
                   {"failed", row.failed}};
      if (tracer) report_timeline(tracer->take(), row, list.size(), first_trace, line);
      std::printf("JSON %s\n", line.dump().c_str());
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const InputError& e) {
    std::fprintf(stderr, "search_throughput: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "search_throughput: %s\n", e.what());
    return 1;
  }
}
