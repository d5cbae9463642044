// livsearch export --db FILE (HASH | --pareto) --format json --out DIR
// Writes one genome file per candidate, DIR/<hash>.json, in the canonical form
// `livsearch eval` reads. Each genome is re-read with genome_from_json first,
// so a file is only written when eval will accept it.
#include <filesystem>
#include <fstream>
#include <iostream>

#include "cli/command.hpp"
#include "cli/query_common.hpp"
#include "cli/query_front.hpp"
#include "common/input_error.hpp"
#include "db/store.hpp"
#include "genome/genome_json.hpp"

namespace livs::cli {

namespace {

std::filesystem::path write_genome(const db::GenomeRecord& genome, const std::filesystem::path& dir,
                                   const std::string& db_path) {
  // The stored JSON must still be a genome this livsearch understands.
  genome::genome_from_json(genome.genome, db_path + " (genome " + genome.hash + ")");
  auto path = dir / (genome.hash + ".json");
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << genome.genome.dump(2) << "\n";
  out.close();
  if (!out) throw InputError(path.string(), "", "cannot write the genome file");
  return path;
}

}  // namespace

int run_export(int argc, char** argv) {
  cxxopts::Options options(argv[0],
                           "Write genomes as JSON files (DIR/<hash>.json) that `livsearch eval` accepts:\n"
                           "one genome by HASH (or a unique prefix), or a run's Pareto front with --pareto.");
  options.positional_help("HASH");
  options.add_options()("db", "the database file", cxxopts::value<std::string>())(
      "hash", "genome hash or a unique prefix of it", cxxopts::value<std::string>())(
      "pareto", "export every member of the run's Pareto front")(
      "run", "with --pareto: the run (default: the most recent)",
      cxxopts::value<std::string>()->default_value(""))(
      "objectives", "with --pareto: objectives to compare, as for `livsearch pareto`",
      cxxopts::value<std::string>()->default_value(""))("feasible-only",
                                                        "with --pareto: feasible candidates only")(
      "format", "json (pytorch is not available yet)", cxxopts::value<std::string>()->default_value("json"))(
      "out", "the folder to write into (created if missing)", cxxopts::value<std::string>())(
      "h,help", "show this help");
  options.parse_positional({"hash"});
  cxxopts::ParseResult args;
  if (!parse_arguments(options, argc, argv, args)) return 0;
  std::string db_path = required_db(args, argv[0]);
  if (args["format"].as<std::string>() == "pytorch")
    throw InputError("--format", "", "pytorch export is not available yet; use --format json");
  chosen_format(args, {"json"});
  bool pareto = args.count("pareto") > 0;
  if (pareto == (args.count("hash") > 0))
    throw InputError(argv[0], "", "give either a HASH or --pareto (see 'livsearch export --help')");
  if (!args.count("out")) throw InputError(argv[0], "", "missing --out DIR (see 'livsearch export --help')");
  std::filesystem::path dir = args["out"].as<std::string>();

  db::Reader reader(db_path);
  std::vector<db::GenomeRecord> genomes;
  if (pareto) {
    Front front = compute_front(reader, args["run"].as<std::string>(), args["objectives"].as<std::string>(),
                                args.count("feasible-only") > 0);
    std::string note = front_note(front);
    if (!note.empty()) std::cerr << (front.members.empty() ? "" : "note: ") << note << "\n";
    if (front.members.empty()) return 1;
    for (const auto& m : front.members) genomes.push_back(*reader.genome(m.candidate.hash));
  } else {
    genomes.push_back(reader.genome_by_prefix(args["hash"].as<std::string>()));
  }

  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (!std::filesystem::is_directory(dir))
    throw InputError(dir.string(), "",
                     "cannot create the output folder" + (error ? ": " + error.message() : ""));
  for (const auto& g : genomes) std::cout << write_genome(g, dir, db_path).string() << "\n";
  return 0;
}

}  // namespace livs::cli
