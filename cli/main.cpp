// livsearch: STAR-style evolutionary architecture search.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

#include "cli/command.hpp"
#include "common/input_error.hpp"
#include "search/executor.hpp"

namespace {
void print_usage() {
  std::printf("usage: livsearch COMMAND [ARGS]\n\ncommands:\n");
  for (const auto& c : livs::cli::commands()) std::printf("  %-8s %s\n", c.name, c.summary);
  std::printf("\n`livsearch COMMAND --help` describes one command.\n");
}

// A worker thread stuck in an evaluation that could not be stopped was
// abandoned (search/executor.hpp); its evaluation is recorded as timed out
// and the database is closed by now. Static destructors must not run under
// it, so the process ends here without them.
int finish(int code) {
  if (livs::search::abandoned_workers() > 0) {
    std::fprintf(stderr, "%d stuck worker thread(s) abandoned; exiting without waiting for them\n",
                 livs::search::abandoned_workers());
    std::fflush(stdout);
    std::fflush(stderr);
    std::_Exit(code);
  }
  return code;
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
      return finish(c.run(argc - 1, argv + 1));
    } catch (const livs::InputError& e) {
      std::fprintf(stderr, "error: %s\n", e.what());
      return finish(2);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "error: %s\n", e.what());
      return finish(1);
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
