#include "cli/command.hpp"

namespace livs::cli {

// One declaration and one table row per command; each lives in cli/cmd_NAME.cpp.
// (Commands are added here as their issues land.)

const std::vector<Command>& commands() {
  static const std::vector<Command> table = {
  };
  return table;
}

}  // namespace livs::cli
