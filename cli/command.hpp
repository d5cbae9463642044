#pragma once
// Every CLI command is one function in its own file under cli/, registered in
// cli/commands.cpp. A command returns the process exit code.
#include <cxxopts.hpp>
#include <string>
#include <vector>

namespace livs::cli {

struct Command {
  const char* name;
  const char* summary;
  int (*run)(int argc, char** argv);  // argv[0] is "livsearch COMMAND"
};

const std::vector<Command>& commands();

// Parses a command's arguments. A malformed command line is an InputError
// naming the command ("livsearch eval: Option 'x' does not exist (see
// 'livsearch eval --help')"), which main prints as one line with exit 2.
// With --help it prints the help and returns false: the command returns 0.
bool parse_arguments(cxxopts::Options& options, int argc, char** argv, cxxopts::ParseResult& args);

}  // namespace livs::cli
