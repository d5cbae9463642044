#include "export/pytorch_export.hpp"

#include <fstream>
#include <set>
#include <vector>

#include "common/input_error.hpp"
#include "common/path_checks.hpp"
#include "export/embedded_files.hpp"
#include "export/safetensors.hpp"
#include "export/weights_check.hpp"
#include "genome/decode.hpp"
#include "genome/genome_json.hpp"

namespace livs::exports {

namespace {

// What model.py needs for one LIV class: its source file in export/pytorch/,
// the Python class, and the shared helpers it calls.
struct PythonForm {
  const char* file;
  const char* python_class;
  bool needs_conv = false;
  bool needs_scan = false;
};

// No default case: a class added to LivClass without a PyTorch form is a
// compiler warning here, and an InputError (never a wrong module) below.
std::optional<PythonForm> python_form(genome::LivClass c) {
  switch (c) {
    case genome::LivClass::sa:
      return PythonForm{"sa.py", "Attention"};
    case genome::LivClass::linattn:
      return PythonForm{"linattn.py", "LinearAttention", false, true};
    case genome::LivClass::rec:
      return PythonForm{"rec.py", "RecurrentBlock", true, true};
    case genome::LivClass::ssm:
      return PythonForm{"ssm.py", "SsmBlock", true, true};  // MambaBlock or Mamba2Block by form
    case genome::LivClass::gconv:
      return PythonForm{"gconv.py", "GatedConv", true, false};
    case genome::LivClass::swiglu:
      return PythonForm{"swiglu.py", "SwiGLU"};
    case genome::LivClass::moe:
      return PythonForm{"moe.py", "MoE"};
    case genome::LivClass::deltanet:
      return PythonForm{"deltanet.py", "GatedDeltaNet", true, false};
  }
  return std::nullopt;
}

std::string source_file(const std::string& name) {
  const auto text = embedded_file(name);
  if (!text) throw std::logic_error("export/pytorch/" + name + " was not compiled in");
  return std::string(*text);
}

std::string substituted(std::string text, const std::vector<std::pair<std::string, std::string>>& values) {
  for (const auto& [key, value] : values) {
    const std::string placeholder = "{{" + key + "}}";
    for (std::size_t at = text.find(placeholder); at != std::string::npos;
         at = text.find(placeholder, at + value.size()))
      text.replace(at, placeholder.size(), value);
  }
  return text;
}

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) throw InputError(path.string(), "", "cannot write the file");
}

}  // namespace

std::string pytorch_model_source(const genome::Genome& genome, const std::string& genome_name) {
  std::set<genome::LivClass> used;
  for (int s = 0; s < int(genome.slots.size()); ++s)
    for (int o = 0; o < int(genome.slots[s].ops.size()); ++o) {
      const genome::LivClass c = genome.slots[s].ops[o].cls;
      if (!python_form(c))
        throw InputError(genome_name, genome::op_pointer(genome, s, o) + "/class",
                         "operator class \"" + std::string(genome::to_string(c)) +
                             "\" has no PyTorch form in this livsearch, so the genome cannot be exported");
      used.insert(c);
    }
  bool conv = false, scan = false;
  for (const auto c : used) {
    conv = conv || python_form(c)->needs_conv;
    scan = scan || python_form(c)->needs_scan;
  }
  for (const auto& slot : genome.slots)  // sa and linattn need causal_conv only for their short convolution
    for (const auto& op : slot.ops)
      conv = conv || (op.cls == genome::LivClass::sa && op.sa.short_conv > 0) ||
             (op.cls == genome::LivClass::linattn && op.linattn.short_conv > 0);
  std::string out = substituted(source_file("header.py"), {{"HASH", genome::genome_hash(genome)},
                                                           {"SUMMARY", genome::summary(genome)}});
  out += source_file("common.py");
  if (conv) out += source_file("conv.py");
  if (scan) out += source_file("scan.py");
  std::string registry;
  for (const auto c : used) {  // LivClass order
    out += source_file(python_form(c)->file);
    registry += std::string(registry.empty() ? "" : ", ") + "\"" + genome::to_string(c) +
                "\": " + python_form(c)->python_class;
  }
  out += source_file("checkpoint.py");
  out +=
      "\n\n# The operator classes of this genome, by livsearch class name.\nOPERATORS = {" + registry + "}\n";
  out += source_file("model.py");
  return out;
}

void write_pytorch_package(const genome::Genome& genome, const std::string& genome_name,
                           const std::filesystem::path& folder,
                           const std::optional<std::filesystem::path>& weights) {
  const std::string model_source = pytorch_model_source(genome, genome_name);
  if (weights) {  // checked before anything is written
    const Safetensors file = read_safetensors(*weights);
    check_weights_match(file, genome::decode(genome), weights->string(), genome_name);
  }
  std::error_code error;
  std::filesystem::create_directories(folder, error);
  if (!is_folder(folder))
    throw InputError(folder.string(), "", "cannot create the folder" + (error ? ": " + error.message() : ""));

  write_text(folder / "model.py", model_source);
  write_text(folder / "config.json", genome::to_canonical_json(genome).dump(2) + "\n");
  const std::string hash = genome::genome_hash(genome);
  const std::string data_note =
      genome.vocab == 256
          ? "The vocabulary is 256: tokens are the bytes of the text (livsearch's byte-level data)."
          : "The vocabulary is " + std::to_string(genome.vocab) +
                ": token ids of the tokenizer the training data was made with.";
  write_text(
      folder / "README.md",
      substituted(
          source_file("README.md"),
          {{"HASH_SHORT", hash.substr(0, 12)},
           {"HASH", hash},
           {"SUMMARY", genome::summary(genome)},
           {"LOAD_LINE",
            weights
                ? "m = Model.from_pretrained(\".\")             # this folder: config.json, model.safetensors"
                : "m = Model(json.load(open(\"config.json\")))  # fresh weights: exported without --weights"},
           {"TRAIN_LOAD",
            weights ? "Model.from_pretrained(\".\")" : "Model(json.load(open(\"config.json\")))"},
           {"VOCAB", std::to_string(genome.vocab)},
           {"DATA_NOTE", data_note},
           {"WEIGHTS_ROW", weights ? "| `model.safetensors` | the weights livsearch trained |\n" : ""}}));
  const auto weights_path = folder / "model.safetensors";
  if (weights) {
    std::filesystem::copy_file(*weights, weights_path, std::filesystem::copy_options::overwrite_existing,
                               error);
    if (error) throw InputError(weights_path.string(), "", "cannot copy the weights: " + error.message());
  } else {
    std::filesystem::remove(weights_path, error);  // a stale file from an earlier export would not match
  }
}

}  // namespace livs::exports
