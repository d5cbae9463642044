#include "genome/search_space.hpp"

#include <algorithm>
#include <numeric>
#include <string>

namespace livs::genome {

bool SearchSpace::allows_differential(LivClass c) const {
  return is_token_mixer(c) &&
         std::find(differential_classes.begin(), differential_classes.end(), c) != differential_classes.end();
}

namespace {

std::vector<int> scaled(const std::vector<double>& factors, int d_model) {
  std::vector<int> out;
  for (double f : factors) out.push_back(scaled_width(f, d_model));
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

template <class T>
void sort_unique(std::vector<T>& v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
}

// ------------------------------------------------------------ knob readers

// A value, an array of values, or {"min", "max", "step"}.
std::vector<int> int_set(const JsonReader& r, int lo, int hi) {
  std::vector<int> out;
  if (r.value().is_array()) {
    if (r.size() == 0) r.fail("a non-empty array of integers");
    for (std::size_t i = 0; i < r.size(); ++i) out.push_back(static_cast<int>(r.index(i).integer(lo, hi)));
  } else if (r.is_object()) {
    r.expect_keys({"min", "max", "step"});
    const int64_t min = r.at("min").integer(lo, hi);
    const int64_t max = r.at("max").integer(min, hi);
    const int64_t step = r.integer_or("step", 1, 1, hi);
    if ((max - min) / step > 100000) r.fail_message("a range of more than 100000 values; use a larger step");
    for (int64_t v = min; v <= max; v += step) out.push_back(static_cast<int>(v));
  } else if (r.value().is_number_integer()) {
    out.push_back(static_cast<int>(r.integer(lo, hi)));
  } else {
    r.fail("an integer, an array of integers or {\"min\", \"max\", \"step\"}");
  }
  sort_unique(out);
  return out;
}

// Short-convolution kernels: 0 (off) or 2 to 4.
std::vector<int> short_conv_set(const JsonReader& r) {
  std::vector<int> out = int_set(r, 0, 4);
  if (std::find(out.begin(), out.end(), 1) != out.end())
    r.fail_message("expected 0 (off) or kernels in [2, 4], got 1");
  return out;
}

std::vector<double> number_set(const JsonReader& r, double lo, double hi) {
  std::vector<double> out;
  if (r.value().is_array()) {
    if (r.size() == 0) r.fail("a non-empty array of numbers");
    for (std::size_t i = 0; i < r.size(); ++i) out.push_back(r.index(i).number(lo, hi));
  } else {
    out.push_back(r.number(lo, hi));
  }
  sort_unique(out);
  return out;
}

std::vector<bool> bool_set(const JsonReader& r) {
  std::vector<bool> out;
  if (r.value().is_array()) {
    if (r.size() == 0) r.fail("a non-empty array of booleans");
    for (std::size_t i = 0; i < r.size(); ++i) out.push_back(r.index(i).boolean());
  } else {
    out.push_back(r.boolean());
  }
  sort_unique(out);
  return out;
}

std::vector<std::string> string_set(const JsonReader& r, const std::vector<std::string>& options) {
  std::vector<std::string> out;
  if (r.value().is_array()) {
    if (r.size() == 0) r.fail("a non-empty array");
    for (std::size_t i = 0; i < r.size(); ++i) out.push_back(r.index(i).choice(options));
  } else {
    out.push_back(r.choice(options));
  }
  return out;
}

const std::vector<std::string>& class_names() {
  static const std::vector<std::string> names = {"sa",    "linattn", "rec", "ssm",
                                                 "gconv", "swiglu",  "moe", "deltanet"};
  return names;
}

std::string join(const std::vector<int>& v) {
  std::string s;
  for (int x : v) s += (s.empty() ? "" : ", ") + std::to_string(x);
  return s;
}

// ------------------------------------------------------------ sections

template <class F>
void with(const JsonReader& r, std::string_view key, F&& f) {
  if (auto v = r.find(key)) f(*v);
}

void read_classes(const JsonReader& r, SearchSpace& s) {
  s.class_weights.fill(0);
  if (r.value().is_array()) {
    for (const auto& name : string_set(r, class_names()))
      s.class_weights[class_index(*liv_class_from_string(name))] = 1;
  } else {
    r.expect_object();
    std::vector<std::string_view> known(class_names().begin(), class_names().end());
    for (const auto& key : r.keys()) {
      auto c = liv_class_from_string(key);
      if (!c) {
        r.at(key).fail_message(
            "unknown class (expected one of sa, linattn, rec, ssm, gconv, swiglu, moe, deltanet)");
      }
      s.class_weights[class_index(*c)] = r.at(key).number(0, 1e6);
    }
  }
  if (std::all_of(s.class_weights.begin(), s.class_weights.end(), [](double w) { return w <= 0; }))
    r.fail_message("no class has a positive weight");
}

void read_fusion(const JsonReader& r, SearchSpace& s) {
  const std::vector<std::string> kinds = {"sum", "mean", "gate"};
  auto set_kinds = [&](const JsonReader& k) {
    s.fusion_kinds.clear();
    for (const auto& name : string_set(k, kinds))
      s.fusion_kinds.push_back(name == "sum"    ? FusionKind::sum
                               : name == "mean" ? FusionKind::mean
                                                : FusionKind::gate);
    sort_unique(s.fusion_kinds);
  };
  if (r.value().is_boolean()) {
    if (!r.boolean()) s.fusion_kinds.clear();
  } else if (r.is_object()) {
    r.expect_keys({"kinds", "probability"});
    with(r, "kinds", set_kinds);
    s.fusion_probability = r.number_or("probability", s.fusion_probability, 0, 1);
  } else if (r.value().is_array() || r.value().is_string()) {
    set_kinds(r);
  } else {
    r.fail("true, false, a list of fusion kinds or {\"kinds\", \"probability\"}");
  }
}

void read_sharing(const JsonReader& r, SearchSpace& s) {
  if (r.value().is_boolean()) {
    s.featurizer_sharing = s.feature_sharing = r.boolean();
  } else if (r.is_object()) {
    r.expect_keys({"featurizer", "features", "probability"});
    s.featurizer_sharing = r.boolean_or("featurizer", s.featurizer_sharing);
    s.feature_sharing = r.boolean_or("features", s.feature_sharing);
    s.sharing_probability = r.number_or("probability", s.sharing_probability, 0, 1);
  } else {
    r.fail("true, false or {\"featurizer\", \"features\", \"probability\"}");
  }
}

void read_differential(const JsonReader& r, SearchSpace& s) {
  auto set_classes = [&](const JsonReader& k) {
    s.differential_classes.clear();
    for (const auto& name : string_set(k, {"sa", "linattn", "rec", "ssm", "gconv"}))
      s.differential_classes.push_back(*liv_class_from_string(name));
    sort_unique(s.differential_classes);
  };
  auto all_mixers = [&] {
    s.differential_classes = {LivClass::sa, LivClass::linattn, LivClass::rec, LivClass::ssm, LivClass::gconv};
  };
  if (r.value().is_boolean()) {
    if (r.boolean())
      all_mixers();
    else
      s.differential_classes.clear();
  } else if (r.is_object()) {
    r.expect_keys({"classes", "probability"});
    with(r, "classes", set_classes);
    s.differential_probability = r.number_or("probability", s.differential_probability, 0, 1);
  } else if (r.value().is_array() || r.value().is_string()) {
    set_classes(r);
  } else {
    r.fail("true, false, a list of token-mixer classes or {\"classes\", \"probability\"}");
  }
}

void read_knobs(const JsonReader& r, SearchSpace& s) {
  with(r, "sa", [&](const JsonReader& k) {
    k.expect_keys({"heads", "kv_heads", "window", "qk_norm", "rope", "short_conv", "output_gate"});
    with(k, "heads", [&](const JsonReader& v) { s.sa.heads = int_set(v, 1, 1024); });
    with(k, "kv_heads", [&](const JsonReader& v) { s.sa.kv_heads = int_set(v, 1, 1024); });
    with(k, "window", [&](const JsonReader& v) { s.sa.window = int_set(v, 0, 1 << 24); });
    with(k, "qk_norm", [&](const JsonReader& v) { s.sa.qk_norm = bool_set(v); });
    with(k, "rope", [&](const JsonReader& v) { s.sa.rope = bool_set(v); });
    with(k, "short_conv", [&](const JsonReader& v) { s.sa.short_conv = short_conv_set(v); });
    with(k, "output_gate", [&](const JsonReader& v) { s.sa.output_gate = bool_set(v); });
  });
  with(r, "linattn", [&](const JsonReader& k) {
    k.expect_keys({"heads", "feature_map", "gated", "short_conv"});
    with(k, "heads", [&](const JsonReader& v) { s.linattn.heads = int_set(v, 1, 1024); });
    with(k, "feature_map", [&](const JsonReader& v) {
      s.linattn.feature_map.clear();
      for (const auto& name : string_set(v, {"elu_plus_one", "relu", "identity"}))
        s.linattn.feature_map.push_back(name == "elu_plus_one" ? FeatureMap::elu_plus_one
                                        : name == "relu"       ? FeatureMap::relu
                                                               : FeatureMap::identity);
      sort_unique(s.linattn.feature_map);
    });
    with(k, "gated", [&](const JsonReader& v) { s.linattn.gated = bool_set(v); });
    with(k, "short_conv", [&](const JsonReader& v) { s.linattn.short_conv = short_conv_set(v); });
  });
  with(r, "rec", [&](const JsonReader& k) {
    k.expect_keys({"expansion", "conv_kernel"});
    with(k, "expansion", [&](const JsonReader& v) { s.rec.expansion = number_set(v, 0.0625, 64); });
    with(k, "conv_kernel", [&](const JsonReader& v) { s.rec.conv_kernel = int_set(v, 1, 64); });
  });
  with(r, "ssm", [&](const JsonReader& k) {
    k.expect_keys({"expand", "d_state", "conv_kernel", "form", "head_dim"});
    with(k, "expand", [&](const JsonReader& v) { s.ssm.expand = int_set(v, 1, 16); });
    with(k, "d_state", [&](const JsonReader& v) { s.ssm.d_state = int_set(v, 1, 1024); });
    with(k, "conv_kernel", [&](const JsonReader& v) { s.ssm.conv_kernel = int_set(v, 1, 64); });
    with(k, "form", [&](const JsonReader& v) {
      s.ssm.form.clear();
      for (const auto& name : string_set(v, {"mamba1", "mamba2"}))
        s.ssm.form.push_back(name == "mamba2" ? SsmForm::mamba2 : SsmForm::mamba1);
      sort_unique(s.ssm.form);
    });
    with(k, "head_dim", [&](const JsonReader& v) { s.ssm.head_dim = int_set(v, 1, 1024); });
  });
  with(r, "gconv", [&](const JsonReader& k) {
    k.expect_keys({"kernel"});
    with(k, "kernel", [&](const JsonReader& v) { s.gconv.kernel = int_set(v, 1, 4096); });
  });
  with(r, "swiglu", [&](const JsonReader& k) {
    k.expect_keys({"expansion"});
    with(k, "expansion", [&](const JsonReader& v) { s.swiglu.expansion = number_set(v, 0.0625, 64); });
  });
  with(r, "moe", [&](const JsonReader& k) {
    k.expect_keys({"experts", "top_k", "expansion"});
    with(k, "experts", [&](const JsonReader& v) { s.moe.experts = int_set(v, 2, 1024); });
    with(k, "top_k", [&](const JsonReader& v) { s.moe.top_k = int_set(v, 1, 1024); });
    with(k, "expansion", [&](const JsonReader& v) { s.moe.expansion = number_set(v, 0.0625, 64); });
  });
  with(r, "deltanet", [&](const JsonReader& k) {
    k.expect_keys({"heads", "gated", "short_conv"});
    with(k, "heads", [&](const JsonReader& v) { s.deltanet.heads = int_set(v, 1, 1024); });
    with(k, "gated", [&](const JsonReader& v) { s.deltanet.gated = bool_set(v); });
    with(k, "short_conv", [&](const JsonReader& v) { s.deltanet.short_conv = short_conv_set(v); });
  });
}

// Combinations that no genome could satisfy are configuration errors.
void check_consistency(const JsonReader& r, const SearchSpace& s) {
  auto at = [&](std::string_view a, std::string_view b = {}) {
    JsonReader x = r.find(a) ? r.at(a) : r;
    if (!b.empty() && x.is_object() && x.find(b)) x = x.at(b);
    return x;
  };
  const bool mixers = std::any_of(std::begin(kAllClasses), std::end(kAllClasses),
                                  [&](LivClass c) { return is_token_mixer(c) && s.allows(c); });
  const bool channel = s.allows(LivClass::swiglu) || s.allows(LivClass::moe);
  if (s.layout == Layout::alternating) {
    if (!mixers || !channel)
      at("classes").fail_message(
          "the alternating layout needs at least one token mixer and one of swiglu, moe with a positive "
          "weight");
    for (int d : s.depth)
      if (d % 2 != 0)
        at("depth").fail_message("the alternating layout needs an even depth, got " + std::to_string(d));
  }
  for (int d : s.d_model) {
    const std::string dm = " divides d_model " + std::to_string(d);
    if (s.allows(LivClass::sa)) {
      bool any = false;
      for (int h : s.sa.heads) {
        if (d % h != 0) continue;
        const bool even = (d / h) % 2 == 0;
        if (!even && std::find(s.sa.rope.begin(), s.sa.rope.end(), false) == s.sa.rope.end()) continue;
        any = true;
        if (std::none_of(s.sa.kv_heads.begin(), s.sa.kv_heads.end(), [&](int kv) { return h % kv == 0; }))
          at("sa", "kv_heads").fail_message("no value divides heads " + std::to_string(h));
      }
      if (!any) at("sa", "heads").fail_message("no value (with an even head_dim when rope is required)" + dm);
    }
    if (s.allows(LivClass::linattn) &&
        std::none_of(s.linattn.heads.begin(), s.linattn.heads.end(), [&](int h) { return d % h == 0; }))
      at("linattn", "heads").fail_message("no value" + dm);
    if (s.allows(LivClass::deltanet) &&
        std::none_of(s.deltanet.heads.begin(), s.deltanet.heads.end(), [&](int h) { return d % h == 0; }))
      at("deltanet", "heads").fail_message("no value" + dm);
  }
  const bool mamba2 = std::find(s.ssm.form.begin(), s.ssm.form.end(), SsmForm::mamba2) != s.ssm.form.end();
  if (s.allows(LivClass::ssm) && mamba2 && s.ssm.form.size() == 1)
    for (int d : s.d_model)
      if (std::none_of(s.ssm.expand.begin(), s.ssm.expand.end(),
                       [&](int e) { return !s.ssd_head_dims(d, e).empty(); }))
        at("ssm", "head_dim")
            .fail_message("no value divides d_inner = expand * d_model for d_model " + std::to_string(d));
  if (s.allows(LivClass::moe) && s.moe.top_k.front() > s.moe.experts.front())
    at("moe", "top_k")
        .fail_message("the smallest top_k " + std::to_string(s.moe.top_k.front()) +
                      " exceeds the smallest number of experts " + std::to_string(s.moe.experts.front()));
}

}  // namespace

std::vector<int> SearchSpace::rec_widths(int d) const { return scaled(rec.expansion, d); }
std::vector<int> SearchSpace::swiglu_hiddens(int d) const { return scaled(swiglu.expansion, d); }
std::vector<int> SearchSpace::moe_hiddens(int d) const { return scaled(moe.expansion, d); }
std::vector<int> SearchSpace::ssd_head_dims(int d, int expand) const {
  std::vector<int> out;
  for (int p : ssm.head_dim)
    if (p > 0 && (int64_t(expand) * d) % p == 0) out.push_back(p);
  return out;
}

std::vector<int> SearchSpace::windows() const {
  std::vector<int> out;
  for (int w : sa.window) out.push_back(normalise_window(w));
  sort_unique(out);
  return out;
}

SearchSpace default_search_space() { return SearchSpace{}; }

SearchSpace parse_search_space(const JsonReader& r) { return parse_search_space(r, default_search_space()); }

SearchSpace parse_search_space(const JsonReader& r, const SearchSpace& base) {
  SearchSpace s = base;
  r.expect_keys({"d_model", "depth", "vocab", "layout", "classes", "sa", "linattn", "rec", "ssm", "gconv",
                 "swiglu", "moe", "deltanet", "fusion", "sharing", "differential", "max_params", "context"});
  with(r, "d_model", [&](const JsonReader& v) {
    s.d_model = int_set(v, 8, 1 << 16);
    for (int d : s.d_model)
      if (d % 8 != 0) v.fail_message("expected multiples of 8, got " + join(s.d_model));
  });
  with(r, "depth", [&](const JsonReader& v) { s.depth = int_set(v, 1, 4096); });
  s.vocab = static_cast<int>(r.integer_or("vocab", s.vocab, 2, 1 << 24));
  with(r, "layout", [&](const JsonReader& v) {
    s.layout = v.choice({"alternating", "free"}) == "free" ? Layout::free : Layout::alternating;
  });
  with(r, "classes", [&](const JsonReader& v) { read_classes(v, s); });
  read_knobs(r, s);
  with(r, "fusion", [&](const JsonReader& v) { read_fusion(v, s); });
  with(r, "sharing", [&](const JsonReader& v) { read_sharing(v, s); });
  with(r, "differential", [&](const JsonReader& v) { read_differential(v, s); });
  with(r, "max_params", [&](const JsonReader& v) { s.max_params = static_cast<int64_t>(v.number(0, 1e15)); });
  s.context = static_cast<int>(r.integer_or("context", s.context, 0, 1 << 24));
  check_consistency(r, s);
  return s;
}

}  // namespace livs::genome
