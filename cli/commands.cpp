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

bool parse_arguments(cxxopts::Options& options, int argc, char** argv, cxxopts::ParseResult& args) {
  try {
    args = options.parse(argc, argv);
  } catch (const cxxopts::exceptions::exception& e) {
    throw InputError(argv[0], "", std::string(e.what()) + " (see '" + argv[0] + " --help')");
  }
  if (args.count("help")) {
    std::cout << options.help();
    return false;
  }
  return true;
}

}  // namespace livs::cli
