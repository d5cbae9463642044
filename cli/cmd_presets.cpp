// livsearch presets [NAME] [--d-model N] [--layers L]: the built-in
// architectures. Without NAME, one line per preset (name and summary); with
// NAME, its canonical genome JSON, ready to edit or to pass to `livsearch eval`.
#include <cstdio>
// GCC 12 warns falsely (-Wrestrict, GCC bug 105329) inside cxxopts's integer
// parsing once it is inlined here; the code is the library's, not ours.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wrestrict"
#endif
#include <cxxopts.hpp>
#include <iostream>

#include "cli/command.hpp"
#include "genome/genome_json.hpp"
#include "genome/presets.hpp"

namespace livs::cli {

int run_presets(int argc, char** argv) {
  cxxopts::Options options(argv[0], "List the built-in architectures, or print one as genome JSON.");
  options.positional_help("[NAME]");
  options.add_options()("name", "a preset to print as JSON", cxxopts::value<std::string>())(
      "d-model", "model width", cxxopts::value<int>()->default_value("128"))(
      "layers", "mixer + MLP layer pairs (slots = 2 * layers)", cxxopts::value<int>()->default_value("4"))(
      "h,help", "show this help");
  options.parse_positional({"name"});
  cxxopts::ParseResult args;
  if (!parse_arguments(options, argc, argv, args)) return 0;
  const int d_model = args["d-model"].as<int>();
  const int layers = args["layers"].as<int>();
  if (args.count("name")) {
    const genome::Genome g = genome::preset(args["name"].as<std::string>(), d_model, layers);
    std::cout << genome::to_canonical_json(g).dump(2) << "\n";
    return 0;
  }
  for (const auto& name : genome::preset_names())
    std::printf("%-20s %s\n", name.c_str(), genome::summary(genome::preset(name, d_model, layers)).c_str());
  return 0;
}

}  // namespace livs::cli
