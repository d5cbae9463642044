// ssm (Mamba's selective SSM block): forward against a double reference
// written from the equations, backward against its finite differences,
// decode against the parallel forward, cache size, the S4D-real and delta
// initialisation, and the striped-mamba preset training.
#include <doctest/doctest.h>

#include "tests/evaluator/scan_op_harness.hpp"

using namespace livs::evaluator;
using namespace livs::evaluator::testing;
namespace genome = livs::genome;

namespace {

genome::OpSpec ssm_spec(int d, int expand, int d_state, int kernel, bool differential = false) {
  genome::OpGene op;
  op.cls = genome::LivClass::ssm;
  op.ssm.expand = expand;
  op.ssm.d_state = d_state;
  op.ssm.conv_kernel = kernel;
  op.differential = differential;
  return decoded_op(op, d);
}

// [x; z] = in_proj; u = silu(conv(x) + b); [dt; B; C] = u x_proj^T;
// delta = softplus(dt dt_proj^T + dt_bias); h = exp(delta A) h + delta B u, A = -exp(a_log);
// y = C h + d u; out = (y * silu(z)) out_proj^T. Differential: x has 2 Di
// channels and y = y_1 - (0.8 + diff_lambda) y_2.
Reference ssm_reference(int64_t d, int64_t di, int64_t n, int64_t k, bool differential = false) {
  const int64_t r = (d + 15) / 16, ii = differential ? 2 * di : di;
  return [=](const std::vector<double>& x, const Weights& w, int batch, int seq) {
    const auto xr = ref::linear(x, w.at("in_proj"), d, ii, 0);
    const auto z = ref::linear(x, w.at("in_proj"), d, di, ii);
    auto u = ref::causal_conv(xr, w.at("conv"), &w.at("conv_bias"), batch, seq, ii, k);
    for (auto& v : u) v = ref::silu(v);
    const auto dt = ref::linear(u, w.at("x_proj"), ii, r, 0);
    const auto B = ref::linear(u, w.at("x_proj"), ii, n, r);
    const auto C = ref::linear(u, w.at("x_proj"), ii, n, r + n);
    const auto dpre = ref::linear(dt, w.at("dt_proj"), r, ii);
    const auto &a_log = w.at("a_log"), &dskip = w.at("d"), &dt_bias = w.at("dt_bias");
    std::vector<double> y(u.size());
    for (int b = 0; b < batch; ++b)
      for (int64_t c = 0; c < ii; ++c) {
        std::vector<double> h(n, 0.0);
        for (int t = 0; t < seq; ++t) {
          const int64_t row = int64_t(b) * seq + t, e = row * ii + c;
          const double delta = ref::softplus(dpre[e] + dt_bias[c]);
          double out = dskip[c] * u[e];
          for (int64_t s = 0; s < n; ++s) {
            h[s] = std::exp(-delta * std::exp(a_log[c * n + s])) * h[s] + delta * B[row * n + s] * u[e];
            out += C[row * n + s] * h[s];
          }
          y[e] = out;
        }
      }
    if (differential) y = ref::halves_difference(y, w.at("diff_lambda"));
    for (std::size_t e = 0; e < y.size(); ++e) y[e] *= ref::silu(z[e]);
    return ref::linear(y, w.at("out_proj"), di, d);
  };
}

}  // namespace

TEST_CASE("ssm forward and backward against a double reference: expand 2, d_state 4, conv 4") {
  check_against_reference(ssm_spec(8, 2, 4, 4), 8, 2, 6, ssm_reference(8, 16, 4, 4));
}

TEST_CASE("ssm forward and backward against a double reference: dt_rank 2, 48 channels, d_state 3") {
  check_against_reference(ssm_spec(24, 2, 3, 3), 24, 1, 5, ssm_reference(24, 48, 3, 3));
}

TEST_CASE("ssm forward and backward against a double reference: expand 1, conv 1, three sequences") {
  check_against_reference(ssm_spec(8, 1, 5, 1), 8, 3, 4, ssm_reference(8, 8, 5, 1));
}

TEST_CASE("ssm differential forward and backward against a double reference") {
  check_against_reference(ssm_spec(8, 1, 4, 3, true), 8, 2, 5, ssm_reference(8, 8, 4, 3, true));
}

TEST_CASE("ssm decode equals the parallel forward, the state is Di x N + (k-1) x Di") {
  check_decode_equals_forward(ssm_spec(16, 2, 8, 4), 16, 3, 9);
  check_decode_equals_forward(ssm_spec(8, 1, 16, 4), 8, 2, 2);       // fewer tokens than the kernel
  check_decode_equals_forward(ssm_spec(8, 2, 4, 4, true), 8, 2, 6);  // differential: 2 Di channels of state
}

TEST_CASE("ssm: S4D-real A, delta in [1e-3, 1e-1], D = 1 at initialisation") {
  const auto spec = ssm_spec(16, 2, 8, 4);
  CpuBackend backend;
  ParameterStore params;
  OpContext context(spec, 0, 0, 16, 2, 1e-5, params);
  auto op = make_operator(context);
  Arena arena(backend);
  float *values = nullptr, *grads = nullptr;
  arena.reserve(&values, params.count());
  arena.reserve(&grads, params.count());
  arena.allocate();
  params.bind(values, grads);
  params.initialize(backend, 11, 2);
  for (const auto& e : params.entries()) {
    const float* v = values + e.offset;
    if (e.name == "slot0.op0.a_log")
      for (int64_t i = 0; i < e.numel; ++i) CHECK(-std::exp(v[i]) == doctest::Approx(-(i % 8 + 1)));
    if (e.name == "slot0.op0.dt_bias")
      for (int64_t i = 0; i < e.numel; ++i) {
        CHECK(ref::softplus(v[i]) >= 1e-3 * (1 - 1e-5));
        CHECK(ref::softplus(v[i]) <= 1e-1 * (1 + 1e-5));
      }
    if (e.name == "slot0.op0.d")
      for (int64_t i = 0; i < e.numel; ++i) CHECK(v[i] == 1.0f);
  }
}

TEST_CASE("ssm: the same bits with one thread and with all of them") {
  check_thread_count_independent(ssm_spec(40, 2, 6, 4, true), 40, 3, 17);
}

TEST_CASE("ssm: the striped-mamba preset trains") { check_preset_trains("striped-mamba"); }
