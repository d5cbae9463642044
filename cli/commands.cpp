#include "cli/command.hpp"

namespace livs::cli {

// One declaration and one table row per command; each lives in cli/cmd_NAME.cpp.
// (Commands are added here as their issues land.)
int run_check(int argc, char** argv);
int run_search(int argc, char** argv);

const std::vector<Command>& commands() {
  static const std::vector<Command> table = {
      {"check", "validate a config and print it resolved", run_check},
      {"search", "run (or --resume) the architecture search a config describes", run_search},
  };
  return table;
}

}  // namespace livs::cli
