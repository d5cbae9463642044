#pragma once
// Every CLI command is one function in its own file under cli/, registered in
// cli/commands.cpp. A command returns the process exit code.
#include <string>
#include <vector>

namespace livs::cli {

struct Command {
  const char* name;
  const char* summary;
  int (*run)(int argc, char** argv);  // argv[0] is "livsearch COMMAND"
};

const std::vector<Command>& commands();

}  // namespace livs::cli
