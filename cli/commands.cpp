#include <iostream>

#include "cli/command.hpp"
#include "common/input_error.hpp"

namespace livs::cli {

// One declaration and one table row per command; each lives in cli/cmd_NAME.cpp.
// (Commands are added here as their issues land.)
int run_check(int argc, char** argv);
int run_search(int argc, char** argv);
int run_runs(int argc, char** argv);
int run_status(int argc, char** argv);
int run_pareto(int argc, char** argv);
int run_show(int argc, char** argv);
int run_export(int argc, char** argv);
int run_eval(int argc, char** argv);
int run_presets(int argc, char** argv);
int run_finalize(int argc, char** argv);
int run_report(int argc, char** argv);

const std::vector<Command>& commands() {
  static const std::vector<Command> table = {
      {"check", "validate a config and print it resolved", run_check},
      {"search", "run (or --resume) the architecture search a config describes", run_search},
      {"runs", "list the runs in a database", run_runs},
      {"status", "progress of a run: generation, evaluations, best values, hypervolume", run_status},
      {"pareto", "the non-dominated candidates of a run", run_pareto},
      {"show", "one genome: JSON, summary, metrics, lineage", run_show},
      {"export", "write genomes (one, or a run's Pareto front) as JSON files or PyTorch modules with weights",
       run_export},
      {"finalize", "re-train a run's front and warm-start members at full budget over several seeds",
       run_finalize},
      {"report", "write one self-contained HTML file with a run's plots, front and genomes", run_report},
      {"eval", "train architectures side by side over seeds, scored as the search scores them", run_eval},
      {"presets", "list the built-in architectures, or print one as genome JSON", run_presets},
  };
  return table;
}

namespace {

// cxxopts names a value it cannot parse ("Argument 'many' failed to parse")
// but not the option it was given to; find that option on the command line.
std::string option_given(const std::string& message, int argc, char** argv) {
  const std::string open = "\u2018", close = "\u2019";  // cxxopts quotes with typographic quotes
  const auto begin = message.find(open);
  const auto end = message.find(close, begin == std::string::npos ? 0 : begin);
  if (begin == std::string::npos || end == std::string::npos) return "";
  const std::string value = message.substr(begin + open.size(), end - begin - open.size());
  for (int i = 1; i < argc; ++i) {
    const std::string word = argv[i];
    if (word == value && i > 1 && argv[i - 1][0] == '-') return argv[i - 1];
    const auto eq = word.find('=');
    if (word.rfind("--", 0) == 0 && eq != std::string::npos && word.substr(eq + 1) == value)
      return word.substr(0, eq);
  }
  return "";
}

}  // namespace

bool parse_arguments(cxxopts::Options& options, int argc, char** argv, cxxopts::ParseResult& args) {
  try {
    args = options.parse(argc, argv);
  } catch (const cxxopts::exceptions::exception& e) {
    std::string message = e.what();
    if (const auto option = option_given(message, argc, argv); !option.empty()) message += " for " + option;
    throw InputError(argv[0], "", message + " (see '" + argv[0] + " --help')");
  }
  if (args.count("help")) {
    std::cout << options.help();
    return false;
  }
  return true;
}

}  // namespace livs::cli
