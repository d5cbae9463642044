// livsearch: STAR-style evolutionary architecture search.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "cli/command.hpp"
#include "common/input_error.hpp"

namespace {
void print_usage() {
  std::printf("usage: livsearch COMMAND [ARGS]\n\ncommands:\n");
  for (const auto& c : livs::cli::commands()) std::printf("  %-8s %s\n", c.name, c.summary);
  std::printf("\n`livsearch COMMAND --help` describes one command.\n");
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    print_usage();
    return argc < 2 ? 2 : 0;
  }
  for (const auto& c : livs::cli::commands()) {
    if (c.name != std::string(argv[1])) continue;
    std::string program = std::string("livsearch ") + c.name;
    argv[1] = program.data();
    try {
      return c.run(argc - 1, argv + 1);
    } catch (const livs::InputError& e) {
      std::fprintf(stderr, "error: %s\n", e.what());
      return 2;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "error: %s\n", e.what());
      return 1;
    }
  }
  std::string known;
  for (const auto& c : livs::cli::commands()) {
    if (!known.empty()) known += ", ";
    known += c.name;
  }
  std::fprintf(stderr, "error: unknown command '%s' (expected one of %s; see 'livsearch --help')\n", argv[1],
               known.c_str());
  return 2;
}
