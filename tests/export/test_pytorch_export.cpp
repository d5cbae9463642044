// The PyTorch writer: model.py holds the classes the genome uses and no
// others, config.json is the canonical genome, weights are checked against
// the genome (names, shapes, dtype) before anything is written, and a class
// without a PyTorch form is an InputError naming the genome, the op and the
// class, never a module. (Whether the module computes what livsearch
// computes is tests/torch/export_parity.cpp's job.)
#include <doctest/doctest.h>

#include <fstream>
#include <iterator>

#include "common/input_error.hpp"
#include "export/pytorch_export.hpp"
#include "export/safetensors.hpp"
#include "export/weights_check.hpp"
#include "genome/checkpoint.hpp"
#include "genome/decode.hpp"
#include "genome/genome_json.hpp"
#include "genome/presets.hpp"
#include "tests/db/temp_dir.hpp"

using namespace livs;
using namespace livs::exports;
using livs::test::TempDir;

namespace {

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// A checkpoint with every weight of the genome (zeros), and `edit` applied.
std::string checkpoint(const TempDir& dir, const genome::Genome& g,
                       const std::function<void(std::vector<Tensor>&)>& edit = {}) {
  std::vector<Tensor> tensors;
  for (const auto& w : genome::checkpoint_weights(genome::decode(g))) {
    int64_t n = 1;
    for (auto d : w.shape) n *= d;
    tensors.push_back(f32_tensor(w.name, w.shape, std::vector<float>(std::size_t(n), 0.0f)));
  }
  if (edit) edit(tensors);
  const auto path = dir.file("w.safetensors");
  write_safetensors(path, tensors);
  return path;
}

std::string export_error(const genome::Genome& g, const std::filesystem::path& folder,
                         const std::string& weights) {
  try {
    write_pytorch_package(g, "the genome", folder, weights);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("pytorch export: model.py has the classes the genome uses and only those") {
  const std::string lfm2 = pytorch_model_source(genome::preset("lfm2", 64, 3), "lfm2");
  CHECK(lfm2.find("class GatedConv(nn.Module)") != std::string::npos);
  CHECK(lfm2.find("class Attention(nn.Module)") != std::string::npos);
  CHECK(lfm2.find("class SwiGLU(nn.Module)") != std::string::npos);
  CHECK(lfm2.find("def causal_conv(") != std::string::npos);
  CHECK(lfm2.find("OPERATORS = {\"sa\": Attention, \"gconv\": GatedConv, \"swiglu\": SwiGLU}") !=
        std::string::npos);
  for (const char* absent :
       {"class MambaBlock", "class RecurrentBlock", "class LinearAttention", "class MoE", "def linear_scan("})
    CHECK_MESSAGE(lfm2.find(absent) == std::string::npos, absent);
  CHECK(lfm2.find("import torch\n") != std::string::npos);
  for (const char* other : {"import numpy", "import safetensors", "from safetensors"})
    CHECK(lfm2.find(other) == std::string::npos);
  const std::string mamba = pytorch_model_source(genome::preset("striped-mamba", 64, 4), "striped-mamba");
  CHECK(mamba.find("def linear_scan(") != std::string::npos);
  CHECK(mamba.find("class MambaBlock(nn.Module)") != std::string::npos);
}

TEST_CASE("pytorch export: a class without a PyTorch form is an input error, not a module") {
  genome::Genome g = genome::preset("transformer", 32, 2);
  g.slots[2].ops[0].cls = static_cast<genome::LivClass>(99);  // a class added to the genome but not here
  try {
    pytorch_model_source(g, "genomes/new.json");
    FAIL("no error");
  } catch (const InputError& e) {
    CHECK(std::string(e.what()) ==
          "genomes/new.json: /slots/2/class: operator class \"?\" has no PyTorch form in this livsearch, so "
          "the "
          "genome cannot be exported");
  }
}

TEST_CASE("pytorch export: the folder holds model.py, config.json, README.md and the checked weights") {
  TempDir dir;
  const genome::Genome g = genome::preset("griffin", 32, 3);
  const auto folder = std::filesystem::path(dir.file("out"));
  write_pytorch_package(g, "griffin", folder, checkpoint(dir, g));
  CHECK(read_text(folder / "model.py") == pytorch_model_source(g, "griffin"));
  CHECK(genome::genome_from_json(parse_json_file((folder / "config.json").string())) == g);
  CHECK(read_text(folder / "README.md").find("m.loss(idx, targets)") != std::string::npos);
  CHECK(read_text(folder / "model.safetensors") == read_text(dir.file("w.safetensors")));
  // Without weights, a stale model.safetensors does not survive.
  write_pytorch_package(g, "griffin", folder, std::nullopt);
  CHECK(!std::filesystem::exists(folder / "model.safetensors"));
}

TEST_CASE("pytorch export: weights that do not fit the genome are refused before anything is written") {
  TempDir dir;
  const genome::Genome g = genome::preset("transformer", 32, 2);
  const auto folder = std::filesystem::path(dir.file("out"));
  const std::string missing =
      export_error(g, folder, checkpoint(dir, g, [](auto& t) { t.erase(t.begin() + 3); }));
  CHECK(missing.find("w.safetensors: slots.0.ops.0.wk: missing: the genome needs this F32 weight of shape "
                     "[32, 32]") != std::string::npos);
  const std::string shape = export_error(g, folder, checkpoint(dir, g, [](auto& t) {
                                           t[0] = f32_tensor("embedding", {2, 32}, std::vector<float>(64));
                                         }));
  CHECK(shape.find("w.safetensors: embedding: is F32 [2, 32], the genome needs F32 [256, 32]") !=
        std::string::npos);
  const std::string extra =
      export_error(g, folder, checkpoint(dir, g, [](auto& t) {
                     t.push_back(f32_tensor("slots.9.norm", {32}, std::vector<float>(32)));
                   }));
  CHECK(extra.find("slots.9.norm: not a weight of the genome") != std::string::npos);
  const std::string dtype = export_error(g, folder, checkpoint(dir, g, [](auto& t) {
                                           t[1] = i32_tensor(t[1].name, t[1].shape, std::vector<int32_t>(32));
                                         }));
  CHECK(dtype.find("slots.0.norm: is I32 [32], the genome needs F32 [32]") != std::string::npos);
  // A checkpoint of another genome lists a dozen problems, then how many more.
  const std::string other = export_error(g, folder, checkpoint(dir, genome::preset("striped-mamba", 32, 4)));
  CHECK(other.find("more problems") != std::string::npos);
  CHECK(export_error(g, folder, dir.file("nothing.safetensors")).find("cannot open") != std::string::npos);
  CHECK(!std::filesystem::exists(folder));
}
