// Property tests of sample, mutate, crossover and repair over many random
// genomes in several search spaces.
#include <doctest/doctest.h>

#include <map>
#include <set>
#include <string>

#include "genome/decode.hpp"
#include "genome/genome_json.hpp"
#include "genome/operators.hpp"
#include "genome/presets.hpp"

using namespace livs;
using namespace livs::genome;

namespace {

SearchSpace space_from(const std::string& text) {
  Json doc = parse_json_text(text, "space.json");
  return parse_search_space(JsonReader(doc, "space.json"));
}

// Three spaces: the default; a wide free-layout space with searchable depth
// and width, every gene on and a context that makes long windows global; and
// an alternating space with a tight parameter budget.
std::vector<SearchSpace> spaces() {
  return {
      default_search_space(),
      space_from(R"({"d_model": [64, 128], "depth": {"min": 2, "max": 12}, "layout": "free",
                     "differential": true, "fusion": {"probability": 0.3}, "sharing": {"probability": 0.3},
                     "context": 100,
                     "sa": {"window": [0, 32, 64, 128, 256], "rope": [false, true], "heads": [1, 2, 3, 4, 8],
                            "kv_heads": [1, 2, 3, 4]},
                     "linattn": {"feature_map": ["elu_plus_one", "relu", "identity"]},
                     "ssm": {"form": ["mamba1", "mamba2"], "head_dim": [8, 16, 24]},
                     "moe": {"experts": {"min": 2, "max": 8, "step": 2}, "top_k": [1, 2, 3]}})"),
      space_from(R"({"d_model": 64, "depth": [4, 6, 8], "max_params": 250000,
                     "classes": {"sa": 2, "gconv": 1, "ssm": 1, "swiglu": 3, "moe": 1},
                     "sharing": {"probability": 0.25}, "fusion": ["gate"], "ssm": {"form": ["mamba1", "mamba2"]}})"),
  };
}

std::string problems_text(const std::vector<InputProblem>& ps) {
  std::string s;
  for (const auto& p : ps) s += p.pointer + ": " + p.message + "\n";
  return s;
}

// Everything that identifies a decoded model.
std::string fingerprint(const ModelSpec& m) {
  std::string s = std::to_string(m.vocab) + "/" + std::to_string(m.d_model);
  auto weights = [&](const std::vector<WeightSpec>& ws) {
    for (const auto& w : ws) {
      s += " " + w.name + "[";
      for (auto d : w.shape) s += std::to_string(d) + ",";
      s += "]";
    }
  };
  weights(m.weights);
  for (const auto& slot : m.slots) {
    s += "|" + std::string(to_string(slot.fusion));
    weights(slot.weights);
    for (const auto& op : slot.ops) {
      s += std::string(" op ") + to_string(op.cls) + (op.differential ? "'" : "");
      s += " sa" + std::to_string(op.sa.heads) + "," + std::to_string(op.sa.kv_heads) + "," +
           std::to_string(op.sa.window) + "," + std::to_string(op.sa.qk_norm) + std::to_string(op.sa.rope);
      s +=
          " la" + std::to_string(static_cast<int>(op.linattn.feature_map)) + std::to_string(op.linattn.gated);
      s += " k" + std::to_string(op.rec.conv_kernel) + "," + std::to_string(op.ssm.conv_kernel) + "," +
           std::to_string(op.gconv.kernel) + "," + std::to_string(op.moe.top_k);
      s += " fz" + std::to_string(op.featurizer_source.slot) + "." + std::to_string(op.featurizer_source.op);
      s += " ft" + std::to_string(op.feature_source.slot) + "." + std::to_string(op.feature_source.op);
      weights(op.weights);
      for (const auto& n : op.shared_weight_names) s += " shared:" + n;
      s += " state" + std::to_string(op.state.fixed_elements) + "," +
           std::to_string(op.state.per_token_elements) + "," + std::to_string(op.state.token_limit);
    }
  }
  return s;
}

// A genome that must decode to the same model: sum/mean operands swapped
// (later references follow), knobs of other classes scrambled, featurizer
// references turned into chains through another sharer of the same source.
Genome equivalent_variant(const Genome& g, Rng& rng) {
  Genome v = g;
  for (int i = 0; i < static_cast<int>(v.slots.size()); ++i) {
    Slot& slot = v.slots[i];
    if ((slot.fusion == FusionKind::sum || slot.fusion == FusionKind::mean) && rng.bernoulli(0.5)) {
      std::swap(slot.ops[0], slot.ops[1]);
      for (auto& later : v.slots)
        for (auto& op : later.ops)
          for (ShareRef* r : {&op.featurizer, &op.features})
            if (r->slot == i) r->op = 1 - r->op;
    }
  }
  for (int i = 0; i < static_cast<int>(v.slots.size()); ++i)
    for (auto& op : v.slots[i].ops) {
      if (op.cls != LivClass::sa) op.sa.heads = static_cast<int>(rng.integer(1, 9));
      if (op.cls != LivClass::swiglu) op.swiglu.hidden = static_cast<int>(rng.integer(1, 999));
      if (op.cls != LivClass::moe) op.moe.top_k = static_cast<int>(rng.integer(1, 9));
      if (op.featurizer.valid()) {
        // another op between source and here that shares the same source
        for (int j = op.featurizer.slot + 1; j < i; ++j)
          for (int o = 0; o < static_cast<int>(v.slots[j].ops.size()); ++o)
            if (v.slots[j].ops[o].featurizer == op.featurizer && rng.bernoulli(0.5)) op.featurizer = {j, o};
      }
    }
  return v;
}

struct Stats {
  int genomes = 0;
  int fused = 0, featurizer = 0, features = 0, differential = 0;
  std::set<int> depths;
};

void check_properties(const Genome& g, const SearchSpace& space, Rng& rng, Stats& stats) {
  auto problems = validate(g, space);
  if (!problems.empty()) FAIL(summary(g) << "\n" << problems_text(problems));
  REQUIRE(g == canonicalize(g));
  const std::string text = to_canonical_string(g);
  const Genome back = genome_from_json(parse_json_text(text, "round-trip"));
  REQUIRE(back == g);
  REQUIRE(to_canonical_string(back) == text);
  const std::string hash = genome_hash(g);
  REQUIRE(hash == genome_hash(back));
  const ModelSpec spec = decode(g);
  if (space.max_params > 0) REQUIRE(spec.params_total() <= space.max_params);
  const Genome variant = equivalent_variant(g, rng);
  if (genome_hash(variant) != hash) {
    const std::string other = to_canonical_string(variant);
    std::size_t k = 0;
    while (k < text.size() && k < other.size() && text[k] == other[k]) ++k;
    FAIL(text.substr(k > 600 ? k - 600 : 0, 700) << "\n" << other.substr(k > 600 ? k - 600 : 0, 700));
  }
  REQUIRE(fingerprint(decode(variant)) == fingerprint(spec));
  ++stats.genomes;
  stats.depths.insert(static_cast<int>(g.slots.size()));
  for (const auto& slot : g.slots) {
    stats.fused += slot.fusion != FusionKind::none;
    for (const auto& op : slot.ops) {
      stats.featurizer += op.featurizer.valid();
      stats.features += op.features.valid();
      stats.differential += op.differential;
    }
  }
}

// A structurally broken genome: knobs anywhere, references anywhere, wrong
// numbers of ops, classes against the layout.
Genome garbage(Rng& rng) {
  Genome g;
  g.d_model = static_cast<int>(rng.integer(-8, 600));
  g.vocab = static_cast<int>(rng.integer(0, 1000));
  const int n = static_cast<int>(rng.integer(0, 17));
  for (int i = 0; i < n; ++i) {
    Slot slot;
    slot.fusion = static_cast<FusionKind>(rng.integer(0, 3));
    const int ops = static_cast<int>(rng.integer(0, 3));
    for (int o = 0; o < ops; ++o) {
      OpGene op;
      op.cls = kAllClasses[rng.integer(0, kClassCount - 1)];
      auto any = [&] { return static_cast<int>(rng.integer(-3, 300)); };
      op.sa = {any(), any(), any(), rng.bernoulli(0.5), rng.bernoulli(0.5)};
      op.linattn = {any(), static_cast<FeatureMap>(rng.integer(0, 2)), rng.bernoulli(0.5)};
      op.rec = {any(), any()};
      op.ssm = {any(), any(), any()};
      op.gconv = {any()};
      op.swiglu = {any() * 4};
      op.moe = {any(), any(), any()};
      op.differential = rng.bernoulli(0.5);
      if (rng.bernoulli(0.4))
        op.featurizer = {static_cast<int>(rng.integer(-1, 20)), static_cast<int>(rng.integer(0, 2))};
      if (rng.bernoulli(0.4))
        op.features = {static_cast<int>(rng.integer(-1, 20)), static_cast<int>(rng.integer(0, 2))};
      slot.ops.push_back(op);
    }
    g.slots.push_back(slot);
  }
  return g;
}

constexpr int kPerOperator = 10000;

}  // namespace

TEST_CASE("sampled genomes are valid, canonical, round-trip and hash like their equivalents") {
  const auto all = spaces();
  Rng rng(derive_seed(1, "sample"));
  Stats stats;
  for (int i = 0; i < kPerOperator; ++i) {
    const SearchSpace& s = all[i % all.size()];
    check_properties(sample(s, rng), s, rng, stats);
  }
  CHECK(stats.genomes == kPerOperator);
  // every gene actually occurs
  CHECK(stats.fused > 100);
  CHECK(stats.featurizer > 100);
  CHECK(stats.features > 100);
  CHECK(stats.differential > 100);
  CHECK(stats.depths.size() >= 10);
}

TEST_CASE("mutated genomes are valid and mutation changes them") {
  const auto all = spaces();
  Rng rng(derive_seed(1, "mutate"));
  Stats stats;
  std::map<std::string, int> kinds;
  int changed = 0;
  for (int i = 0; i < kPerOperator; ++i) {
    const SearchSpace& s = all[i % all.size()];
    Genome parent = sample(s, rng);
    // a chain of mutations walks further from the sampling distribution
    for (int step = 0; step < 3; ++step) parent = mutate(parent, s, rng);
    std::string what;
    Genome child = mutate(parent, s, rng, &what);
    kinds[what]++;
    changed += genome_hash(child) != genome_hash(parent);
    check_properties(child, s, rng, stats);
  }
  CHECK(changed > kPerOperator * 7 / 10);
  for (const char* k : {"class", "knob", "featurizer", "features", "fusion", "fusion_kind", "differential",
                        "insert", "delete", "d_model"}) {
    CAPTURE(k);
    CHECK(kinds[k] > 50);
  }
  CHECK(stats.depths.size() >= 10);
}

TEST_CASE("crossover children are valid and made of their parents' slots") {
  const auto all = spaces();
  Rng rng(derive_seed(1, "crossover"));
  Stats stats;
  int mixed = 0;
  for (int i = 0; i < kPerOperator / 2; ++i) {
    const SearchSpace& s = all[i % all.size()];
    const Genome a = sample(s, rng), b = sample(s, rng);
    auto [x, y] = crossover(a, b, s, rng);
    REQUIRE(x.slots.size() == a.slots.size());
    REQUIRE(y.slots.size() == b.slots.size());
    REQUIRE(x.d_model == a.d_model);
    bool from_b = false;
    for (std::size_t k = 0; k < x.slots.size(); ++k) {
      const auto cls = x.slots[k].ops[0].cls;
      const bool in_a =
          a.slots[k].ops[0].cls == cls || (a.slots[k].ops.size() == 2 && a.slots[k].ops[1].cls == cls);
      const bool in_b = k < b.slots.size() && (b.slots[k].ops[0].cls == cls ||
                                               (b.slots[k].ops.size() == 2 && b.slots[k].ops[1].cls == cls));
      REQUIRE((in_a || in_b));
      from_b = from_b || (!in_a && in_b);
    }
    mixed += from_b;
    check_properties(x, s, rng, stats);
    check_properties(y, s, rng, stats);
  }
  CHECK(stats.genomes == kPerOperator);
  CHECK(mixed > kPerOperator / 10);
}

TEST_CASE("repair makes any genome valid and leaves valid genomes alone") {
  const auto all = spaces();
  Rng rng(derive_seed(1, "repair"));
  Stats stats;
  for (int i = 0; i < kPerOperator; ++i) {
    const SearchSpace& s = all[i % all.size()];
    // broken genomes, and valid genomes of another space
    const Genome input = i % 2 == 0 ? garbage(rng) : sample(all[(i + 1) % all.size()], rng);
    const Genome repaired = repair(input, s);
    check_properties(repaired, s, rng, stats);
    REQUIRE(repair(repaired, s) == repaired);  // idempotent
  }
  CHECK(stats.genomes == kPerOperator);
  // presets lie in a space that allows them and repair keeps them as they are
  const SearchSpace wide =
      space_from(R"({"depth": {"min": 2, "max": 16, "step": 2}, "fusion": false, "sharing": false,
      "classes": {"sa": 1, "linattn": 1, "rec": 1, "ssm": 1, "gconv": 1, "swiglu": 1, "moe": 1, "deltanet": 1},
      "sa": {"window": [0, 128], "kv_heads": [1, 2, 4], "output_gate": [false, true]},
      "linattn": {"short_conv": [0, 4]}, "deltanet": {"short_conv": [4]}, "gconv": {"kernel": [3, 64]},
      "rec": {"expansion": 1.3333}, "swiglu": {"expansion": [2.6667, 3]},
      "ssm": {"d_state": [16, 64], "form": ["mamba1", "mamba2"], "head_dim": [64]}})");
  for (const auto& name : preset_names()) {
    CAPTURE(name);
    const Genome p = preset(name, 128, 4);
    CHECK(problems_text(validate(p, wide)) == "");
    CHECK(repair(p, wide) == p);
  }
}

TEST_CASE("operators are deterministic for a seed and differ across seeds") {
  const SearchSpace s = default_search_space();
  auto run = [&](uint64_t seed) {
    Rng rng(seed);
    std::string hashes;
    Genome g = sample(s, rng);
    for (int i = 0; i < 50; ++i) {
      g = mutate(g, s, rng);
      hashes += genome_hash(g).substr(0, 8);
      g = crossover(g, sample(s, rng), s, rng).first;
    }
    return hashes;
  };
  CHECK(run(7) == run(7));
  CHECK(run(7) != run(8));
  // Sampling is part of the reproducibility contract: a resumed search must
  // draw the same genomes on any platform.
  Rng rng(42);
  CHECK(genome_hash(sample(s, rng)) == "106e8d92eefb98c0666c1abe70a4cec6ede834eb41a62037adba1254d3c58986");
}

TEST_CASE("class weights steer sampling and the parameter budget holds") {
  const SearchSpace s = space_from(R"({"classes": {"sa": 3, "gconv": 1, "swiglu": 1}, "fusion": false})");
  Rng rng(5);
  int sa = 0, gconv = 0;
  for (int i = 0; i < 2000; ++i)
    for (const auto& slot : sample(s, rng).slots) {
      sa += slot.ops[0].cls == LivClass::sa;
      gconv += slot.ops[0].cls == LivClass::gconv;
    }
  CHECK(sa + gconv == 2000 * 4);
  CHECK(sa > 2.6 * gconv);
  CHECK(sa < 3.4 * gconv);
  // An unreachable budget is reported, never silently ignored.
  const SearchSpace tiny = space_from(R"({"max_params": 1000})");
  const Genome g = sample(tiny, rng);
  auto problems = validate(g, tiny);
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].message.find("exceed the search space's max_params 1000") != std::string::npos);
}
