#pragma once
// ModelSpec: the fully resolved description of a model that a genome decodes
// to and the evaluator builds. It is the only genome type the evaluator and
// proxies see. Every knob is resolved (no "0 = default" left), every weight is
// listed with its shape, sharing is explicit, and every operator states its
// decode state so cache size is analytic.
//
// Model = embedding -> slots -> final RMSNorm -> LM head (tied to the
// embedding) -> cross-entropy. Each slot is a pre-norm residual block
//   x = x + combine(op_0(rmsnorm(x)), op_1(rmsnorm(x)))
// with one operator (striped) or two token mixers (fusion).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace livs::genome {

enum class LivClass { sa, linattn, rec, ssm, gconv, swiglu, moe, deltanet };
enum class FusionKind { none, sum, mean, gate };
enum class FeatureMap { elu_plus_one, relu, identity };
// ssm: Mamba's selective scan (mamba1) or Mamba-2's state-space duality form (mamba2).
enum class SsmForm { mamba1, mamba2 };

const char* to_string(LivClass c);
const char* to_string(FusionKind f);
const char* to_string(FeatureMap f);
const char* to_string(SsmForm f);
std::optional<LivClass> liv_class_from_string(const std::string& s);
bool is_token_mixer(LivClass c);  // everything but swiglu and moe

// Knobs per class, resolved. Dimensions are in elements.
struct SaKnobs {
  int heads = 4;
  int kv_heads = 4;   // heads % kv_heads == 0 (MHA: equal, GQA: fewer, MQA: 1)
  int head_dim = 32;  // d_model / heads
  int window = 0;     // 0 = global causal, else sliding window of this many keys (including the query's own)
  bool qk_norm = false;
  bool rope = true;
  double rope_theta = 10000.0;
  int short_conv = 0;  // 0 = off, else the kernel of the depthwise causal conv on q, k, v
  bool output_gate = false;
};

struct LinAttnKnobs {
  int heads = 4;
  int head_dim = 32;  // d_k = d_v = d_model / heads
  FeatureMap feature_map = FeatureMap::elu_plus_one;
  bool gated = false;  // GLA: data-dependent per-channel decay
  int short_conv = 0;  // 0 = off, else the kernel of the depthwise causal conv on q, k, v
};

struct RecKnobs {    // Griffin recurrent block
  int width = 128;   // RG-LRU width (d_rnn)
  int conv_kernel = 4;
};

struct SsmKnobs {  // Mamba selective SSM block
  int expand = 2;
  int d_inner = 256;  // expand * d_model
  int d_state = 16;
  int conv_kernel = 4;
  int dt_rank = 8;  // ceil(d_model / 16)
  // Mamba-2 (form mamba2): d_inner = heads * head_dim, a scalar decay per
  // head, B and C shared by all heads (ngroups 1). dt_rank is unused.
  SsmForm form = SsmForm::mamba1;
  int head_dim = 32;
  int heads = 8;  // d_inner / head_dim
};

struct GconvKnobs {  // LFM2 double-gated short convolution
  int kernel = 3;
};

struct DeltanetKnobs {  // Gated DeltaNet (plain DeltaNet when not gated)
  int heads = 4;
  int head_dim = 32;   // d_k = d_v = d_model / heads
  bool gated = true;   // per-head decay alpha_t; off: alpha = 1 (DeltaNet)
  int short_conv = 4;  // 0 = off, else the kernel of the depthwise causal conv (+ SiLU) on q, k, v
};

struct SwigluKnobs {
  int hidden = 512;
};

struct MoeKnobs {
  int experts = 8;
  int top_k = 2;
  int hidden = 256;  // per expert
};

// One weight tensor of an operator. Names are local to the operator
// (see the table in docs/architecture.md, "Weights per class").
struct WeightSpec {
  std::string name;
  std::vector<int64_t> shape;
  int64_t numel() const;
};

// Where an operator takes something from another operator of an earlier slot.
struct OpRef {
  int slot = -1;  // -1: none
  int op = 0;     // position inside that slot (0, or 1 for the second mixer of a fusion slot)
  bool valid() const { return slot >= 0; }
};

// What one sequence's decode state holds, in elements:
//   fixed + per_token * min(T, token_limit or T)
// at context length T. Multiply by the inference dtype's size for bytes.
struct DecodeState {
  int64_t fixed_elements = 0;      // recurrent state, conv state, ...
  int64_t per_token_elements = 0;  // KV cache per token
  int64_t token_limit = 0;         // 0 = grows with T; else the sliding window
  int64_t elements(int64_t context) const;
};

struct OpSpec {
  LivClass cls = LivClass::swiglu;
  SaKnobs sa;
  LinAttnKnobs linattn;
  RecKnobs rec;
  SsmKnobs ssm;
  GconvKnobs gconv;
  SwigluKnobs swiglu;
  MoeKnobs moe;
  DeltanetKnobs deltanet;
  bool differential = false;  // y = y1 - lambda * y2 from two feature groups
  OpRef featurizer_source;    // reuse this op's projection weights (same class)
  OpRef feature_source;       // reuse this op's features (sa: its K and V; no cache of our own)
  std::vector<WeightSpec> weights;  // own weights; empty entries are never listed
  DecodeState state;
  // Weights this op reads but does not own (featurizer sharing): same names
  // as in the source op's `weights`.
  std::vector<std::string> shared_weight_names;
};

struct SlotSpec {
  std::vector<OpSpec> ops;  // 1 (striped) or 2 token mixers (fusion)
  FusionKind fusion = FusionKind::none;
  std::vector<WeightSpec> weights;  // the slot's own: "norm" [d_model], and "gate" for FusionKind::gate
};

struct ModelSpec {
  int vocab = 256;
  int d_model = 128;
  double norm_eps = 1e-5;
  std::vector<SlotSpec> slots;
  // Model-level weights: "embedding" [vocab, d_model] (tied LM head), "final_norm" [d_model].
  std::vector<WeightSpec> weights;

  int64_t params_total() const;             // every weight once (shared weights counted once)
  int64_t params_non_embedding() const;     // without the embedding table
  int64_t decode_state_elements(int64_t context) const;  // sum over ops
};

}  // namespace livs::genome
