// livsearch check CONFIG: validate a config and print it resolved (defaults
// filled in, paths made absolute or config-relative), so users see exactly
// what a search would run with.
#include <cstdio>
#include <cxxopts.hpp>
#include <iostream>

#include "cli/command.hpp"
#include "cli/config.hpp"

namespace livs::cli {

int run_check(int argc, char** argv) {
  cxxopts::Options options(argv[0], "Validate a search config and print it resolved, as JSON.");
  options.positional_help("CONFIG");
  options.add_options()("config", "the config file", cxxopts::value<std::string>())("h,help",
                                                                                    "show this help");
  options.parse_positional({"config"});
  cxxopts::ParseResult args;
  if (!parse_arguments(options, argc, argv, args)) return 0;
  if (!args.count("config")) {
    std::fprintf(stderr, "error: missing CONFIG (see 'livsearch check --help')\n");
    return 2;
  }
  const Config config = load_config(args["config"].as<std::string>());
  std::cout << to_json(config).dump(2) << "\n";
  return 0;
}

}  // namespace livs::cli
