// livsearch eval [GENOME.json ...] [--preset NAME]... [--config CONFIG] [--seeds N]
//                [--format table|json] [--device DEVICE] [--save DIR]
//
// Trains several architectures side by side, each for the config's whole
// budget and over N seeds, through the evaluate() the search uses, and
// reports every metric the search records: per seed, and as mean and spread
// over the seeds. Replicate k of a genome trains with
// evaluation_seed(config seed, hash, k), the seed a search with this config
// gives replicate k of that genome, so an eval row equals a search's
// final-stage row and the same command prints the same numbers (wall times
// aside). Every input is checked before anything trains. --save DIR keeps
// each evaluation's trained weights (cli/saved_weights.hpp).
#include <cstdio>
#include <cxxopts.hpp>
#include <filesystem>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "cli/command.hpp"
#include "cli/config.hpp"
#include "cli/eval_progress.hpp"
#include "cli/eval_summary.hpp"
#include "cli/query_common.hpp"
#include "cli/run_support.hpp"
#include "cli/saved_weights.hpp"
#include "common/evaluate_contract.hpp"
#include "common/path_checks.hpp"
#include "genome/genome_json.hpp"
#include "genome/presets.hpp"
#include "proxies/evaluate.hpp"

namespace livs::cli {

namespace {

constexpr int kMaxSeeds = 100;

struct Architecture {
  std::string name;  // "preset transformer" or the file name
  genome::Genome genome;
  std::string hash;
};

struct SeedRun {
  int replicate = 0;
  uint64_t seed = 0;
  EvalResult result;
};

struct ArchitectureRun {
  Architecture arch;
  std::vector<SeedRun> seeds;
  std::map<std::string, SeedSummary> metrics;  // over the seeds that succeeded
  int seeds_ok = 0;
};

// What every row shares: printed above the table, repeated in each JSON object.
struct Setting {
  std::string config, device;
  int steps = 0;
  int seeds = 1;
  std::string save;  // --save DIR, empty: nothing saved
};

Architecture with_hash(std::string name, genome::Genome genome) {
  std::string hash = genome::genome_hash(genome);
  return {std::move(name), std::move(genome), std::move(hash)};
}

// Presets are built at the config's model size for the data they train on.
Architecture from_preset(const std::string& name, const Config& config) {
  genome::Genome g = genome::preset(name, config.model.d_model, config.model.layers);
  g.vocab = config.data.vocab;
  return with_hash("preset " + name, std::move(g));
}

Architecture from_file(const std::string& path, const Config& config) {
  genome::Genome g = genome::genome_from_file(path);
  if (g.vocab != config.data.vocab)
    throw InputError(path, "/vocab",
                     "expected " + std::to_string(config.data.vocab) + " (the vocabulary of the data in " +
                         config.path + "), got " + std::to_string(g.vocab));
  return with_hash(path, std::move(g));
}

// Presets and files in command-line order (cxxopts keeps the raw arguments
// in sequence); a --preset value may also list several names with commas.
std::vector<Architecture> load_architectures(const cxxopts::ParseResult& args, const Config& config) {
  std::vector<Architecture> out;
  for (const auto& argument : args.arguments()) {
    if (argument.key() == "architecture") {
      out.push_back(from_file(argument.value(), config));
    } else if (argument.key() == "preset") {
      const std::string& list = argument.value();
      for (std::size_t begin = 0;;) {
        const std::size_t comma = list.find(',', begin);
        out.push_back(from_preset(list.substr(begin, comma - begin), config));
        if (comma == std::string::npos) break;
        begin = comma + 1;
      }
    }
  }
  if (out.empty())
    throw InputError("livsearch eval", "",
                     "give at least one GENOME.json or --preset NAME (see 'livsearch eval --help')");
  return out;
}

ArchitectureRun run_seeds(const Architecture& arch, const Setting& setting, const Json& settings,
                          uint64_t run_seed, int& done, int total) {
  ArchitectureRun run{arch, {}, {}, 0};
  std::vector<std::map<std::string, double>> ok_metrics;
  for (int k = 0; k < setting.seeds; ++k) {
    SeedRun seed_run;
    seed_run.replicate = k;
    seed_run.seed = evaluation_seed(run_seed, arch.hash, k);
    std::fprintf(stderr, "[%d/%d] %s, seed %d/%d\n", ++done, total, arch.name.c_str(), k + 1, setting.seeds);
    std::fflush(stderr);
    EvalRequest request;
    request.genome = genome::to_canonical_json(arch.genome);
    request.genome_hash = arch.hash;
    request.fidelity = 1.0;
    request.seed = seed_run.seed;
    request.settings = settings;
    request.device = setting.device;
    TrainingProgress progress(setting.steps);
    evaluator::TrainedModel trained;
    seed_run.result = proxies::evaluate(
        request, [&](int step, int, double loss) { progress.step(step, loss); },
        setting.save.empty() ? nullptr : &trained);
    progress.finish();
    const EvalResult& r = seed_run.result;
    if (!setting.save.empty()) {
      const auto folder = save_evaluation(setting.save, {arch.name, request, k, r, trained});
      std::fprintf(stderr, "  saved %s\n", folder.string().c_str());
    }
    if (r.status == EvalStatus::ok) {
      std::fprintf(stderr, "  perplexity %s in %s\n", format_number(r.metrics.at("perplexity")).c_str(),
                   format_duration(r.wall_seconds).c_str());
      ok_metrics.push_back(r.metrics);
      ++run.seeds_ok;
    } else {
      std::fprintf(stderr, "  failed: %s\n", r.error.c_str());
    }
    run.seeds.push_back(std::move(seed_run));
  }
  run.metrics = summarise_metrics(ok_metrics);
  return run;
}

// ---- JSON ----

Json metrics_json(const std::map<std::string, double>& metrics) {
  Json out = Json::object();
  for (const auto& [name, value] : metrics) out[name] = value;
  return out;
}

// A summary's mean, or null when no seed reported the metric.
Json mean_or_null(const ArchitectureRun& run, const std::string& metric) {
  const auto it = run.metrics.find(metric);
  return it == run.metrics.end() || it->second.n == 0 ? Json() : Json(it->second.mean);
}

Json to_json(const ArchitectureRun& run, const Setting& setting) {
  Json out = Json::object();
  out["architecture"] = run.arch.name;
  out["hash"] = run.arch.hash;
  out["summary"] = genome::summary(run.arch.genome);
  out["genome"] = genome::to_canonical_json(run.arch.genome);
  out["config"] = setting.config;
  out["device"] = setting.device;
  out["steps"] = setting.steps;
  out["seeds"] = Json::array();
  for (const auto& s : run.seeds) {
    Json seed = {{"replicate", s.replicate},
                 {"seed", s.seed},
                 {"status", to_string(s.result.status)},
                 {"metrics", metrics_json(s.result.metrics)},
                 {"wall_seconds", s.result.wall_seconds}};
    if (s.result.status != EvalStatus::ok) seed["error"] = s.result.error;
    out["seeds"].push_back(std::move(seed));
  }
  out["seeds_ok"] = run.seeds_ok;
  out["status"] = run.seeds_ok == static_cast<int>(run.seeds.size()) ? "ok" : "failed";
  out["metrics"] = Json::object();
  for (const auto& [name, s] : run.metrics)
    out["metrics"][name] = {{"mean", s.mean}, {"std", s.sd}, {"min", s.min}, {"max", s.max}, {"n", s.n}};
  if (const auto it = run.metrics.find("perplexity"); it != run.metrics.end())
    out["perplexity"] = {{"mean", it->second.mean}, {"std", it->second.sd}};
  else
    out["perplexity"] = Json();
  out["cache_bytes"] = mean_or_null(run, "cache_bytes");
  out["params"] = mean_or_null(run, "params");
  return out;
}

// ---- table ----

// The columns every table has: the mean over seeds (perplexity with its spread).
const std::vector<std::string>& fixed_columns() {
  static const std::vector<std::string> columns = {"perplexity",
                                                   "validation_loss",
                                                   "params",
                                                   "params_non_embedding",
                                                   "cache_bytes",
                                                   "flops_per_token_train",
                                                   "flops_per_token_infer",
                                                   "peak_memory_train"};
  return columns;
}

// Metrics left out of the table (the JSON has them): times, and figures that
// say more about the machine than about the architecture.
bool table_skips(const std::string& metric) {
  static const std::set<std::string> skipped = {"train_seconds",     "steps",
                                                "peak_memory_infer", "peak_memory_infer_device",
                                                "prefill_ms_spread", "decode_ms_spread",
                                                "prefill_tok_s",     "decode_tok_s"};
  if (skipped.count(metric)) return true;
  for (const auto& column : fixed_columns())
    if (column == metric) return true;
  return false;
}

// The first failure of an architecture's seeds, with which seed it was.
std::string first_error(const ArchitectureRun& run) {
  for (const auto& s : run.seeds)
    if (s.result.status != EvalStatus::ok)
      return "seed " + std::to_string(s.replicate + 1) + ": " + s.result.error;
  return "";
}

std::string render_table(const std::vector<ArchitectureRun>& runs) {
  // Metrics the config asked for beyond the usual ones (latency, tasks, device memory).
  std::set<std::string> extra;
  bool any_failed = false;
  for (const auto& run : runs) {
    for (const auto& [name, summary] : run.metrics)
      if (!table_skips(name)) extra.insert(name);
    any_failed = any_failed || run.seeds_ok < static_cast<int>(run.seeds.size());
  }
  TextTable table;
  table.header = {"architecture", "hash"};
  for (const auto& column : fixed_columns()) table.header.push_back(column);
  for (const auto& column : extra) table.header.push_back(column);
  table.header.push_back("seeds ok");
  table.header.push_back("summary");
  if (any_failed) table.header.push_back("error");
  for (const auto& run : runs) {
    std::vector<std::string> row = {run.arch.name, short_hash(run.arch.hash)};
    auto cell = [&](const std::string& metric, bool spread) {
      const auto it = run.metrics.find(metric);
      if (it == run.metrics.end() || it->second.n == 0) return std::string("-");
      return spread ? format_mean_sd(it->second) : format_number(it->second.mean);
    };
    for (const auto& column : fixed_columns()) row.push_back(cell(column, column == "perplexity"));
    for (const auto& column : extra) row.push_back(cell(column, true));
    row.push_back(std::to_string(run.seeds_ok) + "/" + std::to_string(run.seeds.size()));
    row.push_back(genome::summary(run.arch.genome));
    if (any_failed) row.push_back(first_error(run));
    table.rows.push_back(std::move(row));
  }
  return table.render();
}

}  // namespace

int run_eval(int argc, char** argv) {
  cxxopts::Options options(argv[0],
                           "Train architectures side by side for the config's budget over several seeds and "
                           "score them as the search does, in the order given.");
  options.positional_help("[GENOME.json ...] [--preset NAME]...");
  options.add_options()("architecture", "genome JSON files", cxxopts::value<std::vector<std::string>>())(
      "p,preset",
      "a built-in architecture (see `livsearch presets`), sized by the config's model section; repeatable, "
      "or comma-separated",
      cxxopts::value<std::vector<std::string>>())(
      "c,config", "the config: data, model size, training budget, seed, latency and tasks",
      cxxopts::value<std::string>()->default_value("configs/quick.json"))(
      "s,seeds", "seeds per architecture, 1 to 100 (replicate k trains as a search's replicate k)",
      cxxopts::value<int>()->default_value("1"))("f,format", "table or json",
                                                 cxxopts::value<std::string>()->default_value("table"))(
      "d,device", "auto, cpu, cuda or cuda:N (default: the config's device)", cxxopts::value<std::string>())(
      "save",
      "keep what each evaluation trained: DIR/<hash>/genome.json and DIR/<hash>/seed<k>/ with "
      "model.safetensors (the weights), probe.safetensors (livsearch's logits of the first validation "
      "windows) and metrics.json",
      cxxopts::value<std::string>())("h,help", "show this help");
  options.parse_positional({"architecture"});
  cxxopts::ParseResult args;
  if (!parse_arguments(options, argc, argv, args)) return 0;
  const std::string format = chosen_format(args, {"table", "json"});
  const int seeds = args["seeds"].as<int>();
  if (seeds < 1 || seeds > kMaxSeeds)
    throw InputError(
        "--seeds", "",
        "expected an integer in [1, " + std::to_string(kMaxSeeds) + "], got " + std::to_string(seeds));

  // Everything is checked before the first step trains: config, device, every architecture.
  const Config config = load_config(args["config"].as<std::string>());
  const Setting setting{
      config.path, resolve_device(args.count("device") ? args["device"].as<std::string>() : config.device),
      config.train.steps, seeds, args.count("save") ? args["save"].as<std::string>() : ""};
  if (args.count("save")) {
    std::error_code error;
    if (!setting.save.empty()) std::filesystem::create_directories(setting.save, error);
    if (setting.save.empty() || !is_folder(setting.save))
      throw InputError(setting.save.empty() ? "--save" : setting.save, "",
                       "cannot create the folder to save into" + (error ? ": " + error.message() : ""));
  }
  const std::vector<Architecture> architectures = load_architectures(args, config);
  const proxies::EvalSettings eval_settings = eval_settings_of(config);
  proxies::check_data(eval_settings);  // a bad data file stops here, before anything trains
  const Json settings = proxies::to_json(eval_settings);  // what the search hands evaluate()

  for (const auto& arch : architectures)
    std::fprintf(stderr, "%s: %s (%s)\n", arch.name.c_str(), genome::summary(arch.genome).c_str(),
                 short_hash(arch.hash).c_str());
  std::fprintf(stderr, "training: %d steps of %d x %d tokens on %s, %d seed%s each (run seed %llu)\n",
               config.train.steps, config.train.batch_size, config.train.seq_len, setting.device.c_str(),
               seeds, seeds == 1 ? "" : "s", static_cast<unsigned long long>(config.seed));

  std::vector<ArchitectureRun> runs;
  int done = 0, failed = 0;
  const int total = static_cast<int>(architectures.size()) * seeds;
  for (const auto& arch : architectures) {
    runs.push_back(run_seeds(arch, setting, settings, config.seed, done, total));
    failed += seeds - runs.back().seeds_ok;
  }

  if (format == "json") {
    Json out = Json::array();
    for (const auto& run : runs) out.push_back(to_json(run, setting));
    std::cout << out.dump(2) << "\n";
  } else {
    std::fprintf(
        stderr, "perplexity is per %s (vocab %d)%s\n", config.data.vocab == 256 ? "byte" : "token",
        config.data.vocab,
        seeds == 1
            ? ""
            : "; perplexity and the latency, task and device-memory columns as mean \u00b1 sample standard "
              "deviation over the seeds that succeeded, the other columns their mean");
    std::printf("config %s, device %s, %d steps of %d x %d tokens, %d seed%s per architecture\n",
                setting.config.c_str(), setting.device.c_str(), setting.steps, config.train.batch_size,
                config.train.seq_len, seeds, seeds == 1 ? "" : "s");
    std::fputs(render_table(runs).c_str(), stdout);
  }
  std::fflush(stdout);
  if (failed > 0) {
    std::fprintf(stderr, "error: %d of %d evaluations failed\n", failed, total);
    return 1;
  }
  return 0;
}

}  // namespace livs::cli
