// ssm (Mamba's selective SSM block): forward against a double reference
// written from the equations, backward against its finite differences,
// decode against the parallel forward, cache size, the S4D-real and delta
// initialisation, and the striped-mamba preset training; the selective-scan
// kernel itself (checkpoints every kScanChunk steps, backward recomputing each
// chunk) against a plain sequential double scan on lengths around the chunk.
#include <doctest/doctest.h>

#include "common/rng.hpp"
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

// The selective scan's inputs, drawn like the operator's: delta positive
// around 0.1, a_log at S4D-real plus noise.
struct ScanInputs {
  ScanShape s;
  std::vector<float> u, delta, a_log, B, C, D, dy, h0;
  explicit ScanInputs(ScanShape shape, uint64_t seed) : s(shape) {
    livs::Rng rng(seed);
    const auto draw = [&](std::size_t n, double lo, double hi) {
      std::vector<float> v(n);
      for (auto& x : v) x = float(rng.uniform(lo, hi));
      return v;
    };
    const std::size_t tokens = std::size_t(s.batch) * s.seq, x = tokens * s.channels, bc = tokens * s.state;
    u = draw(x, -1, 1);
    delta = draw(x, 0.01, 0.3);
    a_log = draw(std::size_t(s.channels) * s.state, -0.5, 0.5);
    for (std::size_t i = 0; i < a_log.size(); ++i) a_log[i] += float(std::log(double(i % s.state + 1)));
    B = draw(bc, -1, 1);
    C = draw(bc, -1, 1);
    D = draw(s.channels, 0.5, 1.5);
    dy = draw(x, -1, 1);
    h0 = draw(std::size_t(s.batch) * s.channels * s.state, -1, 1);
  }
};

// What the plain sequential scan gives, in double: y, every state h_t
// ([batch, seq, channels, state]), the last state and the gradients of sum(dy * y).
struct ScanReference {
  std::vector<double> y, h_all, last, du, ddelta, da_log, dB, dC, dD;
};

ScanReference sequential_scan(const ScanInputs& in, bool from_h0) {
  const int64_t Bn = in.s.batch, T = in.s.seq, Ch = in.s.channels, N = in.s.state;
  ScanReference r;
  r.y.assign(Bn * T * Ch, 0.0);
  r.h_all.assign(Bn * T * Ch * N, 0.0);
  r.last.assign(Bn * Ch * N, 0.0);
  r.du.assign(r.y.size(), 0.0);
  r.ddelta.assign(r.y.size(), 0.0);
  r.da_log.assign(Ch * N, 0.0);
  r.dB.assign(Bn * T * N, 0.0);
  r.dC.assign(r.dB.size(), 0.0);
  r.dD.assign(Ch, 0.0);
  for (int64_t b = 0; b < Bn; ++b)
    for (int64_t ch = 0; ch < Ch; ++ch) {
      std::vector<double> A(N), h(N), h_init(N), g(N, 0.0);
      for (int64_t n = 0; n < N; ++n) {
        A[n] = -std::exp(double(in.a_log[ch * N + n]));
        h[n] = h_init[n] = from_h0 ? in.h0[(b * Ch + ch) * N + n] : 0.0;
      }
      for (int64_t t = 0; t < T; ++t) {
        const int64_t row = b * T + t, e = row * Ch + ch;
        double out = double(in.D[ch]) * in.u[e];
        for (int64_t n = 0; n < N; ++n) {
          h[n] = std::exp(in.delta[e] * A[n]) * h[n] + double(in.delta[e]) * in.B[row * N + n] * in.u[e];
          r.h_all[e * N + n] = h[n];
          out += in.C[row * N + n] * h[n];
        }
        r.y[e] = out;
      }
      for (int64_t n = 0; n < N; ++n) r.last[(b * Ch + ch) * N + n] = h[n];
      for (int64_t t = T - 1; t >= 0; --t) {  // the adjoint: g_t = dy_t C_t + exp(delta_{t+1} A) g_{t+1}
        const int64_t row = b * T + t, e = row * Ch + ch;
        const double dyt = in.dy[e], ut = in.u[e], dl = in.delta[e];
        r.du[e] += dyt * in.D[ch];
        r.dD[ch] += dyt * ut;
        for (int64_t n = 0; n < N; ++n) {
          const double decay = std::exp(dl * A[n]);
          const double hp = t > 0 ? r.h_all[(e - Ch) * N + n] : h_init[n];
          g[n] += dyt * in.C[row * N + n];
          r.dC[row * N + n] += dyt * r.h_all[e * N + n];
          r.dB[row * N + n] += g[n] * dl * ut;
          r.ddelta[e] += g[n] * (hp * decay * A[n] + in.B[row * N + n] * ut);
          r.du[e] += g[n] * dl * in.B[row * N + n];
          r.da_log[ch * N + n] += g[n] * hp * decay * dl * A[n];
          g[n] *= decay;
        }
      }
    }
  return r;
}

// ||got - want|| / ||want||.
double relative_norm_error(const std::vector<float>& got, const std::vector<double>& want) {
  double diff = 0.0, norm = 0.0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    diff += (got[i] - want[i]) * (got[i] - want[i]);
    norm += want[i] * want[i];
  }
  return std::sqrt(diff) / std::max(std::sqrt(norm), 1e-30);
}

// Relative-norm tolerance of the fp32 kernel against the double scan.
constexpr double kScanTolerance = 1e-5;

void check_chunked_scan(ScanShape s) {
  CAPTURE(s.batch);
  CAPTURE(s.seq);
  CAPTURE(s.channels);
  CAPTURE(s.state);
  const ScanInputs in(s, 7000 + uint64_t(s.seq));
  const auto want = sequential_scan(in, false);
  CpuBackend be;
  const int64_t x = int64_t(s.batch) * s.seq * s.channels, bc = int64_t(s.batch) * s.seq * s.state;
  const int64_t chunks = scan_chunks(s.seq), N = s.state;
  std::vector<float> y(x), checkpoints(selective_scan_checkpoint_floats(s), -1.0f);
  REQUIRE(int64_t(checkpoints.size()) == int64_t(s.batch) * chunks * s.channels * N);
  be.selective_scan_forward(y.data(), checkpoints.data(), in.u.data(), in.delta.data(), in.a_log.data(),
                            in.B.data(), in.C.data(), in.D.data(), nullptr, s);
  CHECK(relative_norm_error(y, want.y) <= kScanTolerance);
  // Checkpoint c is the state entering chunk c: zero, then h at t = c * kScanChunk - 1.
  std::vector<double> want_checkpoints(checkpoints.size(), 0.0);
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t c = 0; c < chunks; ++c)
      for (int64_t i = 0; i < s.channels * N; ++i) {
        const int64_t at = (b * chunks + c) * s.channels * N + i;
        if (c == 0)
          CHECK(checkpoints[at] == 0.0f);
        else
          want_checkpoints[at] = want.h_all[(b * s.seq + c * kScanChunk - 1) * s.channels * N + i];
      }
  if (chunks > 1) CHECK(relative_norm_error(checkpoints, want_checkpoints) <= kScanTolerance);

  std::vector<float> du(x, 0.0f), ddelta(x, 0.0f), da_log(in.a_log.size(), 0.0f), dB(bc, 0.0f), dC(bc, 0.0f),
      dD(s.channels, 0.0f), partials(std::size_t(s.batch) * s.channels * (N + 1));
  be.selective_scan_backward(du.data(), ddelta.data(), da_log.data(), dB.data(), dC.data(), dD.data(),
                             partials.data(), in.dy.data(), checkpoints.data(), in.u.data(), in.delta.data(),
                             in.a_log.data(), in.B.data(), in.C.data(), in.D.data(), s);
  CHECK(relative_norm_error(du, want.du) <= kScanTolerance);
  CHECK(relative_norm_error(ddelta, want.ddelta) <= kScanTolerance);
  CHECK(relative_norm_error(da_log, want.da_log) <= kScanTolerance);
  CHECK(relative_norm_error(dB, want.dB) <= kScanTolerance);
  CHECK(relative_norm_error(dC, want.dC) <= kScanTolerance);
  CHECK(relative_norm_error(dD, want.dD) <= kScanTolerance);

  // From a given state (decode's form): the outputs and the last state written back.
  const auto from_state = sequential_scan(in, true);
  std::vector<float> state(in.h0), y_state(x);
  be.selective_scan_forward(y_state.data(), nullptr, in.u.data(), in.delta.data(), in.a_log.data(),
                            in.B.data(), in.C.data(), in.D.data(), state.data(), s);
  CHECK(relative_norm_error(y_state, from_state.y) <= kScanTolerance);
  CHECK(relative_norm_error(state, from_state.last) <= kScanTolerance);
}

}  // namespace

TEST_CASE("ssm scan: checkpointed chunks equal the plain sequential scan around the chunk length") {
  for (int seq : {1, 63, 64, 65, 200}) check_chunked_scan({2, seq, 5, 3});
  check_chunked_scan({1, 130, 33, 16});  // more channels than one CPU task block, Mamba's d_state
}

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
  const ScanHarness h(spec, 16, {1, 1}, 11, false);  // the training initialisation alone
  const auto& params = h.params;
  const float* values = h.values;
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
