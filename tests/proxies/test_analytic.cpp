#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "evaluator/arena.hpp"
#include "evaluator/cpu/cpu_backend.hpp"
#include "genome/decode.hpp"
#include "genome/genome.hpp"
#include "genome/presets.hpp"
#include "proxies/analytic.hpp"
#include "proxies/latency.hpp"

using namespace livs;
using genome::FusionKind;
using genome::LivClass;

namespace {

genome::OpGene op(LivClass cls, int d_model = 32) { return genome::default_op(cls, d_model); }
genome::Slot striped(genome::OpGene g) { return {FusionKind::none, {std::move(g)}}; }

genome::ModelSpec spec_of(std::vector<genome::Slot> slots, int d_model = 32) {
  genome::Genome g;
  g.d_model = d_model;
  g.vocab = 256;
  g.slots = std::move(slots);
  return genome::decode(g);
}

}  // namespace

TEST_CASE("params and FLOPs of the transformer preset equal the hand count") {
  // d 32, one layer: sa (one head of 32, global) + swiglu (hidden F).
  const auto spec = genome::decode(genome::preset("transformer", 32, 1));
  REQUIRE(spec.slots.size() == 2);
  REQUIRE(spec.slots[0].ops[0].sa.heads == 1);
  REQUIRE(spec.slots[0].ops[0].sa.kv_heads == 1);
  REQUIRE(spec.slots[0].ops[0].sa.head_dim == 32);
  const int64_t F = spec.slots[1].ops[0].swiglu.hidden;
  const int64_t D = 32, V = 256;
  // Weights: embedding V*D, final norm D, two slot norms, wq wk wv wo, w_gate w_up w_down.
  CHECK(spec.params_total() == V * D + D + 2 * D + 4 * D * D + 3 * F * D);
  CHECK(spec.params_non_embedding() == D + 2 * D + 4 * D * D + 3 * F * D);
  // Forward at a position attending n keys: LM head 2VD, projections 2*4D^2 + 2*3FD, attention 4*H*hd*n =
  // 4*1*32*n.
  const auto forward = [&](double n) { return 2.0 * V * D + 8.0 * D * D + 6.0 * F * D + 4.0 * 1 * 32 * n; };
  CHECK(proxies::flops_per_token_infer(spec, 1000) == doctest::Approx(forward(1000)).epsilon(1e-12));
  // Training at seq_len 64: mean keys (64 + 1) / 2, times 3 (forward + backward).
  CHECK(proxies::flops_per_token_train(spec, 64) == doctest::Approx(3.0 * forward(32.5)).epsilon(1e-12));
}

TEST_CASE("FLOPs of GQA with a window, gconv and a moe, by hand") {
  auto sa = op(LivClass::sa);
  sa.sa.heads = 4;  // of 8
  sa.sa.kv_heads = 2;
  sa.sa.window = 16;
  auto moe = op(LivClass::moe);
  moe.moe = {4, 2, 24};
  const auto spec = spec_of({striped(sa), striped(op(LivClass::gconv)), striped(moe)});
  const double D = 32, V = 256;
  const double sa_proj = 2 * (32 * D + 16 * D + 16 * D + D * 32);  // wq, wk, wv (2 kv heads of 8), wo
  const double gconv_proj = 2 * (3 * D * D + D * D);               // w_in [3D, D], w_out [D, D]
  const double moe_proj = 2 * 4 * D + 2 * 2 * (3 * 24 * D);        // router + top-2 experts
  const auto forward = [&](double keys) {
    return 2 * V * D + sa_proj + gconv_proj + moe_proj + 4.0 * 4 * 8 * std::min(keys, 16.0);
  };
  CHECK(proxies::flops_per_token_infer(spec, 4096) == doctest::Approx(forward(4096)).epsilon(1e-12));
  double sum = 0;
  for (int t = 1; t <= 20; ++t) sum += forward(t);
  CHECK(proxies::flops_per_token_train(spec, 20) == doctest::Approx(3 * sum / 20).epsilon(1e-12));
  // The gconv-only model's decode FLOPs do not grow with the context.
  const auto conv = spec_of({striped(op(LivClass::gconv)), striped(op(LivClass::swiglu))});
  CHECK(proxies::flops_per_token_infer(conv, 64) == proxies::flops_per_token_infer(conv, 65536));
}

TEST_CASE("params and FLOPs of a Mamba-2 (SSD) block, by hand") {
  auto ssd = op(LivClass::ssm);  // d 32: d_inner 64, 4 heads of 16, d_state 16, conv 4
  ssd.ssm.form = genome::SsmForm::mamba2;
  ssd.ssm.head_dim = 16;
  const auto spec = spec_of({striped(ssd)});
  const double D = 32, V = 256, Di = 64, N = 16, H = 4, K = 4;
  const double in_rows = Di + (Di + 2 * N) + H;  // z, xBC, dt
  // in_proj, conv and its bias, dt_bias, a_log, d, norm, out_proj; the slot norm and the final norm.
  CHECK(spec.params_non_embedding() ==
        int64_t(in_rows * D + (Di + 2 * N) * (K + 1) + 3 * H + Di + D * Di + 2 * D));
  // Projections 2 (in_rows D + D Di), the scan 4 Di N per token at any context.
  const double forward = 2 * V * D + 2 * (in_rows * D + D * Di) + 4 * Di * N;
  CHECK(proxies::flops_per_token_infer(spec, 4096) == doctest::Approx(forward).epsilon(1e-12));
  CHECK(proxies::flops_per_token_train(spec, 64) == doctest::Approx(3 * forward).epsilon(1e-12));
}

TEST_CASE("analytic cache size equals the decode state the built model holds, for every class and sharing") {
  evaluator::CpuBackend backend;
  auto windowed = op(LivClass::sa);
  windowed.sa.window = 7;
  windowed.sa.heads = windowed.sa.kv_heads = 2;
  auto gqa = op(LivClass::sa);
  gqa.sa.heads = 4;
  gqa.sa.kv_heads = 1;
  auto sharer = gqa;
  sharer.features = {0, 0};
  auto gated = op(LivClass::linattn);
  gated.linattn.gated = true;
  auto diff = op(LivClass::linattn);
  diff.differential = true;
  auto diff_sa = op(LivClass::sa);
  diff_sa.differential = true;
  auto rec = op(LivClass::rec);
  rec.rec.width = 48;
  auto ssm = op(LivClass::ssm);
  ssm.ssm.d_state = 4;
  auto gconv = op(LivClass::gconv);
  gconv.gconv.kernel = 5;
  auto ssd = op(LivClass::ssm);
  ssd.ssm.form = genome::SsmForm::mamba2;
  ssd.ssm.head_dim = 8;
  ssd.differential = true;
  const std::vector<std::pair<std::string, genome::ModelSpec>> cases = {
      {"global sa", spec_of({striped(op(LivClass::sa))})},
      {"windowed sa", spec_of({striped(windowed)})},
      {"GQA/MQA sa", spec_of({striped(gqa)})},
      {"K/V sharing", spec_of({striped(gqa), striped(op(LivClass::swiglu)), striped(sharer)})},
      {"differential sa", spec_of({striped(diff_sa)})},
      {"linattn", spec_of({striped(op(LivClass::linattn))})},
      {"gated and differential linattn", spec_of({striped(gated), striped(diff)})},
      {"rec", spec_of({striped(rec)})},
      {"ssm", spec_of({striped(ssm)})},
      {"ssm mamba2, differential", spec_of({striped(ssd)})},
      {"gconv", spec_of({striped(gconv)})},
      {"fusion", spec_of({{FusionKind::gate, {windowed, gconv}}, {FusionKind::sum, {rec, ssm}}})},
      {"swiglu and moe", spec_of({striped(op(LivClass::swiglu)), striped(op(LivClass::moe))})},
  };
  for (const auto& [name, spec] : cases) {
    CAPTURE(name);
    for (const int64_t context : {5, 64}) {
      for (const int batch : {1, 3}) {
        proxies::LatencySettings s;
        s.batch = batch;
        s.prompt = 4;
        s.context = context;
        const auto m = proxies::measure_inference(spec, backend, s, 1, false);
        CHECK(m.state_elements == batch * spec.decode_state_elements(context));
        CHECK(m.plan_bytes > 0);
      }
    }
  }
  // The sharer holds no cache: two MQA blocks cost one block's cache.
  CHECK(cases[3].second.decode_state_elements(64) == cases[2].second.decode_state_elements(64));
  // The window caps the cache; recurrent classes do not grow with the context.
  CHECK(cases[1].second.decode_state_elements(1000) == cases[1].second.decode_state_elements(7));
  CHECK(cases[9].second.decode_state_elements(1000) == cases[9].second.decode_state_elements(5));
}

TEST_CASE("latency protocol: median and spread, timed prefill and decode") {
  const auto t = proxies::summarise({5, 1, 3, 2, 4, 100, 3, 3, 3, 3, 3});
  CHECK(t.median_ms == 3.0);
  CHECK(t.spread == doctest::Approx((5.0 - 2.0) / 3.0));
  CHECK(proxies::summarise({2.0, 4.0}).median_ms == 3.0);
  CHECK(proxies::summarise({7.0}).spread == 0.0);

  evaluator::CpuBackend backend;
  const auto spec = genome::decode(genome::preset("transformer", 32, 1));
  proxies::LatencySettings s;
  s.prompt = 16;
  s.context = 128;
  s.warmup = 1;
  s.repeats = 5;
  const auto m = proxies::measure_inference(spec, backend, s, 1, true);
  CHECK(m.prefill.median_ms > 0.0);
  CHECK(m.decode.median_ms > 0.0);
  CHECK(m.decode.spread >= 0.0);
  CHECK_FALSE(m.graphs);                    // the CPU runs its steps eagerly
  CHECK_FALSE(m.device_bytes.has_value());  // and reports no device-measured memory
  CHECK(proxies::training_plan_bytes(spec, backend, 4, 32) >
        proxies::training_plan_bytes(spec, backend, 1, 8));
  // Out of memory is found before the model is built, with the plan's size.
  backend.set_memory_limit(1 << 20);
  CHECK_THROWS_WITH_AS(proxies::measure_inference(spec, backend, s, 1, true),
                       doctest::Contains("out of memory: the plan needs"), evaluator::OutOfMemory);
}

TEST_CASE("latency: the CPU's elapsed_ms times the work it is given") {
  evaluator::CpuBackend backend;
  volatile double sink = 0.0;
  const double short_ms = backend.elapsed_ms([&] { sink = sink + 1.0; });
  const double long_ms = backend.elapsed_ms([&] {
    for (int i = 0; i < 20000000; ++i) sink = sink + 1.0;
  });
  CHECK(short_ms >= 0.0);
  CHECK(long_ms > short_ms);
  CHECK(long_ms > 1.0);  // 20 million dependent volatile additions take milliseconds
}

TEST_CASE("latency settings: defaults, context from the model, errors name the pointer") {
  const Json empty = Json::object();
  const auto s = proxies::parse_latency_settings(JsonReader(empty, "cfg.json", "/latency"), 777);
  CHECK(s.context == 777);
  CHECK(s.prompt == 512);
  CHECK(s.repeats == 10);
  const Json bad = Json{{"repeats", 0}};
  try {
    proxies::parse_latency_settings(JsonReader(bad, "cfg.json", "/latency"), 777);
    FAIL("expected an InputError");
  } catch (const InputError& e) {
    CHECK(std::string(e.what()).find("cfg.json: /latency/repeats") != std::string::npos);
  }
  const Json unknown = Json{{"repeat", 3}};
  CHECK_THROWS_AS(proxies::parse_latency_settings(JsonReader(unknown, "cfg.json", "/latency"), 777),
                  InputError);
}
