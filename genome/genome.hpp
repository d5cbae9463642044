#pragma once
// The genome livsearch evolves: a STAR-style backbone of slots. Each slot is a
// pre-norm residual block holding one LIV operator (striped hybrid) or two
// token mixers whose outputs are combined (fusion hybrid). Genes hold only the
// independent choices; everything derived (head_dim, d_inner, dt_rank, weight
// shapes, decode state) is resolved by decode() into a ModelSpec.
//
// Sharing genes (STAR): an operator may reuse the weights of an operator of an
// earlier slot (featurizer sharing) or its features (feature sharing: for sa
// and linattn the K and V, so the sharer keeps no decode state of its own).
#include <string>
#include <vector>

#include "common/input_error.hpp"
#include "genome/model_spec.hpp"

namespace livs::genome {

// Reference to an operator of an earlier slot; slot -1 means "no sharing".
struct ShareRef {
  int slot = -1;
  int op = 0;  // 0, or 1 for the second mixer of a fusion slot
  bool valid() const { return slot >= 0; }
  bool operator==(const ShareRef&) const = default;
};

struct SaGene {
  int heads = 4;
  int kv_heads = 4;  // divides heads: MHA (equal), GQA, MQA (1)
  int window = 0;    // 0 = global causal attention, else sliding window
  bool qk_norm = false;
  bool rope = true;
  int short_conv = 0;        // 0 = off, else the kernel of a causal depthwise conv on q, k, v (2-4)
  bool output_gate = false;  // y = (attention * sigmoid(x W_g^T)) Wo^T (gated attention)
  bool operator==(const SaGene&) const = default;
};

struct LinAttnGene {
  int heads = 4;
  FeatureMap feature_map = FeatureMap::elu_plus_one;
  bool gated = false;  // GLA-style data-dependent decay
  int short_conv = 0;  // 0 = off, else the kernel of a causal depthwise conv on q, k, v (2-4)
  bool operator==(const LinAttnGene&) const = default;
};

struct RecGene {
  int width = 128;  // RG-LRU width
  int conv_kernel = 4;
  bool operator==(const RecGene&) const = default;
};

struct SsmGene {
  int expand = 2;  // d_inner = expand * d_model
  int d_state = 16;
  int conv_kernel = 4;
  SsmForm form = SsmForm::mamba1;  // mamba2: Mamba-2's SSD form (docs/architecture.md)
  int head_dim = 32;               // mamba2 only: d_inner / head_dim heads
  bool operator==(const SsmGene&) const = default;
};

struct GconvGene {
  int kernel = 3;
  bool operator==(const GconvGene&) const = default;
};

struct SwigluGene {
  int hidden = 344;
  bool operator==(const SwigluGene&) const = default;
};

struct MoeGene {
  int experts = 8;
  int top_k = 2;
  int hidden = 256;  // per expert
  bool operator==(const MoeGene&) const = default;
};

struct DeltanetGene {
  int heads = 4;
  bool gated = true;   // the decay gate (Gated DeltaNet); false: plain DeltaNet
  int short_conv = 4;  // 0 = off, else 2-4
  bool operator==(const DeltanetGene&) const = default;
};

// One operator. Only the knobs of `cls` mean anything; canonicalize() resets
// the others to their defaults so that equal operators compare equal.
struct OpGene {
  LivClass cls = LivClass::swiglu;
  SaGene sa;
  LinAttnGene linattn;
  RecGene rec;
  SsmGene ssm;
  GconvGene gconv;
  SwigluGene swiglu;
  MoeGene moe;
  DeltanetGene deltanet;
  bool differential = false;  // token mixers only (not deltanet)
  ShareRef featurizer;        // reuse every weight of this op (same class, identical weight shapes)
  ShareRef features;          // sa, linattn: reuse this op's K and V (and state)
  bool operator==(const OpGene&) const = default;
};

struct Slot {
  FusionKind fusion = FusionKind::none;  // none: one op; sum/mean/gate: two token mixers
  std::vector<OpGene> ops;
  bool operator==(const Slot&) const = default;
};

struct Genome {
  int d_model = 128;
  int vocab = 256;
  std::vector<Slot> slots;
  bool operator==(const Genome&) const = default;
};

// Classes in their fixed order (the order of LivClass).
inline constexpr LivClass kAllClasses[] = {LivClass::sa,  LivClass::linattn, LivClass::rec,
                                           LivClass::ssm, LivClass::gconv,   LivClass::swiglu,
                                           LivClass::moe, LivClass::deltanet};
inline constexpr int kClassCount = 8;
inline int class_index(LivClass c) { return static_cast<int>(c); }
// Classes whose features (K, V and with them the decode state) can be shared.
bool has_shareable_features(LivClass c);

// A multiple of 8 nearest to factor * d_model (at least 8): how expansion
// factors become hidden sizes and widths.
int scaled_width(double factor, int d_model);

// An operator of class `cls` with the default knobs for this width: sa and
// linattn heads d_model/32 (at least 1), rec width 4/3 d_model, swiglu hidden
// 8/3 d_model, moe hidden 2 d_model (per expert).
OpGene default_op(LivClass cls, int d_model);

// The JSON pointer of an operator: /slots/3 for a striped slot, /slots/3/ops/1 in a fusion slot.
std::string op_pointer(const Genome& g, int slot, int op);
std::string op_pointer(int slot, int op, bool fusion);

// The one representative of a genome's equivalence class (same decoded
// model): inactive knobs reset, sharing chains resolved to the op that owns
// the weights/features, feature sharing dropped where the class has none, the
// two ops of a sum/mean fusion sorted (references in later slots follow).
// Safe on invalid genomes (out-of-range references are left as they are).
Genome canonicalize(const Genome& g);

// Sharing compatibility (the rules check_genome applies). Featurizer sharing:
// same class and identical weight lists (names and shapes). Feature sharing
// (sa, linattn): same class and the same knobs that shape the features.
bool featurizer_compatible(const OpGene& source, const OpGene& op, int d_model);
bool features_compatible(const OpGene& source, const OpGene& op);

// Structural problems, independent of any search space: every knob in its
// legal range, heads dividing d_model, kv_heads dividing heads, fusion slots
// of two token mixers, sharing only towards earlier ops of a compatible class.
std::vector<InputProblem> check_genome(const Genome& g);

}  // namespace livs::genome
