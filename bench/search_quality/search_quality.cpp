// bench/search_quality: search strategies against random search at one
// GPU-time budget. Runs four strategies over several seeds, each as its own
// `livsearch search` process with the same budget of evaluation seconds
// (search.max_train_seconds), trains the presets once with `livsearch eval`,
// then reads the databases and reports:
//   - hypervolume (the config's fixed box, the project's normalised_hypervolume)
//     of the top-rung results against GPU-seconds and against evaluations,
//     median and min-max over seeds;
//   - target (a): the GPU-seconds the default strategy needs to reach random
//     search's final median hypervolume, as a share of random's GPU-seconds;
//   - target (b): which presets within the params budget each strategy's final
//     front (re-trained at fidelity 1 on the final stage's seeds) dominates in
//     the objectives;
//   - target (c): the share of each process's wall time that is not training
//     (1 - sum of its evaluations' wall_seconds / its wall time).
//
// Strategies (each an overlay merged into the base config, JSON merge patch;
// --strategies FILE replaces the table):
//   default       nsga2 with rungs (search.fidelities, successive halving)
//   nsga2         nsga2 at fidelity 1
//   random        random search at fidelity 1
//   random-rungs  random search with the same rungs
//
// Every run gets the same budget of evaluation seconds (--budget, default 240;
// "GPU-seconds": the sum of the search stage's evaluations' wall_seconds).
// --jobs runs share the device; the runs are started seed by seed, strategy by
// strategy, so the ones sharing it at any moment are of different strategies
// and the slowdown falls on all alike. The presets' eval takes one job slot.
//
// On a GPU box, from the repository root: stage the CUDA build here with
//   GPU_TARGETS="livsearch search_quality" scripts/gpu-check.sh build
// (binaries and libraries in .gpu/), copy the repository with .gpu/ there, then
//   LD_LIBRARY_PATH=.gpu .gpu/search_quality --seeds 5 --jobs 4 --out sq-out
//   LD_LIBRARY_PATH=.gpu .gpu/search_quality --out sq-out --analyse-only   # re-read
// (base config bench/search_quality/gpu.json; .gpu/livsearch is found next to
// this program). About 25 minutes on one H200 with the defaults.
// The CI smoke run (that it runs, not its numbers; ctest label "bench"):
//   build/bench/search_quality --cpu --tiny --out /tmp/sq
// Output: the tables on stdout, OUT/search_quality.md and OUT/search_quality.json;
// OUT also holds each run's config, database and log, and processes.json (the
// processes' wall times, which --analyse-only reads back).
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <cxxopts.hpp>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "common/format_number.hpp"
#include "common/input_error.hpp"
#include "common/json_reader.hpp"
#include "db/store.hpp"
#include "search/pareto.hpp"
#include "search/settings.hpp"

namespace fs = std::filesystem;
using livs::InputError;
using livs::Json;

namespace {

// A problem that ends the program with a message and exit status 2.
struct BenchError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// ---------------------------------------------------------------- strategies

// The rungs of the two rung strategies: successive halving with eta 3 over
// 1/9, 1/3 and all of the config's training steps. A null removes the key
// from the base config (merge patch), so "fidelity" and "fidelities" never
// meet in one config.
Json builtin_strategies() {
  const Json rungs = Json::array({1.0 / 9.0, 1.0 / 3.0, 1.0});
  auto with_rungs = [&](const char* algorithm) {
    return Json{
        {"search", {{"algorithm", algorithm}, {"fidelities", rungs}, {"eta", 3}, {"fidelity", nullptr}}}};
  };
  auto single = [](const char* algorithm) {
    return Json{
        {"search", {{"algorithm", algorithm}, {"fidelity", 1.0}, {"fidelities", nullptr}, {"eta", nullptr}}}};
  };
  Json table = Json::object();
  table["default"] = with_rungs("nsga2");
  table["nsga2"] = single("nsga2");
  table["random"] = single("random");
  table["random-rungs"] = with_rungs("random");
  return table;
}

bool valid_strategy_name(const std::string& name) {
  if (name.empty() || name.size() > 40) return false;
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) return false;
  return true;
}

// ---------------------------------------------------------------- small helpers

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw BenchError("cannot read " + path.string());
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw BenchError("cannot write " + path.string());
}

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> out;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, separator))
    if (!item.empty()) out.push_back(item);
  return out;
}

std::string fixed(double value, int digits) {
  if (std::isnan(value)) return "-";
  if (std::isinf(value)) return value > 0 ? "never" : "-inf";
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", digits, value);
  return buffer;
}

// A share as a percentage; +inf (a run that never got there) is "never".
std::string percent(double share) {
  if (std::isinf(share) && share > 0) return "never";
  return std::isfinite(share) ? fixed(100.0 * share, 2) + "%" : "-";
}

// Seconds with a decimal when they are few.
std::string seconds(double value) { return fixed(value, std::fabs(value) < 10 ? 1 : 0); }

// Median of the values; infinities sort last (a run that never got there),
// NaNs are left out. NaN for no values.
double median(std::vector<double> values) {
  values.erase(std::remove_if(values.begin(), values.end(), [](double v) { return std::isnan(v); }),
               values.end());
  if (values.empty()) return kNaN;
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  if (n % 2) return values[n / 2];
  const double a = values[n / 2 - 1], b = values[n / 2];
  return std::isinf(a) || std::isinf(b) ? std::max(a, b) : 0.5 * (a + b);
}

struct Spread {
  double median = kNaN, min = kNaN, max = kNaN;
  int n = 0;
};

Spread spread(const std::vector<double>& values) {
  Spread s;
  for (double v : values) {
    if (std::isnan(v)) continue;
    s.min = s.n == 0 ? v : std::min(s.min, v);
    s.max = s.n == 0 ? v : std::max(s.max, v);
    ++s.n;
  }
  s.median = median(values);
  return s;
}

std::string format_spread(const Spread& s, int digits) {
  if (s.n == 0) return "-";
  if (s.n == 1) return fixed(s.median, digits);
  return fixed(s.median, digits) + " [" + fixed(s.min, digits) + "-" + fixed(s.max, digits) + "]";
}

Json spread_json(const Spread& s) {
  auto number = [](double v) { return std::isfinite(v) ? Json(v) : Json(); };
  return {{"median", number(s.median)}, {"min", number(s.min)}, {"max", number(s.max)}, {"n", s.n}};
}

Json finite_or_null(double v) { return std::isfinite(v) ? Json(v) : Json(); }

// A table printed aligned on the terminal and as Markdown in the report.
struct Table {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;

  std::string text() const {
    std::vector<std::size_t> width(header.size(), 0);
    auto measure = [&](const std::vector<std::string>& row) {
      for (std::size_t i = 0; i < row.size() && i < width.size(); ++i)
        width[i] = std::max(width[i], display_width(row[i]));
    };
    measure(header);
    for (const auto& row : rows) measure(row);
    std::string out;
    auto line = [&](const std::vector<std::string>& row) {
      std::string text;
      for (std::size_t i = 0; i < row.size(); ++i) {
        text += row[i];
        if (i + 1 < row.size()) text += std::string(width[i] - display_width(row[i]) + 2, ' ');
      }
      out += text + "\n";
    };
    line(header);
    std::size_t total = 0;
    for (std::size_t w : width) total += w + 2;
    out += std::string(total > 2 ? total - 2 : 0, '-') + "\n";
    for (const auto& row : rows) line(row);
    return out;
  }

  std::string markdown() const {
    std::string out = "|";
    for (const auto& h : header) out += " " + h + " |";
    out += "\n|";
    for (std::size_t i = 0; i < header.size(); ++i) out += " --- |";
    out += "\n";
    for (const auto& row : rows) {
      out += "|";
      for (const auto& cell : row) out += " " + cell + " |";
      out += "\n";
    }
    return out;
  }

  // Code points, so "–" or "±" count as one column.
  static std::size_t display_width(const std::string& s) {
    std::size_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;
    return n;
  }
};

// The report: the same sections on stdout and in the Markdown file.
struct Report {
  std::string text, markdown;

  void heading(const std::string& title) {
    text += "\n== " + title + " ==\n";
    markdown += "\n## " + title + "\n\n";
  }
  void paragraph(const std::string& line) {
    text += line + "\n";
    markdown += line + "\n\n";
  }
  void table(const Table& t) {
    text += t.text();
    markdown += t.markdown() + "\n";
  }
};

// ---------------------------------------------------------------- child processes

struct Job {
  std::string label;  // "random seed 2", "presets"
  std::vector<std::string> argv;
  fs::path stdout_path, stderr_path;  // the same file for both when equal
  pid_t pid = -1;
  std::chrono::steady_clock::time_point start;
  double wall_seconds = kNaN;
  int exit_status = -1;  // the exit code; 128 + signal when killed
};

[[noreturn]] void exec_child(const Job& job) {
  const int out = ::open(job.stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  const int err = job.stderr_path == job.stdout_path
                      ? out
                      : ::open(job.stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (out < 0 || err < 0) _exit(126);
  ::dup2(out, STDOUT_FILENO);
  ::dup2(err, STDERR_FILENO);
  std::vector<char*> argv;
  for (const auto& a : job.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  ::execv(argv[0], argv.data());
  std::fprintf(stderr, "search_quality: cannot run %s: %s\n", argv[0], std::strerror(errno));
  _exit(127);
}

void start_job(Job& job) {
  job.start = std::chrono::steady_clock::now();
  const pid_t pid = ::fork();
  if (pid < 0) throw BenchError(std::string("fork failed: ") + std::strerror(errno));
  if (pid == 0) exec_child(job);
  job.pid = pid;
}

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Runs the jobs, at most `parallel` at once, in the order given; each one's
// wall time is measured from fork to reaping.
void run_jobs(std::vector<Job>& jobs, int parallel) {
  std::size_t next = 0, done = 0;
  std::map<pid_t, std::size_t> running;
  const auto begin = std::chrono::steady_clock::now();
  while (done < jobs.size()) {
    while (next < jobs.size() && static_cast<int>(running.size()) < parallel) {
      start_job(jobs[next]);
      running[jobs[next].pid] = next;
      ++next;
    }
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      throw BenchError(std::string("waitpid failed: ") + std::strerror(errno));
    }
    const auto it = running.find(pid);
    if (it == running.end()) continue;
    Job& job = jobs[it->second];
    running.erase(it);
    job.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - job.start).count();
    job.exit_status = decode_status(status);
    ++done;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    std::fprintf(stderr, "[%zu/%zu] %s: %s in %.1f s (elapsed %.0f s)%s%s\n", done, jobs.size(),
                 job.label.c_str(), job.exit_status == 0 ? "done" : "FAILED", job.wall_seconds, elapsed,
                 job.exit_status == 0 ? "" : ", see ", job.exit_status == 0 ? "" : job.stderr_path.c_str());
  }
}

// Runs one short command and returns its exit status; its output goes to `log`.
int run_quiet(const std::vector<std::string>& argv, const fs::path& log) {
  std::vector<Job> jobs(1);
  jobs[0].label = argv.size() > 1 ? argv[1] : argv[0];
  jobs[0].argv = argv;
  jobs[0].stdout_path = jobs[0].stderr_path = log;
  start_job(jobs[0]);
  int status = 0;
  while (::waitpid(jobs[0].pid, &status, 0) < 0)
    if (errno != EINTR) throw BenchError(std::string("waitpid failed: ") + std::strerror(errno));
  return decode_status(status);
}

// ---------------------------------------------------------------- locating things

fs::path self_directory() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::current_path() : exe.parent_path();
}

bool is_executable(const fs::path& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec) && ::access(path.c_str(), X_OK) == 0;
}

fs::path find_livsearch(const std::string& given) {
  if (!given.empty()) {
    if (!is_executable(given))
      throw BenchError("--livsearch " + given + ": no executable file there (build it: cmake --build BUILD " +
                       "--target livsearch)");
    return fs::absolute(given);
  }
  const fs::path here = self_directory();
  for (const fs::path& candidate : {here / "livsearch", here.parent_path() / "livsearch",
                                    fs::path("build") / "livsearch", fs::path(".gpu") / "livsearch"})
    if (is_executable(candidate)) return fs::absolute(candidate);
  throw BenchError("cannot find the livsearch binary (looked next to this program, in " +
                   here.parent_path().string() + ", build/ and .gpu/); give it with --livsearch PATH");
}

fs::path find_base_config(const std::string& given, bool tiny) {
  if (!given.empty()) {
    if (!fs::is_regular_file(given)) throw BenchError("--config " + given + ": no such file");
    return fs::absolute(given);
  }
  const std::string name = tiny ? "tiny.json" : "gpu.json";
  const fs::path relative = fs::path("bench") / "search_quality" / name;
  if (fs::is_regular_file(relative)) return fs::absolute(relative);
#ifdef SEARCH_QUALITY_SOURCE_DIR
  const fs::path built_in = fs::path(SEARCH_QUALITY_SOURCE_DIR) / name;
  if (fs::is_regular_file(built_in)) return built_in;
#endif
  throw BenchError("cannot find " + relative.string() +
                   " (run from the repository root, or give the base config with --config)");
}

// ---------------------------------------------------------------- configs

// The config moves to OUT, so every relative path in it is made absolute
// against the folder of the base config (livsearch reads them relative to
// the config file).
void absolutise_paths(Json& config, const fs::path& base_dir) {
  auto fix = [&](Json& value) {
    if (value.is_string()) {
      const fs::path p = value.get<std::string>();
      if (p.is_relative()) value = (base_dir / p).lexically_normal().string();
    }
  };
  if (config.contains("data") && config["data"].is_object()) {
    for (const char* key : {"path", "validation_path"}) {
      if (!config["data"].contains(key)) continue;
      Json& value = config["data"][key];
      if (value.is_array())
        for (auto& item : value) fix(item);
      else
        fix(value);
    }
  }
  if (config.contains("search") && config["search"].is_object() && config["search"].contains("initial") &&
      config["search"]["initial"].is_array()) {
    for (auto& item : config["search"]["initial"]) {  // genome files, not preset names
      if (!item.is_string()) continue;
      const std::string s = item.get<std::string>();
      if (s.find('/') != std::string::npos || (s.size() > 5 && s.substr(s.size() - 5) == ".json")) fix(item);
    }
  }
}

std::string run_file_stem(const std::string& strategy, int seed) {
  return strategy + "-seed" + std::to_string(seed);
}

// ---------------------------------------------------------------- reading a run

struct Point {
  double gpu_seconds = 0;  // cumulative evaluation seconds of the search stage
  double equivalents = 0;  // cumulative full-fidelity equivalents (sum of fidelities)
  int evaluations = 0;     // cumulative finished evaluations
  double hypervolume = 0;  // of the top-rung results so far
};

struct Finalist {
  std::string hash;
  std::vector<double> means;  // per objective, over the seeds that finished ok
  int seeds_ok = 0;
};

struct RunResult {
  std::string strategy;
  int seed = 0;
  fs::path db;
  std::string error;  // why the run could not be read; empty when fine
  double budget = 0;  // search.max_train_seconds of the run's config, 0 = none
  double top_fidelity = 1;
  int last_generation = -1;
  std::vector<Point> trajectory;  // one point per finished search-stage evaluation
  int search_evaluations = 0, search_failed = 0, top_rung_ok = 0, top_rung_feasible = 0;
  std::map<double, int> per_fidelity;  // finished search-stage evaluations per fidelity
  double search_gpu_seconds = 0, search_equivalents = 0;
  double final_gpu_seconds = 0;
  int final_evaluations = 0;
  std::vector<Finalist> finalists;
  std::vector<std::size_t> final_front;  // indices into finalists
  double process_wall = kNaN;            // measured by this program, NaN when unknown
  int exit_status = -1;
  double final_hypervolume() const { return trajectory.empty() ? 0.0 : trajectory.back().hypervolume; }
  double hypervolume_at_seconds(double t) const { return hypervolume_at(t, &Point::gpu_seconds); }
  double hypervolume_at_equivalents(double e) const {
    return hypervolume_at(e, &Point::equivalents);
  }
  // The hypervolume once the trajectory's `axis` (GPU-seconds or evaluations) reached `x`.
  double hypervolume_at(double x, double Point::*axis) const {
    double hv = 0;
    for (const auto& p : trajectory) {
      if (p.*axis > x + 1e-9) break;
      hv = p.hypervolume;
    }
    return hv;
  }
  // The first GPU-second at which the hypervolume reached `target`; +inf when it never did.
  double seconds_to_reach(double target) const {
    if (target <= 0) return 0;
    for (const auto& p : trajectory)
      if (p.hypervolume >= target) return p.gpu_seconds;
    return kInf;
  }
  double overhead_share() const {
    if (!(process_wall > 0)) return kNaN;
    return 1.0 - (search_gpu_seconds + final_gpu_seconds) / process_wall;
  }
};

// What the analysis needs from a config: objectives, constraints and the box.
struct Scoring {
  std::vector<livs::search::Objective> objectives;
  std::vector<livs::search::Constraint> constraints;
  std::vector<double> ideal, reference;
  std::optional<double> params_max;
};

// Objectives, constraints and the hypervolume box, through the project's own
// parser. Only the search section's "hypervolume" goes in, so the parse does
// not depend on which other search keys this build knows.
Scoring scoring_of(const Json& config, const std::string& where) {
  Json reduced = Json::object();
  for (const char* key : {"seed", "objectives", "constraints"})
    if (config.contains(key)) reduced[key] = config[key];
  Json search = Json::object();
  if (config.contains("search") && config["search"].is_object() && config["search"].contains("hypervolume"))
    search["hypervolume"] = config["search"]["hypervolume"];
  reduced["search"] = search;
  const auto settings = livs::search::parse_search_settings(livs::JsonReader(reduced, where));
  Scoring s;
  s.objectives = settings.objectives;
  s.constraints = settings.constraints;
  if (!settings.hypervolume_reference)
    throw BenchError(where + ": /search/hypervolume/reference: missing; set it in the base config so every " +
                     "run is measured in the same box");
  s.reference = *settings.hypervolume_reference;
  for (std::size_t i = 0; i < s.objectives.size(); ++i) {
    std::optional<double> ideal;
    if (settings.hypervolume_ideal) ideal = (*settings.hypervolume_ideal)[i];
    if (!ideal) ideal = livs::search::known_ideal(s.objectives[i].name);
    if (!ideal)
      throw BenchError(where + ": /search/hypervolume/ideal: missing for objective " + s.objectives[i].name);
    // Minimisation vectors: a maximised objective is negated, and so are its box's ends.
    const bool max = s.objectives[i].direction == livs::search::Direction::maximise;
    s.ideal.push_back(max ? -*ideal : *ideal);
    if (max) s.reference[i] = -s.reference[i];
  }
  for (const auto& c : s.constraints)
    if (c.metric == "params" && c.max) s.params_max = *c.max;
  return s;
}

double top_fidelity_of(const Json& config) {
  if (!config.contains("search") || !config["search"].is_object()) return 1.0;
  const Json& search = config["search"];
  if (search.contains("fidelities") && search["fidelities"].is_array() && !search["fidelities"].empty())
    return search["fidelities"].back().get<double>();
  if (search.contains("fidelity") && search["fidelity"].is_number()) return search["fidelity"].get<double>();
  return 1.0;
}

double budget_of(const Json& config) {
  if (config.contains("search") && config["search"].is_object() &&
      config["search"].contains("max_train_seconds") && config["search"]["max_train_seconds"].is_number())
    return config["search"]["max_train_seconds"].get<double>();
  return 0.0;
}

livs::search::Metrics plain_metrics(const livs::db::Metrics& metrics) {
  livs::search::Metrics out;
  for (const auto& [name, metric] : metrics) out[name] = metric.value;
  return out;
}

double normalised_hv(const std::vector<std::vector<double>>& points, const Scoring& scoring) {
  if (points.empty()) return 0.0;
  const std::vector<double> none(points.size(), 0.0);
  std::vector<std::vector<double>> front;
  for (std::size_t i : livs::search::pareto_front_indices(points, none)) front.push_back(points[i]);
  return livs::search::normalised_hypervolume(front, scoring.ideal, scoring.reference);
}

bool same_fidelity(double a, double b) { return std::fabs(a - b) < 1e-9; }

RunResult read_run(const std::string& strategy, int seed, const fs::path& db_path,
                   std::optional<Scoring>& scoring) {
  RunResult r;
  r.strategy = strategy;
  r.seed = seed;
  r.db = db_path;
  if (!fs::exists(db_path)) {
    r.error = db_path.string() + ": no database (the run did not start; see its .log)";
    return r;
  }
  try {
    livs::db::Reader reader(db_path.string());
    const auto runs = reader.runs();
    if (runs.empty()) {
      r.error = db_path.string() + ": no run in the database";
      return r;
    }
    const auto& run = runs.back();
    const Scoring mine = scoring_of(run.config, db_path.string());
    if (!scoring) scoring = mine;
    if (mine.reference != scoring->reference || mine.ideal != scoring->ideal)
      throw BenchError(db_path.string() + ": its hypervolume box differs from the other runs'; every run " +
                       "must use the same /search/hypervolume");
    r.budget = budget_of(run.config);
    r.top_fidelity = top_fidelity_of(run.config);
    r.last_generation = reader.latest_generation(run.id).value_or(-1);
    auto evaluations = reader.evaluations(run.id);
    // Finish order (with one worker it is id order), so the axes are the time
    // and the evaluations spent when each result became known.
    std::stable_sort(evaluations.begin(), evaluations.end(), [](const auto& a, const auto& b) {
      if (a.finished_at.empty() != b.finished_at.empty()) return b.finished_at.empty();
      return a.finished_at < b.finished_at;
    });
    std::vector<std::vector<double>> points;
    Point at;
    for (const auto& e : evaluations) {
      const bool finished =
          e.status == livs::db::EvaluationStatus::ok || e.status == livs::db::EvaluationStatus::failed;
      if (!finished) continue;
      if (e.generation > r.last_generation) {  // the final stage
        r.final_gpu_seconds += e.wall_seconds;
        ++r.final_evaluations;
        continue;
      }
      ++r.search_evaluations;
      ++r.per_fidelity[e.fidelity];
      at.gpu_seconds += e.wall_seconds;
      at.equivalents += e.fidelity;
      ++at.evaluations;
      if (e.status == livs::db::EvaluationStatus::failed) {
        ++r.search_failed;
      } else if (same_fidelity(e.fidelity, r.top_fidelity)) {
        ++r.top_rung_ok;
        const auto metrics = plain_metrics(e.metrics);
        if (livs::search::constraint_violation(metrics, scoring->constraints) == 0.0) {
          ++r.top_rung_feasible;
          auto point = livs::search::minimised_objectives(metrics, scoring->objectives);
          // A missing or non-finite objective (+inf) adds no volume.
          if (std::all_of(point.begin(), point.end(), [](double v) { return std::isfinite(v); })) {
            points.push_back(std::move(point));
            at.hypervolume = normalised_hv(points, *scoring);
          }
        }
      }
      r.trajectory.push_back(at);
    }
    r.search_gpu_seconds = at.gpu_seconds;
    r.search_equivalents = at.equivalents;

    // The final stage: genomes with evaluations after the last generation;
    // their mean over every ok fidelity-1 evaluation of the run (replicate 0
    // is the search's own when the search trained at fidelity 1).
    std::vector<std::string> hashes;
    for (const auto& e : evaluations)
      if (e.generation > r.last_generation &&
          std::find(hashes.begin(), hashes.end(), e.genome_hash) == hashes.end())
        hashes.push_back(e.genome_hash);
    for (const auto& hash : hashes) {
      std::map<uint64_t, const livs::db::EvaluationRecord*> by_seed;
      for (const auto& e : evaluations)
        if (e.genome_hash == hash && e.status == livs::db::EvaluationStatus::ok &&
            same_fidelity(e.fidelity, 1.0))
          by_seed[e.seed] = &e;
      Finalist f;
      f.hash = hash;
      f.means.assign(scoring->objectives.size(), 0.0);
      for (const auto& [s, e] : by_seed) {
        const auto v = livs::search::minimised_objectives(plain_metrics(e->metrics), scoring->objectives);
        for (std::size_t i = 0; i < v.size(); ++i) f.means[i] += v[i];
      }
      f.seeds_ok = static_cast<int>(by_seed.size());
      for (double& m : f.means) m = f.seeds_ok ? m / f.seeds_ok : kInf;
      r.finalists.push_back(std::move(f));
    }
    std::vector<std::vector<double>> final_points;
    std::vector<std::size_t> trained;  // finalists with at least one ok seed
    for (std::size_t i = 0; i < r.finalists.size(); ++i)
      if (r.finalists[i].seeds_ok > 0) {
        final_points.push_back(r.finalists[i].means);
        trained.push_back(i);
      }
    const std::vector<double> none(final_points.size(), 0.0);
    for (std::size_t k : livs::search::pareto_front_indices(final_points, none))
      r.final_front.push_back(trained[k]);
  } catch (const InputError& e) {
    r.error = e.what();
  } catch (const livs::db::DatabaseError& e) {
    r.error = db_path.string() + ": " + e.what();
  }
  return r;
}

// ---------------------------------------------------------------- presets

struct Preset {
  std::string name;
  std::string hash;
  double params = kNaN;
  std::vector<double> means;  // minimised objectives, mean over seeds
  int seeds_ok = 0, seeds = 0;
  bool in_budget = false;
};

std::vector<Preset> read_presets(const fs::path& path, const Scoring& scoring) {
  std::vector<Preset> out;
  const Json all = livs::parse_json_file(path.string());
  if (!all.is_array())
    throw InputError(path.string(), "", "expected the JSON array of `livsearch eval --format json`");
  for (const auto& item : all) {
    Preset p;
    p.name = item.value("architecture", std::string("?"));
    if (p.name.rfind("preset ", 0) == 0) p.name = p.name.substr(7);
    p.hash = item.value("hash", std::string());
    p.seeds_ok = item.value("seeds_ok", 0);
    p.seeds = item.contains("seeds") && item["seeds"].is_array() ? static_cast<int>(item["seeds"].size()) : 0;
    livs::search::Metrics means;
    if (item.contains("metrics") && item["metrics"].is_object())
      for (const auto& [name, summary] : item["metrics"].items())
        if (summary.is_object() && summary.contains("mean") && summary["mean"].is_number())
          means[name] = summary["mean"].get<double>();
    if (means.count("params")) p.params = means["params"];
    p.means = livs::search::minimised_objectives(means, scoring.objectives);
    p.in_budget = !scoring.params_max || (std::isfinite(p.params) && p.params <= *scoring.params_max);
    out.push_back(std::move(p));
  }
  return out;
}

// The presets `livsearch presets` lists: one per line, the name first.
std::vector<std::string> list_presets(const fs::path& livsearch, const fs::path& out_dir) {
  const fs::path log = out_dir / "presets-list.txt";
  if (run_quiet({livsearch.string(), "presets"}, log) != 0)
    throw BenchError("`" + livsearch.string() + " presets` failed: " + read_text(log));
  std::vector<std::string> names;
  for (const auto& line : split(read_text(log), '\n')) {
    std::stringstream stream(line);
    std::string first;
    stream >> first;
    if (!first.empty() && valid_strategy_name(first) && first != "name" &&
        first.find_first_not_of('-') != std::string::npos)
      names.push_back(first);
  }
  if (names.empty()) throw BenchError("`livsearch presets` listed no presets (see " + log.string() + ")");
  return names;
}

// ---------------------------------------------------------------- the report

struct StrategyRuns {
  std::string name;
  std::vector<RunResult> runs;  // the readable ones
};

std::string short_hash(const std::string& hash) { return hash.substr(0, 12); }

std::string objective_names(const Scoring& s) {
  std::string out;
  for (const auto& o : s.objectives) out += (out.empty() ? "" : ", ") + o.name;
  return out;
}

std::string format_vector(const std::vector<double>& minimised, const Scoring& s) {
  std::string out;
  for (std::size_t i = 0; i < minimised.size(); ++i) {
    const bool max = s.objectives[i].direction == livs::search::Direction::maximise;
    out += (i ? " / " : "") + livs::format_number(max ? -minimised[i] : minimised[i]);
  }
  return out;
}

struct Analysis {
  Report report;
  Json json = Json::object();
};

Analysis analyse(const std::vector<StrategyRuns>& strategies, const std::vector<std::string>& unreadable,
                 const std::optional<std::vector<Preset>>& presets, const Scoring& scoring,
                 const std::string& header) {
  Analysis a;
  Report& rep = a.report;
  rep.paragraph(header);
  std::string box;
  for (std::size_t i = 0; i < scoring.objectives.size(); ++i)
    box += (i ? ", " : "") + scoring.objectives[i].name + " " +
           livs::format_number(std::fabs(scoring.ideal[i])) + " to " +
           livs::format_number(std::fabs(scoring.reference[i]));
  rep.paragraph("Hypervolume: normalised to the box " + box +
                " (search/pareto.hpp normalised_hypervolume), of the feasible search-stage results at each " +
                "run's top fidelity. Cells: median [min-max] over seeds.");
  for (const auto& e : unreadable) rep.paragraph("unreadable run: " + e);

  // The budget: search.max_train_seconds, else the shortest run's GPU-seconds.
  double budget = 0;
  for (const auto& s : strategies)
    for (const auto& r : s.runs) budget = std::max(budget, r.budget);
  bool budget_from_runs = false;
  if (budget <= 0) {
    budget = kInf;
    for (const auto& s : strategies)
      for (const auto& r : s.runs) budget = std::min(budget, r.search_gpu_seconds);
    budget_from_runs = true;
    if (!std::isfinite(budget)) budget = 0;
  }
  a.json["budget_gpu_seconds"] = budget;
  a.json["budget_from"] = budget_from_runs ? "shortest run" : "search.max_train_seconds";
  a.json["hypervolume_box"] = {
      {"objectives", objective_names(scoring)}, {"ideal", scoring.ideal}, {"reference", scoring.reference}};

  const std::vector<double> fractions = {0.25, 0.5, 0.75, 1.0};
  // GPU-seconds.
  {
    rep.heading("Hypervolume against GPU-seconds");
    rep.paragraph("GPU-seconds: the sum of the search stage's evaluations' wall_seconds, in finish order; " +
                  std::string("budget ") + fixed(budget, 1) + " s" +
                  (budget_from_runs ? " (no search.max_train_seconds: the shortest run's)" : "") +
                  ". 'end': all of the search stage (the last evaluation may run past the budget).");
    Table t;
    t.header = {"strategy", "seeds"};
    for (double f : fractions) t.header.push_back(fixed(100 * f, 0) + "% (" + seconds(f * budget) + " s)");
    t.header.push_back("end");
    t.header.push_back("GPU-s at end");
    for (const auto& s : strategies) {
      std::vector<std::string> row = {s.name, std::to_string(s.runs.size())};
      Json js = Json::object();
      Json at = Json::array();
      for (double f : fractions) {
        std::vector<double> hv;
        for (const auto& r : s.runs) hv.push_back(r.hypervolume_at_seconds(f * budget));
        row.push_back(format_spread(spread(hv), 4));
        at.push_back(
            {{"fraction", f}, {"gpu_seconds", f * budget}, {"hypervolume", spread_json(spread(hv))}});
      }
      std::vector<double> hv, secs;
      for (const auto& r : s.runs) {
        hv.push_back(r.final_hypervolume());
        secs.push_back(r.search_gpu_seconds);
      }
      row.push_back(format_spread(spread(hv), 4));
      row.push_back(format_spread(spread(secs), 1));
      t.rows.push_back(row);
      a.json["strategies"][s.name]["hypervolume_at_gpu_seconds"] = at;
      a.json["strategies"][s.name]["final_hypervolume"] = spread_json(spread(hv));
      a.json["strategies"][s.name]["search_gpu_seconds"] = spread_json(spread(secs));
    }
    rep.table(t);
  }
  // Evaluations.
  {
    double common = kInf;
    for (const auto& s : strategies)
      for (const auto& r : s.runs) common = std::min(common, r.search_equivalents);
    if (!std::isfinite(common)) common = 0;
    rep.heading("Hypervolume against evaluations");
    rep.paragraph("Evaluations in full-fidelity equivalents (the sum of the fidelities trained: a 1/9 rung " +
                  std::string("counts 1/9), at shares of ") + fixed(common, 1) +
                  ", the fewest any run reached.");
    Table t;
    t.header = {"strategy"};
    for (double f : fractions) t.header.push_back(fixed(f * common, 1) + " eq.");
    t.header.push_back("evaluations (raw)");
    t.header.push_back("equivalents");
    t.header.push_back("top-rung ok");
    t.header.push_back("per fidelity (raw, median)");
    for (const auto& s : strategies) {
      std::vector<std::string> row = {s.name};
      Json at = Json::array();
      for (double f : fractions) {
        std::vector<double> hv;
        for (const auto& r : s.runs) hv.push_back(r.hypervolume_at_equivalents(f * common));
        row.push_back(format_spread(spread(hv), 4));
        at.push_back({{"equivalents", f * common}, {"hypervolume", spread_json(spread(hv))}});
      }
      std::vector<double> raw, eq, top;
      std::map<double, std::vector<double>> per_fidelity;
      for (const auto& r : s.runs) {
        raw.push_back(r.search_evaluations);
        eq.push_back(r.search_equivalents);
        top.push_back(r.top_rung_ok);
        for (const auto& [f, n] : r.per_fidelity) per_fidelity[f].push_back(n);
      }
      std::string rungs;
      for (auto& [f, counts] : per_fidelity) {
        counts.resize(s.runs.size(), 0.0);  // a run without that fidelity had 0 there
        rungs += (rungs.empty() ? "" : ", ") + fixed(f, 3) + ": " + fixed(median(counts), 0);
      }
      row.push_back(format_spread(spread(raw), 0));
      row.push_back(format_spread(spread(eq), 1));
      row.push_back(format_spread(spread(top), 0));
      row.push_back(rungs);
      t.rows.push_back(row);
      a.json["strategies"][s.name]["hypervolume_at_equivalents"] = at;
      a.json["strategies"][s.name]["search_evaluations"] = spread_json(spread(raw));
      a.json["strategies"][s.name]["search_equivalents"] = spread_json(spread(eq));
    }
    rep.table(t);
  }

  // Target (a).
  {
    rep.heading("(a) time to random search's final hypervolume");
    const StrategyRuns* random = nullptr;
    const StrategyRuns* best = nullptr;
    for (const auto& s : strategies) {
      if (s.name == "random") random = &s;
      if (s.name == "default") best = &s;
    }
    if (!random || !best || random->runs.empty() || best->runs.empty()) {
      rep.paragraph("needs runs of both 'default' and 'random'; skipped.");
    } else {
      std::vector<double> hv, secs;
      for (const auto& r : random->runs) {
        hv.push_back(r.final_hypervolume());
        secs.push_back(r.search_gpu_seconds);
      }
      const double target = median(hv), random_seconds = median(secs);
      Table t;
      t.header = {"strategy", "seed", "GPU-s to reach " + fixed(target, 4),
                  "share of random's " + seconds(random_seconds) + " s"};
      Json per_seed = Json::array();
      for (const auto& s : strategies) {
        std::vector<double> shares;
        for (const auto& r : s.runs) {
          const double sec = r.seconds_to_reach(target);
          shares.push_back(random_seconds > 0 ? sec / random_seconds : kNaN);
          if (&s == best) {
            t.rows.push_back({s.name, std::to_string(r.seed), fixed(sec, 1), percent(shares.back())});
            per_seed.push_back({{"seed", r.seed},
                                {"gpu_seconds", finite_or_null(sec)},
                                {"share", finite_or_null(shares.back())}});
          }
        }
        const Spread sp = spread(shares);
        t.rows.push_back(
            {s.name, "median", "",
             sp.n == 0 ? "-" : percent(sp.median) + " [" + percent(sp.min) + " to " + percent(sp.max) + "]"});
        a.json["strategies"][s.name]["share_of_random_seconds_to_reach_random_final"] = spread_json(sp);
      }
      rep.table(t);
      std::vector<double> shares;
      for (const auto& r : best->runs) shares.push_back(r.seconds_to_reach(target) / random_seconds);
      const double m = median(shares);
      rep.paragraph("target (a): the default strategy reaches random's final median hypervolume " +
                    fixed(target, 4) + " in " + percent(m) +
                    " of random's median GPU-seconds (target <= 50%): " + (m <= 0.5 ? "MET" : "NOT MET") +
                    ". 'never': that run did not get there within its budget.");
      a.json["target_a"] = {{"random_final_hypervolume_median", target},
                            {"random_search_gpu_seconds_median", random_seconds},
                            {"default_share_median", finite_or_null(m)},
                            {"default_per_seed", per_seed},
                            {"met", m <= 0.5}};
    }
  }

  // Target (b).
  {
    rep.heading("(b) final fronts against the presets");
    if (!presets) {
      rep.paragraph("no presets.json (the presets' `livsearch eval`); skipped.");
    } else {
      rep.paragraph(
          "Final stage: the finalists re-trained at fidelity 1, mean over their seeds; a preset counts " +
          std::string("as beaten by a run when a member of that run's final front dominates it in (") +
          objective_names(scoring) + "). In budget: params <= " +
          (scoring.params_max ? livs::format_number(*scoring.params_max) : std::string("(no limit)")) +
          ". Cells: the runs (seeds) whose front dominates the preset.");
      Table t;
      t.header = {"preset", "params", objective_names(scoring) + " (mean)", "seeds ok", "in budget"};
      for (const auto& s : strategies) t.header.push_back(s.name);
      Json presets_json = Json::array();
      for (const auto& p : *presets) {
        std::vector<std::string> row = {
            p.name, livs::format_number(p.params), format_vector(p.means, scoring),
            std::to_string(p.seeds_ok) + "/" + std::to_string(p.seeds), p.in_budget ? "yes" : "no"};
        Json pj = {{"name", p.name},
                   {"hash", p.hash},
                   {"params", finite_or_null(p.params)},
                   {"in_budget", p.in_budget},
                   {"seeds_ok", p.seeds_ok}};
        for (const auto& s : strategies) {
          int beaten = 0;
          for (const auto& r : s.runs) {
            bool dominated = false;
            for (std::size_t i : r.final_front)
              dominated = dominated || livs::search::pareto_dominates(r.finalists[i].means, p.means);
            beaten += dominated;
          }
          row.push_back(p.in_budget ? std::to_string(beaten) + "/" + std::to_string(s.runs.size()) : "-");
          pj["dominated_by_runs"][s.name] = beaten;
        }
        presets_json.push_back(pj);
        t.rows.push_back(row);
      }
      rep.table(t);
      a.json["presets"] = presets_json;

      Table runs;
      runs.header = {"strategy", "seed", "finalists", "final front (" + objective_names(scoring) + ")",
                     "in-budget presets dominated"};
      int in_budget = 0;
      for (const auto& p : *presets) in_budget += p.in_budget && p.seeds_ok > 0;
      for (const auto& s : strategies) {
        int all_beaten = 0;
        for (const auto& r : s.runs) {
          std::string front, beaten;
          int count = 0;
          for (std::size_t i : r.final_front)
            front += (front.empty() ? "" : "; ") + short_hash(r.finalists[i].hash) + " " +
                     format_vector(r.finalists[i].means, scoring);
          for (const auto& p : *presets) {
            if (!p.in_budget || p.seeds_ok == 0) continue;
            bool dominated = false;
            for (std::size_t i : r.final_front)
              dominated = dominated || livs::search::pareto_dominates(r.finalists[i].means, p.means);
            if (dominated) {
              ++count;
              beaten += (beaten.empty() ? "" : ", ") + p.name;
            }
          }
          all_beaten += in_budget > 0 && count == in_budget;
          runs.rows.push_back({s.name, std::to_string(r.seed), std::to_string(r.finalists.size()),
                               front.empty() ? "(no final stage)" : front,
                               std::to_string(count) + "/" + std::to_string(in_budget) +
                                   (beaten.empty() ? "" : ": " + beaten)});
          Json rj = {{"seed", r.seed},
                     {"finalists", r.finalists.size()},
                     {"presets_dominated", count},
                     {"presets_in_budget", in_budget}};
          a.json["strategies"][s.name]["final_runs"].push_back(rj);
        }
        a.json["strategies"][s.name]["runs_dominating_every_in_budget_preset"] = all_beaten;
      }
      rep.table(runs);
      for (const auto& s : strategies) {
        const int all = a.json["strategies"][s.name].value("runs_dominating_every_in_budget_preset", 0);
        if (s.name == "default") {
          rep.paragraph("target (b): the default strategy's final front dominates every one of the " +
                        std::to_string(in_budget) + " in-budget presets in " + std::to_string(all) + " of " +
                        std::to_string(s.runs.size()) + " runs: " +
                        (in_budget > 0 && all == static_cast<int>(s.runs.size()) ? "MET" : "NOT MET") + ".");
          a.json["target_b"] = {{"in_budget_presets", in_budget},
                                {"default_runs_dominating_all", all},
                                {"default_runs", s.runs.size()},
                                {"met", in_budget > 0 && all == static_cast<int>(s.runs.size())}};
        }
      }
    }
  }

  // Target (c) and the runs themselves.
  {
    rep.heading("(c) time outside training, per run");
    rep.paragraph(
        "Overhead: 1 - (sum of the run's evaluations' wall_seconds, final stage included) / the " +
        std::string("livsearch process's wall time, as measured by this program (so process start, ") +
        "data loading, genome operations, sorting, hypervolume and the database).");
    Table t;
    t.header = {"strategy",    "seed",        "process wall s", "search GPU-s",
                "final GPU-s", "final evals", "overhead",       "exit"};
    double worst = kNaN;
    std::vector<double> all;
    for (const auto& s : strategies) {
      std::vector<double> shares;
      for (const auto& r : s.runs) {
        const double share = r.overhead_share();
        shares.push_back(share);
        all.push_back(share);
        if (std::isfinite(share)) worst = std::isnan(worst) ? share : std::max(worst, share);
        t.rows.push_back({s.name, std::to_string(r.seed), fixed(r.process_wall, 1),
                          fixed(r.search_gpu_seconds, 1), fixed(r.final_gpu_seconds, 1),
                          std::to_string(r.final_evaluations), percent(share),
                          r.exit_status < 0 ? "?" : std::to_string(r.exit_status)});
        Json rj = {{"seed", r.seed},
                   {"db", r.db.string()},
                   {"process_wall_seconds", finite_or_null(r.process_wall)},
                   {"exit_status", r.exit_status},
                   {"search_gpu_seconds", r.search_gpu_seconds},
                   {"search_equivalents", r.search_equivalents},
                   {"search_evaluations", r.search_evaluations},
                   {"search_failed", r.search_failed},
                   {"top_rung_ok", r.top_rung_ok},
                   {"top_rung_feasible", r.top_rung_feasible},
                   {"final_gpu_seconds", r.final_gpu_seconds},
                   {"final_evaluations", r.final_evaluations},
                   {"final_hypervolume", r.final_hypervolume()},
                   {"overhead_share", finite_or_null(share)}};
        Json trajectory = Json::array();
        for (const auto& p : r.trajectory)
          trajectory.push_back({p.gpu_seconds, p.equivalents, p.evaluations, p.hypervolume});
        rj["trajectory"] = trajectory;
        rj["trajectory_columns"] = {"gpu_seconds", "equivalents", "evaluations", "hypervolume"};
        a.json["strategies"][s.name]["runs"].push_back(rj);
      }
      a.json["strategies"][s.name]["overhead_share"] = spread_json(spread(shares));
    }
    rep.table(t);
    const double m = median(all);
    rep.paragraph(
        "target (c): overhead median " + percent(m) + ", worst " + percent(worst) +
        " (target < 2%): " + (std::isfinite(worst) ? (worst < 0.02 ? "MET" : "NOT MET") : "unknown") + ".");
    a.json["target_c"] = {{"median", finite_or_null(m)},
                          {"worst", finite_or_null(worst)},
                          {"met", std::isfinite(worst) && worst < 0.02}};
  }
  return a;
}

// ---------------------------------------------------------------- main

struct Options {
  fs::path livsearch, base_config, out;
  int seeds = 5, jobs = 4;
  double budget = 0;
  std::string device;
  bool tiny = false, cpu = false, analyse_only = false;
  std::vector<std::string> preset_names;  // empty: all
  Json strategies;
};

std::string quote_command(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) out += (out.empty() ? "" : " ") + a;
  return out;
}

// Writes every config, checks each with `livsearch check`, runs everything.
// Returns the process wall time and exit status per run file stem.
std::map<std::string, std::pair<double, int>> run_benchmark(const Options& o,
                                                            const std::vector<std::string>& strategy_names) {
  Json base = livs::parse_json_file(o.base_config.string());
  if (!base.is_object())
    throw InputError(o.base_config.string(), "", "expected a JSON object (a livsearch config)");
  absolutise_paths(base, o.base_config.parent_path());
  if (!o.device.empty()) base["device"] = o.device;
  const int final_seeds =
      base.contains("search") && base["search"].contains("final") && base["search"]["final"].is_object()
          ? base["search"]["final"].value("seeds", 3)
          : 3;

  std::vector<Job> jobs;
  std::vector<std::pair<fs::path, std::string>> to_check;
  // The presets, at fidelity 1 on the final stage's number of seeds, with the base config's seed.
  const fs::path presets_config = o.out / "presets-config.json";
  write_text(presets_config, base.dump(2) + "\n");
  to_check.push_back({presets_config, "presets"});
  std::vector<std::string> names = o.preset_names;
  if (names.empty()) names = list_presets(o.livsearch, o.out);
  if (final_seeds > 0) {
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ",") + n;
    Job job;
    job.label = "presets (" + list + ")";
    job.argv = {o.livsearch.string(), "eval", "--config", presets_config.string(),
                "--preset",           list,   "--seeds",  std::to_string(final_seeds),
                "--format",           "json"};
    if (!o.device.empty()) job.argv.insert(job.argv.end(), {"--device", o.device});
    job.stdout_path = o.out / "presets.json";
    job.stderr_path = o.out / "presets.log";
    jobs.push_back(job);
  }
  // The runs, seed by seed and strategy by strategy, so runs sharing the GPU
  // at any moment are of different strategies.
  for (int seed = 1; seed <= o.seeds; ++seed) {
    for (const auto& strategy : strategy_names) {
      Json config = base;
      config.merge_patch(o.strategies[strategy]);
      config["name"] = "sq-" + run_file_stem(strategy, seed);
      config["seed"] = seed;
      if (o.budget > 0) config["search"]["max_train_seconds"] = o.budget;
      const std::string stem = run_file_stem(strategy, seed);
      const fs::path path = o.out / (stem + ".json"), db = o.out / (stem + ".db");
      write_text(path, config.dump(2) + "\n");
      if (seed == 1) to_check.push_back({path, stem});  // the seeds' configs differ only in seed and name
      for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(db.string() + suffix);
      Job job;
      job.label = strategy + " seed " + std::to_string(seed);
      job.argv = {o.livsearch.string(), "search", path.string(), "--db", db.string()};
      if (!o.device.empty()) job.argv.insert(job.argv.end(), {"--device", o.device});
      job.stdout_path = job.stderr_path = o.out / (stem + ".log");
      jobs.push_back(job);
    }
  }
  // Everything is checked before anything trains.
  for (const auto& [path, what] : to_check) {
    const fs::path log = o.out / "check.log";
    if (run_quiet({o.livsearch.string(), "check", path.string()}, log) != 0)
      throw BenchError("the config of " + what + " (" + path.string() +
                       ") does not pass `livsearch check`:\n" + read_text(log));
  }
  fs::remove(o.out / "check.log");

  std::fprintf(stderr, "search_quality: %zu processes, %d at once; logs in %s\n", jobs.size(), o.jobs,
               o.out.c_str());
  for (const auto& job : jobs) std::fprintf(stderr, "  %s\n", quote_command(job.argv).c_str());
  run_jobs(jobs, o.jobs);

  std::map<std::string, std::pair<double, int>> walls;
  Json record = Json::object();
  for (const auto& job : jobs) {
    const std::string stem = job.stdout_path.stem().string();
    walls[stem] = {job.wall_seconds, job.exit_status};
    record[stem] = {{"label", job.label},
                    {"command", quote_command(job.argv)},
                    {"wall_seconds", job.wall_seconds},
                    {"exit_status", job.exit_status}};
  }
  write_text(o.out / "processes.json", record.dump(2) + "\n");
  return walls;
}

std::map<std::string, std::pair<double, int>> read_walls(const fs::path& out) {
  std::map<std::string, std::pair<double, int>> walls;
  const fs::path path = out / "processes.json";
  if (!fs::exists(path)) return walls;
  const Json record = livs::parse_json_file(path.string());
  if (!record.is_object()) throw InputError(path.string(), "", "expected a JSON object");
  for (const auto& [stem, item] : record.items())
    if (item.is_object() && item.contains("wall_seconds") && item["wall_seconds"].is_number())
      walls[stem] = {item["wall_seconds"].get<double>(), item.value("exit_status", -1)};
  return walls;
}

int run(int argc, char** argv) {
  cxxopts::Options options(
      "search_quality",
      "Search strategies against random search at one GPU-time budget (hypervolume against "
      "GPU-seconds and evaluations, final fronts against the presets, overhead)");
  options.add_options()("livsearch",
                        "the livsearch binary (default: next to this program, else build/livsearch)",
                        cxxopts::value<std::string>()->default_value(""))(
      "config", "the base config (default bench/search_quality/gpu.json, or tiny.json with --tiny)",
      cxxopts::value<std::string>()->default_value(""))("seeds", "seeds per strategy (search seeds 1..N)",
                                                        cxxopts::value<int>())(
      "jobs", "livsearch processes at once (they share the device)", cxxopts::value<int>())(
      "budget", "search.max_train_seconds of every run: evaluation seconds; 0 = leave the config's",
      cxxopts::value<double>())("device", "passed to livsearch (auto, cpu, cuda, cuda:N)",
                                cxxopts::value<std::string>()->default_value(""))(
      "out", "folder for the configs, databases, logs and the report",
      cxxopts::value<std::string>()->default_value("search-quality-out"))(
      "strategies",
      "a JSON file {NAME: overlay} replacing the built-in strategies (default, nsga2, random, "
      "random-rungs); each overlay is merged into the base config",
      cxxopts::value<std::string>()->default_value(""))("only",
                                                        "comma-separated strategies to run (default: all)",
                                                        cxxopts::value<std::string>()->default_value(""))(
      "presets", "comma-separated presets to train (default: every one `livsearch presets` lists)",
      cxxopts::value<std::string>()->default_value(""))("cpu", "train on the CPU (--device cpu)")(
      "tiny", "toy scale for CI: tiny.json, 2 seeds, 2 jobs, a 2-second budget")(
      "analyse-only", "only read the databases already in --out")("h,help", "this help");
  cxxopts::ParseResult args;
  try {
    args = options.parse(argc, argv);
  } catch (const cxxopts::exceptions::exception& e) {
    throw BenchError(std::string(e.what()) + " (see --help)");
  }
  if (args.count("help")) {
    std::printf("%s\n", options.help().c_str());
    return 0;
  }
  if (!args.unmatched().empty())
    throw BenchError("unexpected argument '" + args.unmatched()[0] + "' (see --help)");

  Options o;
  o.tiny = args.count("tiny") > 0;
  o.cpu = args.count("cpu") > 0;
  o.analyse_only = args.count("analyse-only") > 0;
  o.seeds = args.count("seeds") ? args["seeds"].as<int>() : (o.tiny ? 2 : 5);
  o.jobs = args.count("jobs") ? args["jobs"].as<int>() : (o.tiny ? 2 : 4);
  o.budget = args.count("budget") ? args["budget"].as<double>() : (o.tiny ? 2.0 : 240.0);
  o.device = args["device"].as<std::string>();
  if (o.cpu) {
    if (!o.device.empty() && o.device != "cpu")
      throw BenchError("--cpu and --device " + o.device + " disagree");
    o.device = "cpu";
  }
  if (o.seeds < 1 || o.seeds > 100) throw BenchError("--seeds: expected an integer in [1, 100]");
  if (o.jobs < 1 || o.jobs > 64) throw BenchError("--jobs: expected an integer in [1, 64]");
  if (!(o.budget >= 0) || !std::isfinite(o.budget)) throw BenchError("--budget: expected seconds >= 0");
  o.out = fs::absolute(args["out"].as<std::string>());
  for (const auto& p : split(args["presets"].as<std::string>(), ',')) o.preset_names.push_back(p);

  if (const std::string file = args["strategies"].as<std::string>(); !file.empty()) {
    o.strategies = livs::parse_json_file(file);
    if (!o.strategies.is_object() || o.strategies.empty())
      throw InputError(file, "", "expected a non-empty object {STRATEGY: overlay of the base config}");
    for (const auto& [name, overlay] : o.strategies.items()) {
      if (!valid_strategy_name(name))
        throw InputError(file, "/" + name, "a strategy name of letters, digits, '-' and '_'");
      if (!overlay.is_object()) throw InputError(file, "/" + name, "expected an object (a config overlay)");
    }
  } else {
    o.strategies = builtin_strategies();
  }
  std::vector<std::string> strategy_names;
  for (const auto& [name, overlay] : o.strategies.items()) strategy_names.push_back(name);
  if (const auto only = split(args["only"].as<std::string>(), ','); !only.empty()) {
    for (const auto& name : only)
      if (!o.strategies.contains(name)) throw BenchError("--only: no strategy named '" + name + "'");
    strategy_names = only;
  }

  std::map<std::string, std::pair<double, int>> walls;
  std::string header;
  const auto begin = std::chrono::steady_clock::now();
  if (!o.analyse_only) {
    o.livsearch = find_livsearch(args["livsearch"].as<std::string>());
    o.base_config = find_base_config(args["config"].as<std::string>(), o.tiny);
    std::error_code ec;
    fs::create_directories(o.out, ec);
    if (ec || !fs::is_directory(o.out))
      throw BenchError("--out " + o.out.string() + ": cannot create the folder");
    walls = run_benchmark(o, strategy_names);
    header = "search_quality: base config " + o.base_config.string() + ", " + std::to_string(o.seeds) +
             (o.seeds == 1 ? " seed" : " seeds") + ", budget " + fixed(o.budget, 1) +
             " evaluation seconds per run, " + std::to_string(o.jobs) + " processes at once, device " +
             (o.device.empty() ? "(the config's)" : o.device) + ", " +
             fixed(std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count(), 0) +
             " s wall";
  } else {
    if (!fs::is_directory(o.out)) throw BenchError("--out " + o.out.string() + ": no such folder to analyse");
    walls = read_walls(o.out);
    header = "search_quality: analysis of " + o.out.string();
  }

  // Read the databases: every strategy, every seed file that is there.
  std::optional<Scoring> scoring;
  std::vector<StrategyRuns> strategies;
  std::vector<std::string> unreadable;
  for (const auto& name : strategy_names) {
    StrategyRuns s;
    s.name = name;
    // Reading back: every seed file there, unless --seeds says how many.
    const int last_seed = o.analyse_only && !args.count("seeds") ? 100 : o.seeds;
    for (int seed = 1; seed <= last_seed; ++seed) {
      const std::string stem = run_file_stem(name, seed);
      const fs::path db = o.out / (stem + ".db");
      if (o.analyse_only && !fs::exists(db)) continue;
      RunResult r = read_run(name, seed, db, scoring);
      if (const auto it = walls.find(stem); it != walls.end()) {
        r.process_wall = it->second.first;
        r.exit_status = it->second.second;
      }
      if (!r.error.empty()) {
        unreadable.push_back(r.error);
        std::fprintf(stderr, "error: %s\n", r.error.c_str());
        continue;
      }
      if (r.exit_status > 0)
        unreadable.push_back(stem + ": livsearch exited with status " + std::to_string(r.exit_status) +
                             " (see " + (o.out / (stem + ".log")).string() +
                             "); its database is analysed as it is");
      s.runs.push_back(std::move(r));
    }
    strategies.push_back(std::move(s));
  }
  if (!scoring) throw BenchError("no readable run database in " + o.out.string());

  std::optional<std::vector<Preset>> presets;
  if (const fs::path p = o.out / "presets.json"; fs::exists(p) && fs::file_size(p) > 0) {
    try {
      presets = read_presets(p, *scoring);
    } catch (const InputError& e) {
      unreadable.push_back(std::string("presets: ") + e.what() + " (see " + (o.out / "presets.log").string() +
                           ")");
    }
  } else if (fs::exists(o.out / "presets.log")) {
    unreadable.push_back("presets: `livsearch eval` wrote nothing; see " + (o.out / "presets.log").string());
  }
  if (const auto it = walls.find("presets"); it != walls.end() && it->second.second != 0)
    unreadable.push_back("presets: `livsearch eval` exited with status " + std::to_string(it->second.second) +
                         "; see " + (o.out / "presets.log").string());

  Analysis a = analyse(strategies, unreadable, presets, *scoring, header);
  std::fputs(a.report.text.c_str(), stdout);
  std::fflush(stdout);
  write_text(o.out / "search_quality.md", "# search_quality\n\n" + a.report.markdown);
  a.json["header"] = header;
  a.json["problems"] = unreadable;
  write_text(o.out / "search_quality.json", a.json.dump(2) + "\n");
  std::fprintf(stderr, "wrote %s and %s\n", (o.out / "search_quality.md").c_str(),
               (o.out / "search_quality.json").c_str());
  return unreadable.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const BenchError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
  } catch (const InputError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
  }
  return 2;
}
