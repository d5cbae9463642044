// Trained weights out of `livsearch eval --save` and into `livsearch export
// --format pytorch --weights`, end to end through the real binary on the tiny
// config: the saved layout, the metrics beside the weights, and every wrong
// input (weights of another genome, a broken or missing weights file, a
// missing genome, --weights without pytorch, a --save folder that cannot be
// made) is a one-line error with exit code 2 and nothing half written.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "common/json_reader.hpp"
#include "genome/genome_json.hpp"
#include "run_command.hpp"

namespace fs = std::filesystem;
using livs::Json;
using livs::test::run_livsearch;
using livs::test::shell_quoted;

namespace {

const std::string kTiny = "--config tests/cli/tiny_config.json";

struct Folder {
  explicit Folder(const std::string& tag)
      : path(fs::temp_directory_path() / ("livsearch_cli_export_" + tag + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~Folder() { fs::remove_all(path); }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
  fs::path path;
};

std::string hash_of_preset(const std::string& saved, const std::string& summary_prefix) {
  for (const auto& entry : fs::directory_iterator(saved)) {
    const auto g = livs::genome::genome_from_file((entry.path() / "genome.json").string());
    if (livs::genome::summary(g).find(summary_prefix) != std::string::npos) return entry.path().filename();
  }
  return "";
}

}  // namespace

TEST_CASE("eval --save keeps each seed's weights, probe and metrics beside the genome") {
  Folder dir("save");
  const auto eval = run_livsearch(
      "eval --preset transformer,lfm2 " + kTiny + " --seeds 2 --format json --save '" + dir / "saved" + "'",
      "export_save");
  CAPTURE(eval.err);
  REQUIRE(eval.exit_code == 0);
  const Json rows = livs::parse_json_text(eval.out, "eval stdout");
  REQUIRE(rows.size() == 2);
  for (const auto& row : rows) {
    const fs::path genome_dir = fs::path(dir / "saved") / row["hash"].get<std::string>();
    CHECK(livs::genome::genome_hash(livs::genome::genome_from_file((genome_dir / "genome.json").string())) ==
          row["hash"]);
    for (int k = 0; k < 2; ++k) {
      const fs::path seed = genome_dir / ("seed" + std::to_string(k));
      CHECK(fs::exists(seed / "model.safetensors"));
      CHECK(fs::exists(seed / "probe.safetensors"));
      const Json metrics = livs::parse_json_file((seed / "metrics.json").string());
      CHECK(metrics["replicate"] == k);
      CHECK(metrics["seed"] == row["seeds"][k]["seed"]);
      CHECK(metrics["status"] == "ok");
      CHECK(metrics["metrics"]["validation_loss"] == row["seeds"][k]["metrics"]["validation_loss"]);
      CHECK(metrics["settings"]["training"]["steps"] == 4);
    }
    CHECK(eval.err.find("saved " + (genome_dir / "seed1").string()) != std::string::npos);
  }

  // A --save folder that cannot be made stops eval before anything trains.
  std::ofstream(dir / "a_file") << "x";
  const auto blocked = run_livsearch(
      "eval --preset transformer " + kTiny + " --save '" + dir / "a_file" + "'", "export_save_blocked");
  CHECK(blocked.exit_code == 2);
  CHECK(blocked.err.find("a_file: cannot create the folder to save into") != std::string::npos);
  CHECK(blocked.err.find("step") == std::string::npos);
}

TEST_CASE("export --format pytorch --weights ships a checkpoint, and refuses one that does not fit") {
  Folder dir("weights");
  const auto eval =
      run_livsearch("eval --preset transformer,griffin " + kTiny + " --save '" + dir / "saved" + "'",
                    "export_weights_eval");
  CAPTURE(eval.err);
  REQUIRE(eval.exit_code == 0);
  const std::string transformer = hash_of_preset(dir / "saved", "sa("),
                    griffin = hash_of_preset(dir / "saved", "rec(");
  REQUIRE(!transformer.empty());
  REQUIRE(!griffin.empty());
  const std::string genome = dir / ("saved/" + transformer + "/genome.json");
  const std::string weights = dir / ("saved/" + transformer + "/seed0/model.safetensors");
  const std::string other = dir / ("saved/" + griffin + "/seed0/model.safetensors");

  const auto ok = run_livsearch(
      "export '" + genome + "' --format pytorch --weights '" + weights + "' --out '" + dir / "out" + "'",
      "export_weights_ok");
  CAPTURE(ok.err);
  REQUIRE(ok.exit_code == 0);
  const fs::path folder = fs::path(dir / "out") / transformer;
  CHECK(ok.out == folder.string() + "\n");
  for (const char* file : {"model.py", "config.json", "README.md", "model.safetensors"})
    CHECK(fs::exists(folder / file));
  CHECK(fs::file_size(folder / "model.safetensors") == fs::file_size(weights));

  auto refused = [&](const std::string& args, const std::string& tag) {
    const auto r = run_livsearch("export " + args + " --out '" + dir / "refused" + "'", tag);
    CHECK(r.exit_code == 2);
    CHECK(livs::test::lines_of(r.err).size() >= 1);
    CHECK(!fs::exists(dir / "refused"));
    return r.err;
  };
  const std::string wrong =
      refused("'" + genome + "' --format pytorch --weights '" + other + "'", "export_wrong");
  CHECK(wrong.find(other + ": slots.0.ops.0.wq: missing: " + genome + " needs this F32 weight") !=
        std::string::npos);
  CHECK(wrong.find("not a weight of " + genome) != std::string::npos);
  std::ofstream(dir / "garbage.safetensors") << "this is not a checkpoint";
  CHECK(refused("'" + genome + "' --format pytorch --weights '" + dir / "garbage.safetensors" + "'",
                "export_garbage")
            .find("garbage.safetensors: not a safetensors file") != std::string::npos);
  CHECK(
      refused("'" + genome + "' --format pytorch --weights '" + dir / "none.safetensors" + "'", "export_none")
          .find("none.safetensors: no such weights file") != std::string::npos);
  CHECK(refused("'" + genome + "' --format json --weights '" + weights + "'", "export_json_weights")
            .find("--weights: weights are exported with --format pytorch") != std::string::npos);
  CHECK(refused(shell_quoted(dir / "missing.json") + " --format pytorch", "export_missing_genome")
            .find("missing.json") != std::string::npos);
  CHECK(refused("abc123 --format pytorch", "export_hash_no_db").find("missing --db") != std::string::npos);
  CHECK(refused(shell_quoted(dir / ("saved/" + transformer)) + " --format pytorch", "export_folder")
            .find("a folder, not a genome") != std::string::npos);
  CHECK(
      refused("'" + genome + "' --format pytorch --weights '" + dir / "saved" + "'", "export_weights_folder")
          .find("saved: not a file (expected a .safetensors file)") != std::string::npos);

  // --format json with a genome file writes the canonical genome under its hash.
  const auto json = run_livsearch("export '" + genome + "' --out '" + dir / "json" + "'", "export_json_file");
  REQUIRE(json.exit_code == 0);
  CHECK(fs::exists(fs::path(dir / "json") / (transformer + ".json")));
}

TEST_CASE("search.final.save_weights keeps each finalist's weights, and export --pareto ships them") {
  Folder dir("search_weights");
  Json config = livs::parse_json_file(std::string(LIVSEARCH_SOURCE_DIR) + "/tests/cli/tiny_search.json");
  config["data"]["path"] = std::string(LIVSEARCH_SOURCE_DIR) + "/data/kjv.txt";
  config["training"]["steps"] = 8;
  config["search"]["population"] = 4;
  config["search"]["generations"] = 1;
  config["search"]["fidelity"] = 0.5;  // the search stage keeps nothing, the final stage keeps its seeds
  config["search"]["final"] = {{"top", 2}, {"seeds", 2}, {"save_weights", true}};
  std::ofstream(dir / "config.json") << config.dump(2);
  const std::string db = dir / "run.db";
  const auto search =
      run_livsearch("search '" + dir / "config.json" + "' --db '" + db + "'", "export_search");
  CAPTURE(search.err);
  REQUIRE(search.exit_code == 0);
  CHECK(search.err.find("full-fidelity weights are kept in " + db + ".weights") != std::string::npos);

  const auto pareto = run_livsearch("pareto --db '" + db + "' --format json", "export_search_pareto");
  REQUIRE(pareto.exit_code == 0);
  const Json front = livs::parse_json_text(pareto.out, "pareto")["front"];
  REQUIRE(front.size() >= 1);
  for (const auto& member : front) {
    const fs::path kept = fs::path(db + ".weights") / member["hash"].get<std::string>();
    CHECK(fs::exists(kept / "genome.json"));
    for (const char* seed : {"seed0", "seed1"}) {
      CHECK(fs::exists(kept / seed / "model.safetensors"));
      CHECK(livs::parse_json_file((kept / seed / "metrics.json").string())["fidelity"] == 1.0);
    }
  }

  const auto exported =
      run_livsearch("export --pareto --db '" + db + "' --format pytorch --out '" + dir / "torch" + "'",
                    "export_search_torch");
  CAPTURE(exported.err);
  REQUIRE(exported.exit_code == 0);
  for (const auto& member : front) {
    const std::string hash = member["hash"];
    CHECK(fs::exists(fs::path(dir / "torch") / hash / "model.safetensors"));
    CHECK(exported.err.find("weights the search kept: " + db + ".weights/" + hash +
                            "/seed0/model.safetensors") != std::string::npos);
  }
}
