// livsearch export (HASH | --pareto | GENOME.json) --format json|pytorch --out DIR
//                  [--weights FILE.safetensors] [--db FILE]
// json: one genome file per candidate, DIR/<hash>.json, in the canonical form
// `livsearch eval` reads. pytorch: one folder per candidate, DIR/<hash>/,
// with model.py, config.json, README.md and, with --weights (one genome
// only; by default, from --db, the weights search.final.save_weights kept in
// DB.weights/), model.safetensors (export/pytorch_export.hpp). Every genome is
// re-read with genome_from_json first, so nothing is written for a genome
// this livsearch does not understand, and the weights are checked against
// the genome before anything is written.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>

#include "cli/command.hpp"
#include "cli/query_common.hpp"
#include "cli/query_front.hpp"
#include "cli/saved_weights.hpp"
#include "common/input_error.hpp"
#include "common/path_checks.hpp"
#include "db/store.hpp"
#include "export/pytorch_export.hpp"
#include "genome/genome_json.hpp"

namespace livs::cli {

namespace {

struct ExportedGenome {
  std::string name;  // for messages: the file, or "<db> (genome <hash>)"
  genome::Genome genome;
  std::optional<std::filesystem::path> kept_weights;  // what search.final.save_weights kept, if anything
};

void write_genome_json(const ExportedGenome& g, const std::filesystem::path& path) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << genome::to_canonical_json(g.genome).dump(2) << "\n";
  out.close();
  if (!out) throw InputError(path.string(), "", "cannot write the genome file");
}

// A positional argument names a genome file when it ends in .json or is a file.
bool is_genome_file(const std::string& argument) { return argument.ends_with(".json") || is_file(argument); }

std::vector<ExportedGenome> genomes_to_export(const cxxopts::ParseResult& args, const char* command) {
  const bool pareto = args.count("pareto") > 0;
  if (pareto == (args.count("genome") > 0))
    throw InputError(command, "",
                     "give either a HASH, a GENOME.json or --pareto (see 'livsearch export --help')");
  std::vector<ExportedGenome> out;
  if (!pareto && is_folder(args["genome"].as<std::string>())) {
    const std::string folder = args["genome"].as<std::string>();
    throw InputError(
        folder, "",
        "a folder, not a genome: give a HASH or a GENOME.json (for a folder `livsearch eval --save` "
        "wrote: " +
            folder + "/genome.json --weights " + folder + "/seed0/model.safetensors)");
  }
  if (!pareto && is_genome_file(args["genome"].as<std::string>())) {
    const std::string file = args["genome"].as<std::string>();
    out.push_back({file, genome::genome_from_file(file), std::nullopt});
    return out;
  }
  const std::string db_path = required_db(args, command);
  db::Reader reader(db_path);
  std::vector<db::GenomeRecord> records;
  if (pareto) {
    Front front = compute_front(reader, args["run"].as<std::string>(), args["objectives"].as<std::string>(),
                                args.count("feasible-only") > 0);
    std::string note = front_note(front);
    if (!note.empty()) std::cerr << (front.members.empty() ? "" : "note: ") << note << "\n";
    for (const auto& m : front.members) records.push_back(*reader.genome(m.candidate.hash));
  } else {
    records.push_back(reader.genome_by_prefix(args["genome"].as<std::string>()));
  }
  for (const auto& r : records) {
    // The stored JSON must still be a genome this livsearch understands.
    const std::string name = db_path + " (genome " + r.hash + ")";
    out.push_back({name, genome::genome_from_json(r.genome, name), kept_weights(db_path, r.hash)});
  }
  return out;
}

}  // namespace

int run_export(int argc, char** argv) {
  cxxopts::Options options(
      argv[0],
      "Write genomes for other tools: one genome (by HASH or a unique prefix of it, or a GENOME.json file) "
      "or "
      "a run's Pareto front (--pareto).\n"
      "  --format json     DIR/<hash>.json, files `livsearch eval` accepts\n"
      "  --format pytorch  DIR/<hash>/ with model.py (a self-contained PyTorch module), config.json, "
      "README.md, and model.safetensors with --weights");
  options.positional_help("HASH | GENOME.json");
  options.add_options()("db", "the database file (for HASH and --pareto)", cxxopts::value<std::string>())(
      "genome", "genome hash (or a unique prefix), or a genome JSON file", cxxopts::value<std::string>())(
      "pareto", "export every member of the run's Pareto front")(
      "run", "with --pareto: the run (default: the most recent)",
      cxxopts::value<std::string>()->default_value(""))(
      "objectives", "with --pareto: objectives to compare, as for `livsearch pareto`",
      cxxopts::value<std::string>()->default_value(""))("feasible-only",
                                                        "with --pareto: feasible candidates only")(
      "format", "json or pytorch", cxxopts::value<std::string>()->default_value("json"))(
      "weights",
      "with --format pytorch and one genome: trained weights to ship as model.safetensors (as `livsearch "
      "eval --save` writes them: DIR/<hash>/seed<k>/model.safetensors); by default, genomes from --db ship "
      "the weights the search kept (search.final.save_weights) when there are any",
      cxxopts::value<std::string>())("out", "the folder to write into (created if missing)",
                                     cxxopts::value<std::string>())("h,help", "show this help");
  options.parse_positional({"genome"});
  cxxopts::ParseResult args;
  if (!parse_arguments(options, argc, argv, args)) return 0;
  const std::string format = chosen_format(args, {"json", "pytorch"});
  if (!args.count("out")) throw InputError(argv[0], "", "missing --out DIR (see 'livsearch export --help')");
  std::optional<std::filesystem::path> weights;
  if (args.count("weights")) {
    if (format != "pytorch") throw InputError("--weights", "", "weights are exported with --format pytorch");
    weights = args["weights"].as<std::string>();
    if (!is_file(*weights))
      throw InputError(
          weights->string(), "",
          path_exists(*weights) ? "not a file (expected a .safetensors file)" : "no such weights file");
  }
  const std::filesystem::path dir = args["out"].as<std::string>();

  const std::vector<ExportedGenome> genomes = genomes_to_export(args, argv[0]);
  if (genomes.empty()) return 1;  // an empty front; compute_front said why
  if (weights && genomes.size() != 1)
    throw InputError("--weights", "",
                     "one weights file fits one genome, and the front has " + std::to_string(genomes.size()) +
                         "; export them one HASH at a time");
  // Checked before the first file is written: every genome has a PyTorch form.
  if (format == "pytorch")
    for (const auto& g : genomes) exports::pytorch_model_source(g.genome, g.name);

  for (const auto& g : genomes) {
    const std::string hash = genome::genome_hash(g.genome);
    if (format == "json") {
      std::error_code error;
      std::filesystem::create_directories(dir, error);
      if (!is_folder(dir))
        throw InputError(dir.string(), "",
                         "cannot create the output folder" + (error ? ": " + error.message() : ""));
      const auto path = dir / (hash + ".json");
      write_genome_json(g, path);
      std::cout << path.string() << "\n";
    } else {  // checks the weights before it creates anything
      const auto folder = dir / hash;
      const auto shipped = weights ? weights : g.kept_weights;
      if (!weights && shipped) std::cerr << "weights the search kept: " << shipped->string() << "\n";
      exports::write_pytorch_package(g.genome, g.name, folder, shipped);
      std::cout << folder.string() << "\n";
    }
  }
  return 0;
}

}  // namespace livs::cli
