#include "genome/genome_json.hpp"

#include <algorithm>
#include <climits>
#include <cstdlib>

#include "common/sha256.hpp"

namespace livs::genome {

namespace {

Json ref_to_json(const ShareRef& r) {
  if (!r.valid()) return Json(nullptr);
  Json j = Json::object();
  j["slot"] = r.slot;
  j["op"] = r.op;
  return j;
}

// Knob names per class, in canonical order.
const std::vector<std::string>& knob_names(LivClass c) {
  static const std::vector<std::string> names[kClassCount] = {
      {"heads", "kv_heads", "window", "qk_norm", "rope", "short_conv", "output_gate"},  // sa
      {"heads", "feature_map", "gated", "short_conv"},                                  // linattn
      {"width", "conv_kernel"},                                                         // rec
      {"expand", "d_state", "conv_kernel", "form", "head_dim"},  // ssm (form, head_dim: mamba2 only)
      {"kernel"},                                                                       // gconv
      {"hidden"},                                                                       // swiglu
      {"experts", "top_k", "hidden"},                                                   // moe
      {"heads", "gated", "short_conv"},                                                 // deltanet
  };
  return names[class_index(c)];
}

std::optional<FeatureMap> feature_map_from_string(const std::string& s) {
  for (auto f : {FeatureMap::elu_plus_one, FeatureMap::relu, FeatureMap::identity})
    if (s == to_string(f)) return f;
  return std::nullopt;
}

}  // namespace

Json op_to_json(const OpGene& op) {
  Json j = Json::object();
  j["class"] = to_string(op.cls);
  switch (op.cls) {
    case LivClass::sa:
      j["heads"] = op.sa.heads;
      j["kv_heads"] = op.sa.kv_heads;
      j["window"] = op.sa.window;
      j["qk_norm"] = op.sa.qk_norm;
      j["rope"] = op.sa.rope;
      // New knobs appear only when on, so genomes written before them keep their JSON and hash.
      if (op.sa.short_conv != 0) j["short_conv"] = op.sa.short_conv;
      if (op.sa.output_gate) j["output_gate"] = true;
      break;
    case LivClass::linattn:
      j["heads"] = op.linattn.heads;
      j["feature_map"] = to_string(op.linattn.feature_map);
      j["gated"] = op.linattn.gated;
      if (op.linattn.short_conv != 0) j["short_conv"] = op.linattn.short_conv;
      break;
    case LivClass::rec:
      j["width"] = op.rec.width;
      j["conv_kernel"] = op.rec.conv_kernel;
      break;
    case LivClass::ssm:
      j["expand"] = op.ssm.expand;
      j["d_state"] = op.ssm.d_state;
      j["conv_kernel"] = op.ssm.conv_kernel;
      if (op.ssm.form != SsmForm::mamba1) {  // mamba1 genomes keep the JSON (and hash) they had
        j["form"] = to_string(op.ssm.form);
        j["head_dim"] = op.ssm.head_dim;
      }
      break;
    case LivClass::gconv:
      j["kernel"] = op.gconv.kernel;
      break;
    case LivClass::swiglu:
      j["hidden"] = op.swiglu.hidden;
      break;
    case LivClass::moe:
      j["experts"] = op.moe.experts;
      j["top_k"] = op.moe.top_k;
      j["hidden"] = op.moe.hidden;
      break;
    case LivClass::deltanet:
      j["heads"] = op.deltanet.heads;
      j["gated"] = op.deltanet.gated;
      j["short_conv"] = op.deltanet.short_conv;
      break;
  }
  if (is_token_mixer(op.cls)) j["differential"] = op.differential;
  j["share_featurizer"] = ref_to_json(op.featurizer);
  if (has_shareable_features(op.cls)) j["share_features"] = ref_to_json(op.features);
  return j;
}

Json to_canonical_json(const Genome& genome) {
  const Genome g = canonicalize(genome);
  Json j = Json::object();
  j["d_model"] = g.d_model;
  j["vocab"] = g.vocab;
  Json slots = Json::array();
  for (const auto& slot : g.slots) {
    if (slot.fusion == FusionKind::none && slot.ops.size() == 1) {
      slots.push_back(op_to_json(slot.ops[0]));
      continue;
    }
    Json s = Json::object();
    s["fusion"] = to_string(slot.fusion);
    s["ops"] = Json::array();
    for (const auto& op : slot.ops) s["ops"].push_back(op_to_json(op));
    slots.push_back(std::move(s));
  }
  j["slots"] = std::move(slots);
  return j;
}

std::string to_canonical_string(const Genome& g) { return to_canonical_json(g).dump(); }

std::string genome_hash(const Genome& g) { return sha256_hex(to_canonical_string(g)); }

// ---------------------------------------------------------------- reading

namespace {

class GenomeReader {
 public:
  explicit GenomeReader(std::string file) : file_(std::move(file)) {}

  Genome read(const Json& doc) {
    JsonReader root(doc, file_);
    if (!doc.is_object()) throw InputError(file_, "/", "expected a genome object, got " + describe_json(doc));
    unknown_keys(root, {"d_model", "vocab", "slots"}, "");
    Genome g;
    guard([&] { g.d_model = static_cast<int>(root.at("d_model").integer(8, 1 << 16)); });
    d_model_ = g.d_model;
    guard([&] { g.vocab = static_cast<int>(root.integer_or("vocab", 256, 2, 1 << 24)); });
    guard([&] {
      auto slots = root.at("slots");
      if (slots.size() == 0) slots.fail("a non-empty array of slots");
      for (std::size_t i = 0; i < slots.size(); ++i) {
        // A slot that cannot be read at all stands in as a plain swiglu so
        // that later slots keep their indices.
        Slot slot{FusionKind::none, {default_op(LivClass::swiglu, d_model_)}};
        guard([&] { slot = read_slot(slots.index(i)); });
        g.slots.push_back(std::move(slot));
      }
    });
    // Structural checks on what could be read; skip places already reported.
    auto within = [](const std::string& inner, const std::string& outer) {
      return outer == "/" || inner == outer || inner.rfind(outer + "/", 0) == 0;
    };
    for (auto& p : check_genome(g)) {
      bool covered = std::any_of(problems_.begin(), problems_.end(), [&](const InputProblem& q) {
        return within(p.pointer, q.pointer) || within(q.pointer, p.pointer);
      });
      if (!covered) problems_.push_back(std::move(p));
    }
    if (!problems_.empty()) {
      // Report in document order: by slot, then in the order found.
      auto slot_of = [](const InputProblem& p) {
        const std::string prefix = "/slots/";
        if (p.pointer.rfind(prefix, 0) != 0) return -1;
        return std::atoi(p.pointer.c_str() + prefix.size());
      };
      std::stable_sort(problems_.begin(), problems_.end(),
                       [&](const InputProblem& a, const InputProblem& b) { return slot_of(a) < slot_of(b); });
      throw InputError(file_, std::move(problems_));
    }
    return canonicalize(g);
  }

 private:
  std::string file_;
  int d_model_ = 128;
  std::vector<InputProblem> problems_;

  template <class F>
  void guard(F&& f) {
    try {
      f();
    } catch (const InputError& e) {
      problems_.insert(problems_.end(), e.problems().begin(), e.problems().end());
    }
  }

  void unknown_keys(const JsonReader& r, const std::vector<std::string>& known, const std::string& hint) {
    if (!r.is_object()) return;
    for (const auto& key : r.keys()) {
      if (std::find(known.begin(), known.end(), key) != known.end()) continue;
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      problems_.push_back({r.pointer() + "/" + json_pointer_escape(key),
                           "unknown key" + hint + " (expected one of " + list + ")"});
    }
  }

  Slot read_slot(const JsonReader& r) {
    Slot slot;
    r.expect_object();
    if (!r.has("ops")) {
      if (auto f = r.find("fusion")) guard([&] { f->choice({"none"}); });
      slot.ops.push_back(read_op(r, true));
      return slot;
    }
    unknown_keys(r, {"fusion", "ops"}, " in a fusion slot");
    guard([&] {
      const std::string kind = r.at("fusion").choice({"sum", "mean", "gate"});
      slot.fusion = kind == "sum" ? FusionKind::sum : kind == "mean" ? FusionKind::mean : FusionKind::gate;
    });
    auto ops = r.at("ops");
    if (ops.size() != 2) ops.fail("an array of exactly two token mixers");
    for (std::size_t i = 0; i < 2; ++i) {
      OpGene op = default_op(LivClass::gconv, d_model_);  // stands in for an op that cannot be read
      guard([&] { op = read_op(ops.index(i), false); });
      slot.ops.push_back(op);
    }
    return slot;
  }

  OpGene read_op(const JsonReader& r, bool striped) {
    r.expect_object();
    const auto cls_name = r.at("class").string();
    const auto cls = liv_class_from_string(cls_name);
    if (!cls) {
      r.at("class").fail_message("unknown class \"" + cls_name +
                                 "\" (expected one of sa, linattn, rec, ssm, gconv, swiglu, moe, deltanet)");
    }
    OpGene op = default_op(*cls, d_model_);
    std::vector<std::string> known = {"class"};
    if (striped) known.push_back("fusion");
    for (const auto& k : knob_names(*cls)) known.push_back(k);
    if (is_token_mixer(*cls)) known.push_back("differential");
    known.push_back("share_featurizer");
    if (has_shareable_features(*cls)) known.push_back("share_features");
    unknown_keys(r, known, std::string(" for class ") + to_string(*cls));

    auto int_knob = [&](const char* key, int& field) {
      if (auto v = r.find(key))
        guard([&] {
          if (!v->value().is_number_integer()) v->fail("an integer");
          field = static_cast<int>(v->integer(INT_MIN, INT_MAX));
        });
    };
    auto bool_knob = [&](const char* key, bool& field) {
      if (auto v = r.find(key)) guard([&] { field = v->boolean(); });
    };
    switch (*cls) {
      case LivClass::sa:
        int_knob("heads", op.sa.heads);
        op.sa.kv_heads = op.sa.heads;  // omitted kv_heads: multi-head attention
        int_knob("kv_heads", op.sa.kv_heads);
        int_knob("window", op.sa.window);
        bool_knob("qk_norm", op.sa.qk_norm);
        bool_knob("rope", op.sa.rope);
        int_knob("short_conv", op.sa.short_conv);
        bool_knob("output_gate", op.sa.output_gate);
        break;
      case LivClass::linattn:
        int_knob("heads", op.linattn.heads);
        if (auto v = r.find("feature_map"))
          guard([&] {
            op.linattn.feature_map =
                *feature_map_from_string(v->choice({"elu_plus_one", "relu", "identity"}));
          });
        bool_knob("gated", op.linattn.gated);
        int_knob("short_conv", op.linattn.short_conv);
        break;
      case LivClass::rec:
        int_knob("width", op.rec.width);
        int_knob("conv_kernel", op.rec.conv_kernel);
        break;
      case LivClass::ssm:
        int_knob("expand", op.ssm.expand);
        int_knob("d_state", op.ssm.d_state);
        int_knob("conv_kernel", op.ssm.conv_kernel);
        if (auto v = r.find("form"))
          guard([&] {
            op.ssm.form = v->choice({"mamba1", "mamba2"}) == "mamba2" ? SsmForm::mamba2 : SsmForm::mamba1;
          });
        int_knob("head_dim", op.ssm.head_dim);
        break;
      case LivClass::gconv:
        int_knob("kernel", op.gconv.kernel);
        break;
      case LivClass::swiglu:
        int_knob("hidden", op.swiglu.hidden);
        break;
      case LivClass::moe:
        int_knob("experts", op.moe.experts);
        int_knob("top_k", op.moe.top_k);
        int_knob("hidden", op.moe.hidden);
        break;
      case LivClass::deltanet:
        int_knob("heads", op.deltanet.heads);
        bool_knob("gated", op.deltanet.gated);
        int_knob("short_conv", op.deltanet.short_conv);
        break;
    }
    if (is_token_mixer(*cls)) bool_knob("differential", op.differential);
    if (auto v = r.find("share_featurizer")) guard([&] { op.featurizer = read_ref(*v); });
    if (has_shareable_features(*cls))
      if (auto v = r.find("share_features")) guard([&] { op.features = read_ref(*v); });
    return op;
  }

  ShareRef read_ref(const JsonReader& r) {
    if (r.value().is_null()) return {};
    if (r.value().is_number_integer()) return {static_cast<int>(r.integer(0, 4095)), 0};
    if (!r.is_object()) r.fail("null, a slot number or {\"slot\": s, \"op\": o}");
    unknown_keys(r, {"slot", "op"}, " in a sharing reference");
    ShareRef ref;
    ref.slot = static_cast<int>(r.at("slot").integer(0, 4095));
    ref.op = static_cast<int>(r.integer_or("op", 0, 0, 1));
    return ref;
  }
};

}  // namespace

Genome genome_from_json(const Json& doc, const std::string& file) { return GenomeReader(file).read(doc); }

Genome genome_from_file(const std::string& path) { return genome_from_json(parse_json_file(path), path); }

// ---------------------------------------------------------------- summary

namespace {

std::string op_summary(const Genome& g, const OpGene& op) {
  std::string s = op.differential ? "diff-" : "";
  const int d = g.d_model;
  switch (op.cls) {
    case LivClass::sa:
      s += "sa(" + std::to_string(op.sa.heads) + ",kv" + std::to_string(op.sa.kv_heads);
      if (op.sa.window > 0) s += ",w" + std::to_string(op.sa.window);
      if (op.sa.qk_norm) s += ",qkn";
      if (!op.sa.rope) s += ",nope";
      if (op.sa.short_conv > 0) s += ",c" + std::to_string(op.sa.short_conv);
      if (op.sa.output_gate) s += ",og";
      s += ")";
      break;
    case LivClass::linattn:
      s += "linattn(" + std::to_string(op.linattn.heads);
      if (op.linattn.feature_map != FeatureMap::elu_plus_one)
        s += std::string(",") + to_string(op.linattn.feature_map);
      if (op.linattn.gated) s += ",gated";
      if (op.linattn.short_conv > 0) s += ",c" + std::to_string(op.linattn.short_conv);
      s += ")";
      break;
    case LivClass::rec:
      s += "rec(" + std::to_string(op.rec.width) + ",k" + std::to_string(op.rec.conv_kernel) + ")";
      break;
    case LivClass::ssm:
      s += std::string(op.ssm.form == SsmForm::mamba2 ? "ssd" : "ssm") + "(x" +
           std::to_string(op.ssm.expand) + ",n" + std::to_string(op.ssm.d_state) + ",k" +
           std::to_string(op.ssm.conv_kernel);
      if (op.ssm.form == SsmForm::mamba2) s += ",p" + std::to_string(op.ssm.head_dim);
      s += ")";
      break;
    case LivClass::gconv:
      s += "gconv" + std::to_string(op.gconv.kernel);
      break;
    case LivClass::swiglu:
      s += "swiglu";
      if (op.swiglu.hidden != default_op(LivClass::swiglu, d).swiglu.hidden)
        s += std::to_string(op.swiglu.hidden);
      break;
    case LivClass::moe:
      s += "moe(" + std::to_string(op.moe.experts) + "x" + std::to_string(op.moe.hidden) + ",top" +
           std::to_string(op.moe.top_k) + ")";
      break;
    case LivClass::deltanet:
      s += std::string(op.deltanet.gated ? "gdn(" : "deltanet(") + std::to_string(op.deltanet.heads) + ",c" +
           std::to_string(op.deltanet.short_conv) + ")";
      break;
  }
  auto ref = [](const ShareRef& r) {
    return std::to_string(r.slot) + (r.op > 0 ? "." + std::to_string(r.op) : std::string());
  };
  if (op.featurizer.valid()) s += "=w" + ref(op.featurizer);
  if (op.features.valid()) s += "=kv" + ref(op.features);
  return s;
}

}  // namespace

std::string summary(const Genome& genome) {
  const Genome g = canonicalize(genome);
  std::string s = "d" + std::to_string(g.d_model) + " L" + std::to_string(g.slots.size()) + " |";
  for (const auto& slot : g.slots) {
    s += " ";
    if (slot.fusion == FusionKind::none && slot.ops.size() == 1) {
      s += op_summary(g, slot.ops[0]);
      continue;
    }
    s += std::string(to_string(slot.fusion)) + "[";
    for (std::size_t i = 0; i < slot.ops.size(); ++i) {
      if (i > 0) s += ",";
      s += op_summary(g, slot.ops[i]);
    }
    s += "]";
  }
  return s;
}

}  // namespace livs::genome
