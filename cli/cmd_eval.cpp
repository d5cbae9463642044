// livsearch eval (ARCH.json | --preset NAME) [--config CONFIG] [--format table|json] [--device DEVICE]
//
// Trains one architecture for the config's budget on the config's data and
// scores it on the held-out split: the evaluator end to end, without a search.
// The training seed is derived from the config seed and the genome hash, so the
// same command prints the same numbers (wall times aside).
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cxxopts.hpp>
#include <iostream>
#include <sstream>

#include "cli/command.hpp"
#include "cli/config.hpp"
#include "common/rng.hpp"
#include "evaluator/backend_factory.hpp"
#include "evaluator/data/dataset.hpp"
#include "evaluator/trainer.hpp"
#include "genome/decode.hpp"
#include "genome/genome_json.hpp"
#include "genome/presets.hpp"

namespace livs::cli {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string format_duration(double seconds) {
  char buffer[32];
  const long whole = std::lround(seconds);
  if (whole >= 60)
    std::snprintf(buffer, sizeof buffer, "%ldm%02lds", whole / 60, whole % 60);
  else
    std::snprintf(buffer, sizeof buffer, "%.1fs", seconds);
  return buffer;
}

// Training progress on stderr: one line rewritten in place on a terminal,
// plain lines (about twenty per run) when stderr is a pipe or a file, so logs
// stay readable.
class Progress {
 public:
  explicit Progress(int total_steps)
      : total_(total_steps),
        live_(::isatty(STDERR_FILENO) == 1),
        every_(std::max(1, total_steps / 20)),
        start_(Clock::now()) {}

  void step(int step, double loss) {
    const double elapsed = seconds_since(start_);
    const bool last = step == total_;
    if (!live_ && step % every_ != 0 && !last) return;
    // A terminal line is redrawn at most ten times a second: small models run thousands of steps a second.
    if (live_ && !last && elapsed - last_draw_ < 0.1) return;
    last_draw_ = elapsed;
    const double eta = step > 0 ? elapsed / step * (total_ - step) : 0.0;
    std::fprintf(stderr, "%sstep %d/%d  loss %.4f  %.2f steps/s  elapsed %s  eta %s%s",
                 live_ ? "\r\033[K" : "", step, total_, loss, step / std::max(elapsed, 1e-9),
                 format_duration(elapsed).c_str(), format_duration(eta).c_str(), live_ ? "" : "\n");
    // Scoring the held-out split comes next and reports nothing on its own.
    if (last) std::fprintf(stderr, "%sevaluating on the held-out split\n", live_ ? "\n" : "");
    ended_ = last;
    std::fflush(stderr);
  }

  // Ends a live line that training left unfinished (a run stopped early).
  void finish() {
    if (live_ && !ended_ && last_draw_ >= 0.0) std::fprintf(stderr, "\n");
  }

 private:
  int total_;
  bool live_;
  int every_;
  Clock::time_point start_;
  double last_draw_ = -1.0;
  bool ended_ = false;
};

// "auto": a GPU when this build has the CUDA backend and one is present, else the CPU.
std::string resolve_device(const std::string& requested) {
  return requested == "auto" ? evaluator::default_device() : requested;
}

struct Architecture {
  genome::Genome genome;
  std::string source;  // "preset transformer" or the file name
};

Architecture load_architecture(const cxxopts::ParseResult& args, const Config& config) {
  const bool has_file = args.count("architecture") > 0, has_preset = args.count("preset") > 0;
  if (has_file == has_preset)
    throw InputError("livsearch eval", "", "give exactly one of ARCH.json or --preset NAME");
  Architecture arch;
  if (has_preset) {
    const auto name = args["preset"].as<std::string>();
    arch.genome = genome::preset(name, config.model.d_model, config.model.layers);
    arch.genome.vocab = config.data.vocab;  // presets are built for the data they are trained on
    arch.source = "preset " + name;
  } else {
    arch.source = args["architecture"].as<std::string>();
    arch.genome = genome::genome_from_file(arch.source);
    if (arch.genome.vocab != config.data.vocab) {
      throw InputError(arch.source, "/vocab",
                       "expected " + std::to_string(config.data.vocab) + " (the vocabulary of the data in " +
                           config.path + "), got " + std::to_string(arch.genome.vocab));
    }
  }
  return arch;
}

struct Row {
  std::string label, value;
};

void print_table(const std::vector<Row>& rows) {
  std::size_t width = 0;
  for (const auto& r : rows) width = std::max(width, r.label.size());
  for (const auto& r : rows)
    std::printf("%-*s  %s\n", static_cast<int>(width), r.label.c_str(), r.value.c_str());
}

std::string fixed(double value, int digits) {
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(digits);
  s << value;
  return s.str();
}

// 1234567 -> "1,234,567"
std::string grouped(int64_t value) {
  std::string digits = std::to_string(value), out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0 && digits[i - 1] != '-') out += ',';
    out += digits[i];
  }
  return out;
}

}  // namespace

int run_eval(int argc, char** argv) {
  cxxopts::Options options(argv[0],
                           "Train one architecture for the config's budget and score it on held-out data.");
  options.positional_help("(ARCH.json | --preset NAME)");
  options.add_options()("architecture", "a genome JSON file", cxxopts::value<std::string>())(
      "p,preset", "a built-in architecture (see `livsearch presets`), sized by the config's model section",
      cxxopts::value<std::string>())("c,config", "the config: data, model size, training budget, seed",
                                     cxxopts::value<std::string>()->default_value("configs/quick.json"))(
      "f,format", "table or json", cxxopts::value<std::string>()->default_value("table"))(
      "d,device", "auto, cpu, cuda or cuda:N (default: the config's device)", cxxopts::value<std::string>())(
      "h,help", "show this help");
  options.parse_positional({"architecture"});
  cxxopts::ParseResult args;
  if (!parse_arguments(options, argc, argv, args)) return 0;
  const auto format = args["format"].as<std::string>();
  if (format != "table" && format != "json")
    throw InputError("--format", "", "expected table or json, got \"" + format + "\"");

  const Config config = load_config(args["config"].as<std::string>());
  const std::string device =
      resolve_device(args.count("device") ? args["device"].as<std::string>() : config.device);
  const auto backend = evaluator::make_backend(device);  // before any work: a bad device fails fast
  const evaluator::TrainSettings& training = config.train;
  const Architecture arch = load_architecture(args, config);
  const genome::ModelSpec spec = genome::decode(arch.genome);
  const std::string hash = genome::genome_hash(arch.genome);
  const uint64_t seed = derive_seed(config.seed, hash);

  std::fprintf(stderr, "architecture: %s (%s)\n", arch.source.c_str(), genome::summary(arch.genome).c_str());
  const evaluator::Dataset data = evaluator::load_dataset(config.data);
  std::fprintf(stderr, "data: %s\n", data.description.c_str());
  std::fprintf(stderr, "training: %d steps of %d x %d tokens on %s\n", training.steps, training.batch_size,
               training.seq_len, device.c_str());

  Progress progress(training.steps);
  const auto start = Clock::now();
  const evaluator::TrainReport report =
      evaluator::train_and_evaluate(spec, training, data.train, data.validation, seed, *backend,
                                    [&](int step, double loss) { progress.step(step, loss); });
  const double wall_seconds = seconds_since(start);
  progress.finish();
  const bool ok = report.status == evaluator::TrainStatus::ok;

  if (format == "json") {
    Json out = Json::object();
    out["architecture"] = arch.source;
    out["summary"] = genome::summary(arch.genome);
    out["hash"] = hash;
    out["config"] = config.path;
    out["seed"] = seed;
    out["device"] = device;
    out["status"] = evaluator::to_string(report.status);
    if (!ok) out["error"] = report.error;
    out["perplexity"] = report.perplexity;
    out["validation_loss"] = report.validation_loss;
    out["validation_tokens"] = report.validation_tokens;
    out["params_total"] = report.params_total;
    out["params_non_embedding"] = report.params_non_embedding;
    out["steps"] = report.steps_done;
    out["final_train_loss"] = report.train_loss.empty() ? 0.0 : report.train_loss.back();
    out["train_seconds"] = report.train_seconds;
    out["eval_seconds"] = report.eval_seconds;
    out["wall_seconds"] = wall_seconds;
    out["genome"] = genome::to_canonical_json(arch.genome);
    std::cout << out.dump(2) << "\n";
  } else {
    const char* unit = data.vocab == 256 ? " (per byte)" : " (per token)";
    std::vector<Row> rows = {
        {"architecture", arch.source},
        {"summary", genome::summary(arch.genome)},
        {"hash", hash.substr(0, 16)},
        {"status", evaluator::to_string(report.status)},
    };
    if (!ok) rows.push_back({"error", report.error});
    rows.insert(rows.end(),
                {
                    {"held-out perplexity", fixed(report.perplexity, 3) + unit},
                    {"validation loss", fixed(report.validation_loss, 4) + " nats/token over " +
                                            grouped(report.validation_tokens) + " tokens"},
                    {"params total", grouped(report.params_total)},
                    {"params non-embedding", grouped(report.params_non_embedding)},
                    {"steps", std::to_string(report.steps_done) + " of " + std::to_string(training.steps)},
                    {"train time", fixed(report.train_seconds, 1) + " s"},
                    {"eval time", fixed(report.eval_seconds, 1) + " s"},
                    {"wall time", fixed(wall_seconds, 1) + " s"},
                    {"device", device},
                    {"seed", std::to_string(seed)},
                });
    print_table(rows);
  }
  if (!ok) {
    std::fprintf(stderr, "error: training %s: %s\n", evaluator::to_string(report.status),
                 report.error.c_str());
    return 1;
  }
  return 0;
}

}  // namespace livs::cli
