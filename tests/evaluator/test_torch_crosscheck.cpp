// The independent check (issue 6, item 4): for each operator class and the
// fusion, sharing and differential cases, a tiny model's weights, tokens,
// loss and every gradient are written to a folder, and
// tests/torch/check_operators.py rebuilds the model from the equations in
// plain PyTorch (float64, autograd) and compares. Tolerances (stated in the
// script): loss relative error < 1e-5; every gradient tensor's relative error
// ||g - g_torch|| / ||g_torch|| < 1e-4 (tensors whose gradient norm is below
// 1e-4 of the largest are compared against that instead).
// Skipped (with a message, counted as passed) when /usr/bin/python3 cannot
// import torch.
#include <doctest/doctest.h>
#include <unistd.h>  // getpid: one folder per test process

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/evaluator/mix_checks.hpp"

using namespace livs::evaluator;
using namespace livs::evaluator::testing;
namespace genome = livs::genome;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

bool torch_available() {
  static const bool available = std::system("/usr/bin/python3 -c \"import torch\" > /dev/null 2>&1") == 0;
  return available;
}

json op_json(const genome::OpSpec& op, int slot, int index) {
  json j;
  j["class"] = genome::to_string(op.cls);
  j["differential"] = op.differential;
  j["sa"] = {{"heads", op.sa.heads},          {"kv_heads", op.sa.kv_heads}, {"head_dim", op.sa.head_dim},
             {"window", op.sa.window},        {"qk_norm", op.sa.qk_norm},   {"rope", op.sa.rope},
             {"rope_theta", op.sa.rope_theta}};
  j["sa"]["short_conv"] = op.sa.short_conv;
  j["sa"]["output_gate"] = op.sa.output_gate;
  j["linattn"] = {{"heads", op.linattn.heads},
                  {"head_dim", op.linattn.head_dim},
                  {"feature_map", genome::to_string(op.linattn.feature_map)},
                  {"gated", op.linattn.gated}};
  j["linattn"]["short_conv"] = op.linattn.short_conv;
  j["rec"] = {{"width", op.rec.width}, {"conv_kernel", op.rec.conv_kernel}};
  j["ssm"] = {{"expand", op.ssm.expand},    {"d_inner", op.ssm.d_inner},
              {"d_state", op.ssm.d_state},  {"conv_kernel", op.ssm.conv_kernel},
              {"dt_rank", op.ssm.dt_rank},  {"form", genome::to_string(op.ssm.form)},
              {"head_dim", op.ssm.head_dim}};
  j["gconv"] = {{"kernel", op.gconv.kernel}};
  j["moe"] = {{"experts", op.moe.experts}, {"top_k", op.moe.top_k}, {"hidden", op.moe.hidden}};
  j["deltanet"] = {{"heads", op.deltanet.heads},
                   {"head_dim", op.deltanet.head_dim},
                   {"gated", op.deltanet.gated},
                   {"short_conv", op.deltanet.short_conv}};
  j["feature_source"] =
      op.feature_source.valid() ? json::array({op.feature_source.slot, op.feature_source.op}) : json(nullptr);
  // Local weight name -> the model parameter holding it (the source's, with featurizer sharing).
  json weights = json::object();
  const std::string own = "slot" + std::to_string(slot) + ".op" + std::to_string(index) + ".";
  for (const auto& w : op.weights) weights[w.name] = own + w.name;
  const auto& src = op.featurizer_source;
  for (const auto& name : op.shared_weight_names)
    weights[name] = "slot" + std::to_string(src.slot) + ".op" + std::to_string(src.op) + "." + name;
  j["weights"] = weights;
  return j;
}

// Writes the case, runs the script, requires agreement.
void cross_check(const std::string& name, const genome::ModelSpec& spec, int batch = 2, int seq = 6) {
  if (!torch_available()) {
    MESSAGE("skipped: /usr/bin/python3 cannot import torch (Debian: apt-get install python3-torch)");
    return;
  }
  CpuBackend backend;
  Model model(spec, backend, {batch, seq}, 7);
  randomize(model);
  auto inputs = random_tokens(batch * seq, spec.vocab, 1),
       targets = random_tokens(batch * seq, spec.vocab, 2);
  const double ce = model.forward(inputs.data(), targets.data());
  const double aux = model.auxiliary_loss();
  model.zero_grads();
  model.backward();

  const fs::path dir =
      fs::temp_directory_path() / ("livsearch-torch-" + std::to_string(::getpid()) + "-" + name);
  fs::create_directories(dir);
  json j;
  j["name"] = name;
  j["vocab"] = spec.vocab;
  j["d_model"] = spec.d_model;
  j["norm_eps"] = spec.norm_eps;
  j["batch"] = batch;
  j["seq"] = seq;
  j["inputs"] = inputs;
  j["targets"] = targets;
  j["loss"] = ce;
  j["aux_loss"] = aux;
  j["slots"] = json::array();
  for (int s = 0; s < int(spec.slots.size()); ++s) {
    json slot;
    slot["fusion"] = genome::to_string(spec.slots[s].fusion);
    slot["ops"] = json::array();
    for (int o = 0; o < int(spec.slots[s].ops.size()); ++o)
      slot["ops"].push_back(op_json(spec.slots[s].ops[o], s, o));
    j["slots"].push_back(slot);
  }
  j["parameters"] = json::array();
  for (const auto& e : model.parameters().entries())
    j["parameters"].push_back({{"name", e.name}, {"shape", e.shape}, {"offset", e.offset}});
  std::ofstream(dir / "case.json") << j.dump(1);
  const auto count = std::size_t(model.parameters().count());
  std::ofstream(dir / "values.f32", std::ios::binary)
      .write(reinterpret_cast<const char*>(model.values()), std::streamsize(count * sizeof(float)));
  std::ofstream(dir / "grads.f32", std::ios::binary)
      .write(reinterpret_cast<const char*>(model.grads()), std::streamsize(count * sizeof(float)));

  const std::string script = std::string(LIVSEARCH_SOURCE_DIR) + "/tests/torch/check_operators.py";
  const std::string command =
      "/usr/bin/python3 " + script + " " + dir.string() + " > " + (dir / "report.txt").string() + " 2>&1";
  const int status = std::system(command.c_str());
  std::ifstream report_file(dir / "report.txt");
  const std::string report((std::istreambuf_iterator<char>(report_file)), std::istreambuf_iterator<char>());
  MESSAGE(report);
  CHECK_MESSAGE(status == 0, name << ": the PyTorch rebuild disagrees (case kept in " << dir.string() << ")");
  if (status == 0 && !std::getenv("LIVSEARCH_KEEP_TORCH_CASES")) fs::remove_all(dir);
}

genome::ModelSpec model_of(int d, std::vector<genome::Slot> slots, int vocab = 17) {
  auto spec = decode_slots(d, std::move(slots));
  spec.vocab = vocab;
  spec.weights[0].shape[0] = vocab;
  return spec;
}

genome::OpGene sharing(genome::OpGene op, int slot, int index = 0) {
  op.features = {slot, index};
  return op;
}

genome::OpGene featurizer(genome::OpGene op, int slot, int index = 0) {
  op.featurizer = {slot, index};
  return op;
}

const auto kElu = genome::FeatureMap::elu_plus_one;
const auto kRelu = genome::FeatureMap::relu;

}  // namespace

TEST_CASE("PyTorch cross-check: sa (MHA with RoPE, GQA, window, qk-norm) and swiglu") {
  cross_check("sa", model_of(16, {striped(sa_gene(2, 2)), striped(swiglu_gene(24)),
                                  striped(sa_gene(4, 2, 3, true))}));
}

TEST_CASE("PyTorch cross-check: linattn (elu+1, GLA-gated relu)") {
  cross_check("linattn",
              model_of(16, {striped(linattn_gene(2, kElu, false)), striped(linattn_gene(4, kRelu, true))}));
}

TEST_CASE("PyTorch cross-check: moe with its load-balancing loss") {
  cross_check("moe", model_of(16, {striped(sa_gene(2, 2)), striped(moe_gene(4, 2, 12))}));
}

TEST_CASE("PyTorch cross-check: differential sa and linattn") {
  cross_check("differential", model_of(16, {striped(sa_gene(2, 1, 0, true, true)),
                                            striped(linattn_gene(2, kElu, true, true))}));
}

TEST_CASE("PyTorch cross-check: fusion slots (sum, mean, gate)") {
  cross_check("fusion",
              model_of(16, {fused(genome::FusionKind::sum, sa_gene(2, 2), linattn_gene(2, kElu, true)),
                            fused(genome::FusionKind::mean, sa_gene(2, 1, 3), linattn_gene(1, kElu, false)),
                            fused(genome::FusionKind::gate, linattn_gene(2, kElu, true), sa_gene(4, 4))}));
}

TEST_CASE("PyTorch cross-check: feature sharing (sa K/V, linattn state) and featurizer sharing") {
  cross_check("sharing", model_of(16, {striped(sa_gene(2, 1, 0, true)), striped(linattn_gene(2, kElu, true)),
                                       striped(sharing(sa_gene(2, 1, 0, true), 0)),
                                       striped(sharing(linattn_gene(2, kElu, true), 1)),
                                       striped(featurizer(sa_gene(2, 1, 0, true), 0)),
                                       striped(swiglu_gene(16)), striped(featurizer(swiglu_gene(16), 5))}));
}

// rec, ssm and gconv (the ops-scan operators), plain and differential.
TEST_CASE("PyTorch cross-check: rec (Griffin's recurrent block), plain and differential") {
  auto rec = [](bool differential, int width, int kernel) {
    genome::OpGene op = genome::default_op(genome::LivClass::rec, 16);
    op.rec = {width, kernel};
    op.differential = differential;
    return op;
  };
  cross_check(
      "rec", model_of(16, {striped(rec(false, 24, 4)), striped(swiglu_gene(16)), striped(rec(true, 16, 3))}));
}

TEST_CASE("PyTorch cross-check: ssm (Mamba's selective scan), plain and differential") {
  auto ssm = [](bool differential, int expand, int state, int kernel) {
    genome::OpGene op = genome::default_op(genome::LivClass::ssm, 16);
    op.ssm = {expand, state, kernel};
    op.differential = differential;
    return op;
  };
  cross_check("ssm", model_of(16, {striped(ssm(false, 2, 4, 4)), striped(ssm(true, 1, 3, 2))}));
}

TEST_CASE("PyTorch cross-check: ssm in Mamba-2's SSD form, plain and differential, across a chunk") {
  auto ssd = [](bool differential, int expand, int state, int kernel, int head_dim) {
    genome::OpGene op = genome::default_op(genome::LivClass::ssm, 16);
    op.ssm.form = genome::SsmForm::mamba2;
    op.ssm.expand = expand;
    op.ssm.d_state = state;
    op.ssm.conv_kernel = kernel;
    op.ssm.head_dim = head_dim;
    op.differential = differential;
    return op;
  };
  cross_check("ssd", model_of(16, {striped(ssd(false, 2, 4, 4, 8)), striped(ssd(true, 1, 3, 2, 4))}), 2, 70);
}

TEST_CASE("PyTorch cross-check: gconv (LFM2's double-gated conv), plain and differential, in a fusion") {
  auto gconv = [](bool differential, int kernel) {
    genome::OpGene op = genome::default_op(genome::LivClass::gconv, 16);
    op.gconv.kernel = kernel;
    op.differential = differential;
    return op;
  };
  cross_check("gconv",
              model_of(16, {striped(gconv(false, 3)), striped(gconv(true, 4)),
                            fused(genome::FusionKind::gate, gconv(false, 2), linattn_gene(2, kElu, true))}));
}

// The short-convolution featurizer on q, k, v and sa's output gate, with GQA,
// qk-norm, differential, GLA gating and feature sharing through the conv.
TEST_CASE("PyTorch cross-check: short conv on sa and linattn, sa output gate, with sharing") {
  auto sa = [](int heads, int kv, int conv, bool gate, bool qk_norm, bool differential) {
    auto op = sa_gene(heads, kv, 0, qk_norm, differential);
    op.sa.short_conv = conv;
    op.sa.output_gate = gate;
    return op;
  };
  auto lin = [](int heads, bool gated, int conv, bool differential) {
    auto op = linattn_gene(heads, kElu, gated, differential);
    op.linattn.short_conv = conv;
    return op;
  };
  cross_check("short_conv",
              model_of(16, {striped(sa(2, 1, 4, true, true, false)), striped(lin(2, true, 3, false)),
                            striped(sa(2, 2, 2, true, false, true)), striped(lin(2, false, 4, true)),
                            striped(sharing(sa(2, 1, 4, false, true, false), 0)),
                            striped(sharing(lin(2, true, 3, false), 1))}));
}

TEST_CASE(
    "PyTorch cross-check: deltanet (Gated DeltaNet and plain DeltaNet, with and without the short conv)") {
  auto deltanet = [](int heads, bool gated, int conv) {
    genome::OpGene op = genome::default_op(genome::LivClass::deltanet, 16);
    op.deltanet = {heads, gated, conv};
    return op;
  };
  cross_check("deltanet", model_of(16, {striped(deltanet(2, true, 4)), striped(swiglu_gene(16)),
                                        striped(deltanet(1, false, 0)), striped(deltanet(4, true, 2))}));
}
