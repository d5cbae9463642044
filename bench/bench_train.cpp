// bench/bench_train: training speed of every preset (issue 7, item 6).
//
// Each row is its own process (bench_train --row ...), so the whole-candidate
// time counts everything a candidate costs: process start, CUDA start-up,
// building the model, `steps` training steps through
// evaluator::train_and_evaluate (the trainer the search uses), and the
// validation pass, up to the perplexity. Inside that run every step is timed
// (the progress callback synchronises the device before reading the clock);
// ms/step is the median over the steps after `warmup`.
// Without --row, bench_train runs one such process per row and prints the
// table plus one "JSON {...}" line per row (the same protocol as
// bench/torch_reference.py, so the two tables sit side by side).
//
// Data: synthetic uniform tokens from livs::Rng (no corpus read), the same
// for every implementation; the perplexity is only there to show the run ended.
//
// MFU: model FLOPs per token / step time / 989e12 (H100 SXM dense bf16), with
//   flops/token = 6 * (N_non_embedding + V * d)  +  12 * sum_sa(T_eff * heads * head_dim)
// (PaLM's convention: the tied LM head counts as a matmul of V*d; every
// attention layer adds 12 * T * d_attn for QK^T and AV in forward and
// backward, T_eff = min(T, window); the scans' own FLOPs are not counted.)
//
// --profile runs, per row, a second process that wraps the backend in
// ProfilingBackend (synchronise around every backend call) and prints the
// time per kernel family per step.
//
// --kernel-timeline runs, per row, another process that trains the same
// way with CUPTI tracing every kernel (bench/kernel_timeline/): over the
// timed steps, the device's busy and idle time per step (idle: the gaps
// between dependent launches, what PDL and fewer launches remove) and the
// kernels' own time per step, the longest first. Nothing is synchronised,
// so the graph replays as in a search; the step time of that process (it
// pays tracing's cost per launch) is not the row's.
//
//   bench_train [--device cuda] [--presets a,b] [--d-models 128,512] [--mfu-row] [--profile]
//   bench_train --presets none --genomes bench/moe_step/moe-8x256-top2.json,bench/moe_step/swiglu-512.json
// (the second: a MoE genome against the same genome with every moe replaced
// by a swiglu of equal active parameters, issue 15's MoE target)
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cxxopts.hpp>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "bench/kernel_timeline/cupti_tracer.hpp"
#include "bench/profiling_backend.hpp"
#include "common/rng.hpp"
#include "evaluator/backend_factory.hpp"
#include "evaluator/model.hpp"
#include "evaluator/trainer.hpp"
#include "genome/decode.hpp"
#include "genome/genome_json.hpp"
#include "genome/presets.hpp"

using namespace livs;
using Clock = std::chrono::steady_clock;

namespace {

constexpr double kPeakFlops = 989e12;  // H100 SXM, dense bf16 tensor cores

struct RowConfig {
  std::string preset;
  int d_model = 128, layers = 4, batch = 16, seq = 128, vocab = 256, steps = 300, warmup = 10;
  int64_t eval_tokens = 65536;
  std::string device = "cuda";
  uint64_t seed = 1;
  bool trace = false;  // --kernel-timeline: CUPTI traces the row's kernels
};

// Seconds since this process started (kernel's start time vs. uptime), so the
// whole-candidate time includes loading the program and its libraries.
double seconds_since_process_start() {
  std::ifstream stat("/proc/self/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  // Field 22 (starttime, in clock ticks since boot) follows the ")" closing the command name.
  std::istringstream rest(text.substr(text.rfind(')') + 2));
  std::string field;
  for (int i = 3; i < 22; ++i) rest >> field;
  double start_ticks = 0;
  rest >> start_ticks;
  std::ifstream uptime_file("/proc/uptime");
  double uptime = 0;
  uptime_file >> uptime;
  return uptime - start_ticks / double(sysconf(_SC_CLK_TCK));
}

// A row's "preset" is a preset name, or a genome file (a name ending in
// .json, from --genomes: its own width and slots, the row's vocabulary).
bool is_genome_file(const std::string& preset) {
  return preset.size() > 5 && preset.compare(preset.size() - 5, 5, ".json") == 0;
}

genome::ModelSpec spec_for(const RowConfig& c) {
  genome::Genome g = is_genome_file(c.preset) ? genome::genome_from_file(c.preset)
                                              : genome::preset(c.preset, c.d_model, c.layers);
  g.vocab = c.vocab;
  return genome::decode(g);
}

double flops_per_token(const genome::ModelSpec& spec, int seq) {
  double flops = 6.0 * (double(spec.params_non_embedding()) + double(spec.vocab) * spec.d_model);
  for (const auto& slot : spec.slots)
    for (const auto& op : slot.ops)
      if (op.cls == genome::LivClass::sa) {
        const int keys = op.sa.window > 0 ? std::min(seq, op.sa.window) : seq;
        flops += 12.0 * keys * op.sa.heads * op.sa.head_dim * (op.differential ? 2 : 1);
      }
  return flops;
}

std::vector<uint16_t> uniform_tokens(int64_t count, int vocab, uint64_t seed) {
  Rng rng(seed);
  std::vector<uint16_t> tokens(count);
  for (auto& t : tokens) t = uint16_t(rng.integer(0, vocab - 1));
  return tokens;
}

double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// The names of a timeline by time per step, the longest first (at most `limit`).
nlohmann::json per_step_by_name(const bench::Timeline& timeline, int steps, std::size_t limit) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& k : bench::compare_by_name(timeline, bench::Timeline{})) {
    if (out.size() == limit) break;
    out.push_back({{"name", k.name},
                   {"calls_per_step", steps > 0 ? double(k.count) / steps : 0.0},
                   {"ms_per_step", steps > 0 ? k.seconds * 1e3 / steps : 0.0}});
  }
  return out;
}

// The timed steps as the device and the host ran them: per step, the wall
// time, the time any kernel ran, the kernels' own time, each kernel name's
// calls and time (the 25 longest) and the host's CUDA runtime calls (the 8
// longest; a wait for the device counts as the call's time).
nlohmann::json timeline_json(const bench::Timeline& device, const bench::Timeline& host_calls,
                             double window_seconds, int steps, std::size_t dropped) {
  const bench::TimelineSummary s = bench::summarize(device, window_seconds);
  const double per_step = steps > 0 ? 1e3 / steps : 0.0;  // seconds in the window -> ms a step
  return {{"steps", steps},
          {"ms_per_step", window_seconds * per_step},
          {"busy_ms_per_step", s.busy_seconds * per_step},
          {"kernel_ms_per_step", s.span_seconds * per_step},
          {"launches_per_step", steps > 0 ? double(s.spans) / steps : 0.0},
          {"dropped", dropped},
          {"kernels", per_step_by_name(device, steps, 25)},
          {"runtime_calls", per_step_by_name(host_calls, steps, 8)}};
}

void print_timeline(const nlohmann::json& row) {
  const auto& t = row["kernel_timeline"];
  const double step = t["ms_per_step"].get<double>(), busy = t["busy_ms_per_step"].get<double>();
  std::printf(
      "kernel timeline %s d%d: %.3f ms a step while traced, the device busy %.3f (%.1f%%), idle %.3f, "
      "kernels %.3f ms, %.0f launches a step, %zu records dropped\n",
      row["preset"].get<std::string>().c_str(), row["d_model"].get<int>(), step, busy,
      step > 0 ? 100.0 * busy / step : 0.0, step - busy, t["kernel_ms_per_step"].get<double>(),
      t["launches_per_step"].get<double>(), t["dropped"].get<std::size_t>());
  for (const char* part : {"kernels", "runtime_calls"}) {
    std::printf("  %s:\n", part);
    for (const auto& k : t[part])
      std::printf("    %-64s %8.3f ms %6.1f calls\n", k["name"].get<std::string>().c_str(),
                  k["ms_per_step"].get<double>(), k["calls_per_step"].get<double>());
  }
}

// One row: train through the search's own trainer and print one JSON line.
int run_row(const RowConfig& c) {
  const genome::ModelSpec spec = spec_for(c);
  // Tracing starts before the backend and the step graph exist
  // (cupti_tracer.hpp).
  std::unique_ptr<bench::KernelTracer> tracer;
  if (c.trace) {
    std::string why_not;
    tracer = bench::KernelTracer::start(why_not);
    if (!tracer) throw std::runtime_error("--kernel-timeline: " + why_not);
  }
  // The timed steps, on the tracer's clock: from the report of step `warmup`
  // (the first timed interval starts there) to the last report.
  uint64_t traced_from = 0, traced_to = 0;
  int reports = 0;
  const int first_timed_report = std::max(1, std::min(c.warmup, c.steps - 1));
  auto backend = evaluator::make_backend(c.device);
  evaluator::TrainSettings s;
  s.steps = c.steps;
  s.batch_size = c.batch;
  s.seq_len = c.seq;
  s.warmup_steps = std::min(60, c.steps);
  s.eval_tokens = c.eval_tokens;
  const auto train =
      uniform_tokens(int64_t(c.batch) * (c.seq + 1) * 64, c.vocab, derive_seed(c.seed, "train"));
  const auto valid = uniform_tokens(c.eval_tokens + 1, c.vocab, derive_seed(c.seed, "valid"));

  std::vector<double> step_seconds;
  auto last = Clock::now();
  // The trainer reports a step once its outputs have reached the host, with
  // the next step already queued: the intervals are the device's step times
  // (a synchronize here would also wait for that next step and leave the
  // device idle while the host prepares the one after).
  const auto progress = [&](int, double) {
    const auto now = Clock::now();
    step_seconds.push_back(std::chrono::duration<double>(now - last).count());
    last = now;
    if (tracer) {
      if (++reports == first_timed_report) traced_from = tracer->now_ns();
      traced_to = tracer->now_ns();
    }
  };
  last = Clock::now();
  const auto report = evaluator::train_and_evaluate(spec, s, train, valid, c.seed, *backend, progress);
  const double whole = seconds_since_process_start();
  // The first step's interval also holds the model's construction; warm-up steps are left out.
  std::vector<double> timed(step_seconds.begin() + std::min<size_t>(c.warmup, step_seconds.size()),
                            step_seconds.end());
  const double step = median(timed);
  const double fpt = flops_per_token(spec, c.seq);
  const double tokens_per_s = double(c.batch) * c.seq / step;
  nlohmann::json row = {{"impl", "livsearch"},
                        {"preset", c.preset},
                        {"d_model", c.d_model},
                        {"layers", c.layers},
                        {"batch", c.batch},
                        {"seq", c.seq},
                        {"vocab", c.vocab},
                        {"steps", c.steps},
                        {"params", spec.params_total()},
                        {"params_non_embedding", spec.params_non_embedding()},
                        {"flops_per_token", fpt},
                        {"ms_per_step", step * 1e3},
                        {"tokens_per_s", tokens_per_s},
                        {"mfu", fpt * tokens_per_s / kPeakFlops},
                        {"train_s", report.train_seconds},
                        {"eval_s", report.eval_seconds},
                        {"whole_s", whole},
                        {"perplexity", report.perplexity},
                        {"status", evaluator::to_string(report.status)},
                        {"error", report.error}};
  if (tracer) {
    const auto trace = tracer->take();
    row["kernel_timeline"] = timeline_json(
        clipped(trace.device, traced_from, traced_to), clipped(trace.host_calls, traced_from, traced_to),
        double(traced_to - traced_from) * 1e-9, reports - first_timed_report, trace.dropped);
  }
  std::printf("JSON %s\n", row.dump().c_str());
  return report.status == evaluator::TrainStatus::ok ? 0 : 1;
}

// The trainer's step (forward, backward, global norm, AdamW) on a
// ProfilingBackend: time per kernel family per step.
int run_profile(const RowConfig& c, int steps) {
  const genome::ModelSpec spec = spec_for(c);
  auto device = evaluator::make_backend(c.device);
  bench::ProfilingBackend backend(*device);
  evaluator::PlanShape shape;
  shape.batch = c.batch;
  shape.seq = c.seq;
  evaluator::Model model(spec, backend, shape, derive_seed(c.seed, "init"));
  const auto& params = model.parameters();
  Rng rng(derive_seed(c.seed, "profile"));
  std::vector<int32_t> inputs(int64_t(c.batch) * c.seq), targets(inputs.size());
  double wall = 0.0;
  for (int step = 1; step <= steps + 3; ++step) {
    const bool timed = step > 3;  // three untimed warm-up steps
    backend.set_timing(timed);
    for (size_t i = 0; i < inputs.size(); ++i) {
      inputs[i] = int32_t(rng.integer(0, c.vocab - 1));
      targets[i] = int32_t(rng.integer(0, c.vocab - 1));
    }
    device->synchronize();
    const auto start = Clock::now();
    model.forward(inputs.data(), targets.data());
    model.zero_grads();
    model.backward();
    const double norm = std::sqrt(backend.sum_of_squares(model.grads(), params.count()));
    evaluator::AdamWStep update;
    update.learning_rate = 1e-3f;
    update.grad_scale = norm > 1.0 ? float(1.0 / norm) : 1.0f;
    update.step = step;
    for (const auto* group : {&params.decayed(), &params.not_decayed()})
      if (group->count > 0)
        backend.adamw_update(model.values() + group->offset, model.grads() + group->offset,
                             model.adam_m() + group->offset, model.adam_v() + group->offset, group->count,
                             update);
    device->synchronize();
    if (timed) wall += std::chrono::duration<double>(Clock::now() - start).count();
  }
  double in_calls = 0.0;
  nlohmann::json families = nlohmann::json::object();
  for (const auto& [family, total] : backend.totals()) {
    in_calls += total.seconds;
    families[family] = {{"ms_per_step", total.seconds * 1e3 / steps},
                        {"calls_per_step", double(total.calls) / steps}};
  }
  nlohmann::json row = {{"impl", "livsearch-profile"},
                        {"preset", c.preset},
                        {"d_model", c.d_model},
                        {"seq", c.seq},
                        {"batch", c.batch},
                        {"vocab", c.vocab},
                        {"ms_per_step", wall * 1e3 / steps},
                        {"ms_outside_calls", (wall - in_calls) * 1e3 / steps},
                        {"families", families}};
  std::printf("PROFILE %s\n", row.dump().c_str());
  return 0;
}

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

std::string row_arguments(const RowConfig& c) {
  std::ostringstream a;
  a << " --preset " << c.preset << " --d-model " << c.d_model << " --layers " << c.layers << " --batch "
    << c.batch << " --seq " << c.seq << " --vocab " << c.vocab << " --steps " << c.steps << " --warmup "
    << c.warmup << " --eval-tokens " << c.eval_tokens << " --device " << c.device;
  return a.str();
}

// Runs a child process and returns the lines of its output that start with prefix.
std::vector<std::string> child_lines(const std::string& command, const std::string& prefix) {
  std::vector<std::string> lines;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return lines;
  char buffer[1 << 16];
  while (std::fgets(buffer, sizeof buffer, pipe)) {
    std::string line(buffer);
    if (line.rfind(prefix, 0) == 0)
      lines.push_back(line.substr(prefix.size()));
    else
      std::fputs(buffer, stderr);  // the child's own messages
  }
  pclose(pipe);
  return lines;
}

void print_profile(const nlohmann::json& p) {
  std::printf("profile %s d%d T%d: %.2f ms/step with a sync around every call (%.2f ms outside calls)\n",
              p["preset"].get<std::string>().c_str(), p["d_model"].get<int>(), p["seq"].get<int>(),
              p["ms_per_step"].get<double>(), p["ms_outside_calls"].get<double>());
  std::vector<std::pair<double, std::string>> order;
  for (const auto& [family, v] : p["families"].items())
    order.push_back({v["ms_per_step"].get<double>(), family});
  std::sort(order.rbegin(), order.rend());
  for (const auto& [ms, family] : order)
    std::printf("  %-36s %8.3f ms %5.1f%%  %6.1f calls\n", family.c_str(), ms,
                100.0 * ms / p["ms_per_step"].get<double>(),
                p["families"][family]["calls_per_step"].get<double>());
}

}  // namespace

int main(int argc, char** argv) {
  cxxopts::Options options("bench_train",
                           "training speed of every preset; see the header of bench_train.cpp");
  options.add_options()("device", "cpu, cuda or cuda:N",
                        cxxopts::value<std::string>()->default_value("cuda"))(
      "presets", "comma-separated presets (default: all; 'none' with --genomes)",
      cxxopts::value<std::string>()->default_value(""))(
      "genomes", "comma-separated genome files, a row each at their own width (e.g. bench/moe_step/*.json)",
      cxxopts::value<std::string>()->default_value(""))(
      "d-models", "comma-separated widths", cxxopts::value<std::string>()->default_value("128,512"))(
      "layers", "mixer + MLP pairs", cxxopts::value<int>()->default_value("4"))(
      "batch", "sequences per step", cxxopts::value<int>()->default_value("16"))(
      "seq", "tokens per sequence", cxxopts::value<int>()->default_value("128"))(
      "vocab", "vocabulary (256: byte-level, as candidates)", cxxopts::value<int>()->default_value("256"))(
      "steps", "training steps per candidate", cxxopts::value<int>()->default_value("300"))(
      "warmup", "steps left out of the median", cxxopts::value<int>()->default_value("10"))(
      "eval-tokens", "validation tokens", cxxopts::value<int64_t>()->default_value("65536"))(
      "mfu-row", "add the MFU row: transformer, vocab 50304, d 512, 8 layers, T 1024, batch 16",
      cxxopts::value<bool>()->default_value("true"))("profile",
                                                     "also print time per kernel family for each row",
                                                     cxxopts::value<bool>()->default_value("false"))(
      "profile-steps", "timed steps of a profile", cxxopts::value<int>()->default_value("10"))(
      "kernel-timeline", "also trace each row's kernels (CUPTI): busy and idle time a step, time per kernel")(
      "row", "internal: run one row in this process")(
      "preset", "internal: the row's preset", cxxopts::value<std::string>()->default_value("transformer"))(
      "d-model", "internal: the row's width", cxxopts::value<int>()->default_value("128"))(
      "profile-row", "internal: profile one row in this process")("h,help", "show this help");
  cxxopts::ParseResult args;
  try {
    args = options.parse(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
  if (args.count("help")) {
    std::printf("%s", options.help().c_str());
    return 0;
  }
  RowConfig base;
  base.device = args["device"].as<std::string>();
  base.layers = args["layers"].as<int>();
  base.batch = args["batch"].as<int>();
  base.seq = args["seq"].as<int>();
  base.vocab = args["vocab"].as<int>();
  base.steps = args["steps"].as<int>();
  base.warmup = args["warmup"].as<int>();
  base.eval_tokens = args["eval-tokens"].as<int64_t>();
  try {
    if (args.count("row") || args.count("profile-row")) {
      base.trace = args.count("kernel-timeline") > 0;
      base.preset = args["preset"].as<std::string>();
      base.d_model = args["d-model"].as<int>();
      return args.count("row") ? run_row(base) : run_profile(base, args["profile-steps"].as<int>());
    }
    if (args.count("kernel-timeline") && base.device.rfind("cuda", 0) != 0) {
      std::fprintf(stderr, "error: --kernel-timeline traces a CUDA device; the rows run on %s\n",
                   base.device.c_str());
      return 2;
    }
    std::vector<RowConfig> rows;
    auto presets = split(args["presets"].as<std::string>());
    if (presets.empty()) presets = genome::preset_names();
    if (presets == std::vector<std::string>{"none"}) presets.clear();
    for (const auto& file : split(args["genomes"].as<std::string>())) {
      RowConfig r = base;
      r.preset = file;
      r.d_model = genome::genome_from_file(file).d_model;  // read now: a bad file stops before any row
      rows.push_back(r);
    }
    for (const auto& p : presets)
      for (const auto& d : split(args["d-models"].as<std::string>())) {
        RowConfig r = base;
        r.preset = p;
        r.d_model = std::stoi(d);
        rows.push_back(r);
      }
    if (args["mfu-row"].as<bool>()) {
      RowConfig r = base;
      r.preset = "transformer";
      r.vocab = 50304;
      r.d_model = 512;
      r.layers = 8;
      r.seq = 1024;
      r.batch = 16;
      rows.push_back(r);
    }
    const std::string self = argv[0];
    std::printf("%-20s %5s %3s %5s %6s %10s %12s %7s %9s %10s\n", "preset", "d", "L", "T", "vocab", "ms/step",
                "tok/s", "MFU", "whole s", "ppl");
    std::fflush(stdout);
    std::vector<nlohmann::json> profiles, timelines;
    int failures = 0;
    for (const auto& r : rows) {
      const auto lines = child_lines(self + " --row" + row_arguments(r), "JSON ");
      if (lines.empty()) {
        std::printf("%-20s %5d: no result (the child's output is above on stderr)\n", r.preset.c_str(),
                    r.d_model);
        ++failures;
        continue;
      }
      const auto j = nlohmann::json::parse(lines.back());
      std::printf("%-20s %5d %3d %5d %6d %10.3f %12.0f %6.1f%% %9.2f %10.3f %s\n", r.preset.c_str(),
                  r.d_model, r.layers, r.seq, r.vocab, j["ms_per_step"].get<double>(),
                  j["tokens_per_s"].get<double>(), 100.0 * j["mfu"].get<double>(), j["whole_s"].get<double>(),
                  j["perplexity"].get<double>(), j["status"].get<std::string>().c_str());
      std::printf("JSON %s\n", j.dump().c_str());
      std::fflush(stdout);
      if (j["status"] != "ok") ++failures;
      if (args["profile"].as<bool>()) {
        const auto p = child_lines(self + " --profile-row --profile-steps " +
                                       std::to_string(args["profile-steps"].as<int>()) + row_arguments(r),
                                   "PROFILE ");
        if (!p.empty()) profiles.push_back(nlohmann::json::parse(p.back()));
      }
      if (args.count("kernel-timeline")) {
        const auto t = child_lines(self + " --row --kernel-timeline" + row_arguments(r), "JSON ");
        if (t.empty())
          ++failures;
        else
          timelines.push_back(nlohmann::json::parse(t.back()));
      }
    }
    for (const auto& t : timelines) {
      if (!t.contains("kernel_timeline")) continue;
      print_timeline(t);
      std::printf("TIMELINE %s\n", t.dump().c_str());
    }
    for (const auto& p : profiles) {
      print_profile(p);
      std::printf("PROFILE %s\n", p.dump().c_str());
    }
    return failures == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
}
