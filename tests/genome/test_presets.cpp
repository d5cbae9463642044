#include <doctest/doctest.h>

#include "genome/decode.hpp"
#include "genome/genome_json.hpp"
#include "genome/presets.hpp"

using namespace livs;
using namespace livs::genome;

TEST_CASE("every preset is valid, decodes, and survives a JSON round trip") {
  for (const auto& name : preset_names()) {
    for (int d : {64, 128, 256}) {
      for (int layers : {1, 4, 6}) {
        CAPTURE(name);
        CAPTURE(d);
        CAPTURE(layers);
        Genome g = preset(name, d, layers);
        CHECK(check_genome(g).empty());
        CHECK(g.slots.size() == static_cast<std::size_t>(2 * layers));
        ModelSpec spec = decode(g);
        CHECK(spec.slots.size() == g.slots.size());
        CHECK(spec.params_total() > spec.params_non_embedding());
        Genome back = genome_from_json(to_canonical_json(g));
        CHECK(back == g);
        CHECK(genome_hash(back) == genome_hash(g));
      }
    }
  }
}

TEST_CASE("presets have the structure their names promise") {
  CHECK(summary(preset("transformer", 128, 2)) == "d128 L4 | sa(4,kv4) swiglu sa(4,kv4) swiglu");
  CHECK(summary(preset("griffin", 128, 3)) ==
        "d128 L6 | rec(168,k4) swiglu384 rec(168,k4) swiglu384 sa(4,kv1,w128) swiglu384");
  CHECK(summary(preset("striped-mamba", 128, 4)) ==
        "d128 L8 | ssm(x2,n16,k4) swiglu ssm(x2,n16,k4) swiglu ssm(x2,n16,k4) swiglu sa(4,kv4) swiglu");
  CHECK(summary(preset("lfm2", 128, 3)) == "d128 L6 | gconv3 swiglu gconv3 swiglu sa(4,kv2) swiglu");
  CHECK(summary(preset("linear-transformer", 64, 1)) == "d64 L2 | linattn(2,c4) swiglu");
  CHECK(summary(preset("gated-deltanet-hybrid", 128, 4)) ==
        "d128 L8 | gdn(4,c4) swiglu gdn(4,c4) swiglu gdn(4,c4) swiglu sa(4,kv4,og) swiglu");
  CHECK(summary(preset("hyena-like", 128, 1)) == "d128 L2 | gconv64 swiglu");
  CHECK_THROWS_AS(preset("gpt", 128, 4), InputError);
  CHECK_THROWS_AS(preset("transformer", 100, 4), InputError);
  CHECK_THROWS_AS(preset("transformer", 128, 0), InputError);
}

TEST_CASE("transformer preset parameter count equals a hand computation") {
  // d_model 128, 4 layers: heads 4 of 32, MHA; SwiGLU hidden = multiple of 8 nearest 8/3 * 128 = 341.3 ->
  // 344.
  const int64_t D = 128, V = 256, F = 344, L = 4;
  const int64_t attention = 4 * D * D;                              // wq, wk, wv [128,128], wo [128,128]
  const int64_t mlp = 3 * F * D;                                    // w_gate, w_up [F,D], w_down [D,F]
  const int64_t norms = 2 * D;                                      // one pre-norm per slot
  const int64_t non_embedding = L * (attention + mlp + norms) + D;  // + final norm
  ModelSpec spec = decode(preset("transformer", 128, 4));
  CHECK(spec.params_non_embedding() == non_embedding);
  CHECK(spec.params_total() == non_embedding + V * D);
  CHECK(non_embedding == 4 * (65536 + 132096 + 256) + 128);
  // KV cache: 2 * kv_heads * head_dim per token per attention slot.
  CHECK(spec.decode_state_elements(1000) == 4 * 2 * 4 * 32 * 1000);
  const auto& sa = spec.slots[0].ops[0];
  REQUIRE(sa.weights.size() == 4);
  CHECK(sa.weights[0].name == "wq");
  CHECK(sa.weights[1].name == "wk");
  CHECK(sa.weights[2].name == "wv");
  CHECK(sa.weights[3].name == "wo");
  CHECK(sa.sa.head_dim == 32);
  CHECK(spec.slots[1].ops[0].weights[0].name == "w_gate");
  CHECK(spec.slots[1].ops[0].weights[0].shape == std::vector<int64_t>{F, D});
}

TEST_CASE("decode states follow the class formulas") {
  // griffin: local attention limited by its window, recurrences with a fixed state.
  ModelSpec g = decode(preset("griffin", 128, 3));
  const auto& rec = g.slots[0].ops[0].state;
  CHECK(rec.fixed_elements == 168 + 3 * 168);
  const auto& local = g.slots[4].ops[0].state;
  CHECK(local.per_token_elements == 2 * 1 * 32);
  CHECK(local.token_limit == 128);
  CHECK(local.elements(4096) == 64 * 128);
  ModelSpec m = decode(preset("striped-mamba", 128, 4));
  CHECK(m.slots[0].ops[0].state.fixed_elements == 256 * 16 + 3 * 256);
  CHECK(m.slots[0].ops[0].ssm.dt_rank == 8);
  ModelSpec l = decode(preset("lfm2", 128, 1));
  CHECK(l.slots[0].ops[0].state.fixed_elements == 2 * 128);
  ModelSpec la = decode(preset("linear-transformer", 128, 1));
  CHECK(la.slots[0].ops[0].state.fixed_elements ==
        4 * 32 * 32 + 3 * 3 * 128);  // state + q, k, v conv history
  ModelSpec gdn = decode(preset("gated-deltanet-hybrid", 128, 4));
  CHECK(gdn.slots[0].ops[0].state.fixed_elements == 4 * 32 * 32 + 3 * 3 * 128);
  CHECK(la.slots[1].ops[0].state.elements(100) == 0);
}

TEST_CASE("a preset's hash is stable across processes and platforms") {
  // Computed once from the canonical JSON; a change here means every stored
  // genome hash in existing databases would change.
  CHECK(
      to_canonical_string(preset("transformer", 128, 1)) ==
      R"({"d_model":128,"vocab":256,"slots":[{"class":"sa","heads":4,"kv_heads":4,"window":0,"qk_norm":false,)"
      R"("rope":true,"differential":false,"share_featurizer":null,"share_features":null},)"
      R"({"class":"swiglu","hidden":344,"share_featurizer":null}]})");
  CHECK(genome_hash(preset("transformer", 128, 1)) ==
        "5b75f2c2d0c334e326e0165587fe8a4f9edaad07e72b1c6a0e570b0dc7c2427a");
}
