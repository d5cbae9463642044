// The PyTorch export's parity test (issue 16, item 3), a ctest of its own
// (exit 77 = skipped when /usr/bin/python3 cannot import torch):
//   1. genomes: every preset, then genomes sampled from the space in
//      tests/torch/export_parity.json (seeded) until every LIV class, fusion
//      kind, both sharing kinds, each class's differential form and the
//      knobs that change the code path (features_of below) appear;
//   2. `livsearch eval --save` trains each a few steps on the CPU;
//   3. `livsearch export --format pytorch --weights` exports each;
//   4. tests/torch/check_export.py loads every export in PyTorch (float32) and
//      checks logits against livsearch's probe, the validation loss against
//      livsearch's, step() against the forward, and that 50 more training
//      steps in PyTorch lower the loss.
// Usage: export_parity LIVSEARCH_BINARY SOURCE_DIR [WORK_DIR]
// LIVSEARCH_TEST_PYTHON names another interpreter than /usr/bin/python3 (a
// GPU box's PyTorch 2.x, to check the export under a recent torch too).
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "common/json_reader.hpp"
#include "common/rng.hpp"
#include "genome/genome_json.hpp"
#include "genome/operators.hpp"
#include "genome/presets.hpp"
#include "genome/search_space.hpp"

namespace fs = std::filesystem;
using namespace livs;

namespace {

constexpr int kSkipped = 77;
constexpr uint64_t kSampleSeed = 16;
constexpr int kMaxAttempts = 20000;

// What the sampled genomes must show between them, beyond the presets.
std::set<std::string> features_of(const genome::Genome& g) {
  std::set<std::string> seen;
  for (const auto& slot : g.slots) {
    seen.insert(std::string("fusion ") + genome::to_string(slot.fusion));
    for (const auto& op : slot.ops) {
      const std::string cls = genome::to_string(op.cls);
      seen.insert("class " + cls);
      if (op.differential) seen.insert("differential " + cls);
      if (op.featurizer.valid()) seen.insert("featurizer sharing");
      if (op.features.valid()) seen.insert("feature sharing " + cls);
      if (op.cls == genome::LivClass::linattn) {
        if (op.linattn.gated) seen.insert("gated linattn");
        seen.insert(std::string("linattn ") + genome::to_string(op.linattn.feature_map));
        if (op.linattn.short_conv > 0) seen.insert("short-conv linattn");
      }
      if (op.cls == genome::LivClass::sa) {
        if (op.sa.window > 0) seen.insert("windowed sa");
        if (op.sa.kv_heads < op.sa.heads) seen.insert("grouped-query sa");
        if (op.sa.qk_norm) seen.insert("qk-norm sa");
        if (!op.sa.rope) seen.insert("sa without RoPE");
        if (op.sa.short_conv > 0) seen.insert("short-conv sa");
        if (op.sa.output_gate) seen.insert("output-gated sa");
      }
      if (op.cls == genome::LivClass::moe) seen.insert("moe top-" + std::to_string(op.moe.top_k));
      if (op.cls == genome::LivClass::ssm && op.ssm.form == genome::SsmForm::mamba2)
        seen.insert(op.differential ? "differential ssm mamba2" : "ssm mamba2");
    }
  }
  return seen;
}

std::set<std::string> wanted() {
  std::set<std::string> out = {
      "featurizer sharing", "feature sharing sa", "feature sharing linattn", "gated linattn", "windowed sa",
      "grouped-query sa",   "qk-norm sa",         "sa without RoPE",         "moe top-1",     "moe top-2",
      "short-conv sa",      "output-gated sa",    "short-conv linattn",      "ssm mamba2",    "differential ssm mamba2"};
  for (const char* map : {"elu_plus_one", "relu", "identity"}) out.insert(std::string("linattn ") + map);
  for (const auto c : genome::kAllClasses) {
    out.insert(std::string("class ") + genome::to_string(c));
    if (genome::is_token_mixer(c) && c != genome::LivClass::deltanet)  // deltanet has no differential form
      out.insert(std::string("differential ") + genome::to_string(c));
  }
  for (const char* f : {"none", "sum", "mean", "gate"}) out.insert(std::string("fusion ") + f);
  return out;
}

int run(const std::string& command) {
  std::printf("$ %s\n", command.c_str());
  std::fflush(stdout);
  const int status = std::system(command.c_str());
  return status == -1 ? -1 : WEXITSTATUS(status);
}

// Built piecewise: GCC 12 warns (-Wrestrict, a false positive) on "'" + std::string in Release.
std::string quoted(const fs::path& p) {
  std::string out = "'";
  out += p.string();
  out += '\'';
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s LIVSEARCH_BINARY SOURCE_DIR [WORK_DIR]\n", argv[0]);
    return 2;
  }
  const fs::path livsearch = argv[1], source = argv[2];
  const char* chosen = std::getenv("LIVSEARCH_TEST_PYTHON");
  const std::string python = chosen && *chosen ? chosen : "/usr/bin/python3";
  if (run(python + " -c 'import torch' > /dev/null 2>&1") != 0) {
    std::printf("skipped: %s cannot import torch (Debian: apt-get install python3-torch)\n", python.c_str());
    return kSkipped;
  }
  const fs::path work =
      argc > 3 ? fs::path(argv[3])
               : fs::temp_directory_path() / ("livsearch-export-parity-" + std::to_string(::getpid()));
  fs::remove_all(work);
  fs::create_directories(work / "genomes");
  const fs::path config = source / "tests/torch/export_parity.json";
  const Json config_json = parse_json_file(config.string());
  const genome::SearchSpace space =
      genome::parse_search_space(JsonReader(config_json, config.string()).at("search_space"));

  // 1. Presets at the config's size, then sampled genomes that add something new.
  std::string architectures;
  for (const auto& name : genome::preset_names()) architectures += " --preset " + name;
  const int d_model = config_json["model"]["d_model"], layers = config_json["model"]["layers"];
  std::set<std::string> seen;
  for (const auto& name : genome::preset_names()) {
    const auto f = features_of(genome::preset(name, d_model, layers));
    seen.insert(f.begin(), f.end());
  }
  const std::set<std::string> all = wanted();
  auto covered = [&] { return std::includes(seen.begin(), seen.end(), all.begin(), all.end()); };
  Rng rng(kSampleSeed);
  int sampled = 0;
  for (int attempt = 0; attempt < kMaxAttempts && !covered(); ++attempt) {
    const genome::Genome g = genome::sample(space, rng);
    bool adds = false;
    for (const auto& f : features_of(g)) adds = seen.insert(f).second || adds;
    if (!adds) continue;
    const fs::path file = work / "genomes" / ("sampled-" + std::to_string(sampled++) + ".json");
    std::ofstream(file) << genome::to_canonical_json(g).dump(2) << "\n";
    architectures += ' ';  // appended piecewise: GCC 12's -Wrestrict false positive on " " + std::string
    architectures += quoted(file);
    std::printf("%s: %s\n", file.filename().c_str(), genome::summary(g).c_str());
  }
  std::vector<std::string> missing;
  for (const auto& w : all)
    if (!seen.count(w)) missing.push_back(w);
  if (!missing.empty()) {
    for (const auto& m : missing) std::printf("not covered by the sampled genomes: %s\n", m.c_str());
    return 1;
  }

  // 2. Train and save; 3. export each.
  if (run("cd " + quoted(source) + " && " + quoted(livsearch) + " eval" + architectures + " --config " +
          quoted(config) + " --save " + quoted(work / "saved") + " --format json > " +
          quoted(work / "eval.json") + " 2> " + quoted(work / "eval.log")) != 0) {
    std::printf("livsearch eval failed; its log: %s\n", (work / "eval.log").c_str());
    return 1;
  }
  Json manifest = Json::array();
  for (const auto& entry : parse_json_file((work / "eval.json").string())) {
    const std::string hash = entry["hash"];
    const fs::path saved = work / "saved" / hash;
    if (run(quoted(livsearch) + " export " + quoted(saved / "genome.json") + " --format pytorch --weights " +
            quoted(saved / "seed0" / "model.safetensors") + " --out " + quoted(work / "exported") +
            " > /dev/null") != 0)
      return 1;
    manifest.push_back({{"name", entry["architecture"]},
                        {"summary", entry["summary"]},
                        {"exported", (work / "exported" / hash).string()},
                        {"saved", (saved / "seed0").string()}});
  }
  std::ofstream(work / "manifest.json") << manifest.dump(2) << "\n";

  // 4. The checks in PyTorch.
  const int status = run(python + " " + quoted(source / "tests/torch/check_export.py") + " " +
                         quoted(work / "manifest.json"));
  if (status == 0 && argc <= 3) fs::remove_all(work);
  if (status != 0) std::printf("kept for a look: %s\n", work.c_str());
  return status == 0 ? 0 : 1;
}
