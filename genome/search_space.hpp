#pragma once
// The space a search draws genomes from, read from a config's "search_space"
// section. Every knob is a non-empty set of allowed values; widths that scale
// with d_model (rec width, swiglu and moe hidden) are given as expansion
// factors and become multiples of 8 (scaled_width).
//
// JSON (every key optional; `{}` is the default space):
//   "d_model":  128 | [64, 128]                      width, fixed or a choice set
//   "depth":    8 | [4, 8] | {"min": 4, "max": 12}   number of slots
//   "vocab":    256
//   "layout":   "alternating" (token mixer, then swiglu/moe, ...) | "free"
//   "classes":  {"sa": 1, "gconv": 2, ...} sampling weights (absent = not allowed) | ["sa", "swiglu"]
//   "sa":       {"heads", "kv_heads", "window", "qk_norm", "rope", "short_conv", "output_gate"}
//   "linattn":  {"heads", "feature_map", "gated", "short_conv"}
//   "rec":      {"expansion", "conv_kernel"}        width = expansion * d_model
//   "ssm":      {"expand", "d_state", "conv_kernel", "form", "head_dim"}
//               form: "mamba1" | "mamba2" | both; head_dim (mamba2) must divide expand * d_model
//   "gconv":    {"kernel"}
//   "swiglu":   {"expansion"}                       hidden = expansion * d_model
//   "moe":      {"experts", "top_k", "expansion"}   hidden per expert = expansion * d_model
//   "deltanet": {"heads", "gated", "short_conv"}   (class weight 0 unless "classes" names it)
//   "fusion":   false | true | ["sum", "gate"] | {"kinds": [...], "probability": 0.1}
//   "sharing":  false | true | {"featurizer": true, "features": true, "probability": 0.1}
//   "differential": false | true | ["sa"] | {"classes": [...], "probability": 0.1}
//   "max_params": 0                                 total parameters (embedding included), 0 = no limit
//   "context":  0                                   when > 0, a window >= context is global attention (0)
// An integer knob is a value, an array of values or {"min", "max", "step"};
// a boolean or string knob is a value or an array of values.
#include <array>
#include <cstdint>
#include <vector>

#include "common/json_reader.hpp"
#include "genome/genome.hpp"

namespace livs::genome {

struct SaSpace {
  std::vector<int> heads{1, 2, 4, 8};
  std::vector<int> kv_heads{1, 2, 4, 8};
  std::vector<int> window{0, 64, 128};
  std::vector<bool> qk_norm{false, true};
  std::vector<bool> rope{true};
  // Off by default, so that a config written before these knobs draws the same genomes.
  std::vector<int> short_conv{0};  // 0 = off, else 2-4
  std::vector<bool> output_gate{false};
};

struct LinAttnSpace {
  std::vector<int> heads{1, 2, 4, 8};
  std::vector<FeatureMap> feature_map{FeatureMap::elu_plus_one, FeatureMap::relu};
  std::vector<bool> gated{false, true};
  std::vector<int> short_conv{0};  // 0 = off, else 2-4 (off by default, as for sa)
};

struct RecSpace {
  std::vector<double> expansion{1.0, 4.0 / 3.0, 2.0};
  std::vector<int> conv_kernel{2, 3, 4};
};

struct SsmSpace {
  std::vector<int> expand{1, 2};
  std::vector<int> d_state{4, 8, 16};
  std::vector<int> conv_kernel{2, 3, 4};
  std::vector<SsmForm> form{SsmForm::mamba1};  // add mamba2 to search Mamba-2's SSD form
  std::vector<int> head_dim{16, 32, 64};       // mamba2 only
};

struct GconvSpace {
  std::vector<int> kernel{2, 3, 4, 8, 16, 32, 64};
};

struct SwigluSpace {
  std::vector<double> expansion{2.0, 8.0 / 3.0, 3.0, 4.0};
};

struct MoeSpace {
  std::vector<int> experts{4, 8};
  std::vector<int> top_k{1, 2};
  std::vector<double> expansion{0.5, 1.0, 2.0};
};

struct DeltanetSpace {
  std::vector<int> heads{1, 2, 4, 8};
  std::vector<bool> gated{false, true};
  std::vector<int> short_conv{2, 4};  // 0 = off, else 2-4
};

enum class Layout { alternating, free };

struct SearchSpace {
  std::vector<int> d_model{128};
  std::vector<int> depth{8};
  int vocab = 256;
  Layout layout = Layout::alternating;
  // By class_index; 0 = not allowed. deltanet is off by default (a config opts in), so the
  // default space draws what it drew before the class existed.
  std::array<double, kClassCount> class_weights{1, 1, 1, 1, 1, 1, 1, 0};
  SaSpace sa;
  LinAttnSpace linattn;
  RecSpace rec;
  SsmSpace ssm;
  GconvSpace gconv;
  SwigluSpace swiglu;
  MoeSpace moe;
  DeltanetSpace deltanet;
  std::vector<FusionKind> fusion_kinds{FusionKind::sum, FusionKind::mean,
                                       FusionKind::gate};  // empty: no fusion
  double fusion_probability = 0.1;
  bool featurizer_sharing = true;
  bool feature_sharing = true;
  double sharing_probability = 0.1;
  std::vector<LivClass> differential_classes{LivClass::sa, LivClass::linattn};  // empty: never differential
  double differential_probability = 0.1;
  int64_t max_params = 0;
  int context = 0;

  bool allows(LivClass c) const { return class_weights[class_index(c)] > 0; }
  bool allows_differential(LivClass c) const;
  bool depth_searchable() const { return depth.size() > 1; }

  // Allowed values that depend on d_model (or on the context).
  std::vector<int> rec_widths(int d_model) const;
  std::vector<int> swiglu_hiddens(int d_model) const;
  std::vector<int> moe_hiddens(int d_model) const;
  std::vector<int> ssd_head_dims(int d_model, int expand) const;  // head_dim values dividing expand * d_model
  std::vector<int> windows() const;                               // normalised: windows >= context become 0
  int normalise_window(int window) const { return context > 0 && window >= context ? 0 : window; }
};

// Throws livs::InputError naming the file and JSON pointer of the first problem.
SearchSpace parse_search_space(const JsonReader& section);
// The same, with what the section leaves out taken from `base` instead of the
// defaults (for example d_model, depth, vocab and context from a config's
// model and data sections), so that the consistency checks (heads dividing
// d_model, even depth for the alternating layout, ...) see the real values.
SearchSpace parse_search_space(const JsonReader& section, const SearchSpace& base);
SearchSpace default_search_space();

// Every way the genome falls outside the space (structural problems from
// check_genome included), each with the JSON pointer of the genome's field.
std::vector<InputProblem> validate(const Genome& g, const SearchSpace& space);

}  // namespace livs::genome
