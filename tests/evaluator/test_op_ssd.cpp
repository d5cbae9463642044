// ssm in Mamba-2's form (SSD): forward against a double reference written
// from the equations, backward against its finite differences, decode
// against the parallel forward, the decode state against the analytic one,
// Mamba-2's initialisation, thread-count independence, the mamba2-hybrid
// preset training; the SSD kernel itself (checkpoints every kScanChunk steps,
// backward recomputing each chunk) against a plain double recurrence on
// lengths around the chunk, from zero and from a given state.
#include <doctest/doctest.h>

#include "common/rng.hpp"
#include "tests/evaluator/scan_op_harness.hpp"

using namespace livs::evaluator;
using namespace livs::evaluator::testing;
namespace genome = livs::genome;

namespace {

genome::OpSpec ssd_spec(int d, int expand, int d_state, int kernel, int head_dim, bool differential = false) {
  genome::OpGene op;
  op.cls = genome::LivClass::ssm;
  op.ssm.form = genome::SsmForm::mamba2;
  op.ssm.expand = expand;
  op.ssm.d_state = d_state;
  op.ssm.conv_kernel = kernel;
  op.ssm.head_dim = head_dim;
  op.differential = differential;
  return decoded_op(op, d);
}

// The SSD recurrence per sequence and head, in double, from zero.
std::vector<double> ssd_scan(const std::vector<double>& xbc, const std::vector<double>& dt,
                             const std::vector<double>& a_log, const std::vector<double>& dskip, int batch,
                             int seq, int64_t heads, int64_t p, int64_t n) {
  const int64_t inner = heads * p, width = inner + 2 * n;
  std::vector<double> y(int64_t(batch) * seq * inner);
  for (int b = 0; b < batch; ++b)
    for (int64_t h = 0; h < heads; ++h) {
      std::vector<double> H(p * n, 0.0);
      const double A = -std::exp(a_log[h]);
      for (int t = 0; t < seq; ++t) {
        const int64_t row = int64_t(b) * seq + t;
        const double* x = xbc.data() + row * width + h * p;
        const double* B = xbc.data() + row * width + inner;
        const double* C = B + n;
        const double d = dt[row * heads + h], a = std::exp(d * A);
        for (int64_t i = 0; i < p; ++i) {
          double out = dskip[h] * x[i];
          for (int64_t s = 0; s < n; ++s) {
            H[i * n + s] = a * H[i * n + s] + d * x[i] * B[s];
            out += C[s] * H[i * n + s];
          }
          y[row * inner + h * p + i] = out;
        }
      }
    }
  return y;
}

// [z; xBC; dt] = in_proj; [x; B; C] = silu(conv(xBC) + b); dt = softplus(dt + dt_bias);
// y = SSD(x, dt, A, B, C) + d x; g = y * silu(z); out = (rmsnorm(g) * norm) out_proj^T.
// Differential: 2 Di scanned channels (twice the heads) and y = y_1 - (0.8 + diff_lambda) y_2.
Reference ssd_reference(int64_t d, int64_t di, int64_t n, int64_t k, int64_t p, bool differential = false) {
  const int64_t ii = differential ? 2 * di : di, heads = ii / p, width = ii + 2 * n;
  return [=](const std::vector<double>& x, const Weights& w, int batch, int seq) {
    const auto z = ref::linear(x, w.at("in_proj"), d, di, 0);
    const auto xr = ref::linear(x, w.at("in_proj"), d, width, di);
    auto dt = ref::linear(x, w.at("in_proj"), d, heads, di + width);
    auto xbc = ref::causal_conv(xr, w.at("conv"), &w.at("conv_bias"), batch, seq, width, k);
    for (auto& v : xbc) v = ref::silu(v);
    for (std::size_t e = 0; e < dt.size(); ++e) dt[e] = ref::softplus(dt[e] + w.at("dt_bias")[e % heads]);
    auto y = ssd_scan(xbc, dt, w.at("a_log"), w.at("d"), batch, seq, heads, p, n);
    if (differential) y = ref::halves_difference(y, w.at("diff_lambda"));
    for (std::size_t e = 0; e < y.size(); ++e) y[e] *= ref::silu(z[e]);
    const auto& gain = w.at("norm");
    for (int64_t row = 0; row < int64_t(batch) * seq; ++row) {
      double ms = 0.0;
      for (int64_t c = 0; c < di; ++c) ms += y[row * di + c] * y[row * di + c];
      const double rstd = 1.0 / std::sqrt(ms / double(di) + 1e-5);
      for (int64_t c = 0; c < di; ++c) y[row * di + c] *= rstd * gain[c];
    }
    return ref::linear(y, w.at("out_proj"), di, d);
  };
}

// The kernel's inputs, drawn like the operator's: dt positive around 0.1,
// A_h in [1, 16].
struct SsdInputs {
  SsdShape s;
  std::vector<float> xbc, dt, a_log, D, dy, h0;
  SsdInputs(SsdShape shape, uint64_t seed) : s(shape) {
    livs::Rng rng(seed);
    const auto draw = [&](std::size_t count, double lo, double hi) {
      std::vector<float> v(count);
      for (auto& x : v) x = float(rng.uniform(lo, hi));
      return v;
    };
    const std::size_t tokens = std::size_t(s.batch) * s.seq;
    xbc = draw(tokens * s.xbc_width(), -1, 1);
    dt = draw(tokens * s.heads, 0.01, 0.3);
    a_log = draw(s.heads, 0.0, std::log(16.0));
    D = draw(s.heads, 0.5, 1.5);
    dy = draw(tokens * s.inner(), -1, 1);
    h0 = draw(std::size_t(s.batch) * s.inner() * s.state, -1, 1);
  }
};

struct SsdReference {
  std::vector<double> y, last, dxbc, ddt, da_log, dD;
};

// The plain recurrence in double and its adjoint (gradients of sum(dy * y)).
SsdReference sequential_ssd(const SsdInputs& in, bool from_h0) {
  const int64_t Bn = in.s.batch, T = in.s.seq, Hn = in.s.heads, P = in.s.head_dim, N = in.s.state;
  const int64_t I = in.s.inner(), W = in.s.xbc_width();
  SsdReference r;
  r.y.assign(Bn * T * I, 0.0);
  r.last.assign(Bn * I * N, 0.0);
  r.dxbc.assign(Bn * T * W, 0.0);
  r.ddt.assign(Bn * T * Hn, 0.0);
  r.da_log.assign(Hn, 0.0);
  r.dD.assign(Hn, 0.0);
  for (int64_t b = 0; b < Bn; ++b)
    for (int64_t h = 0; h < Hn; ++h) {
      const double A = -std::exp(double(in.a_log[h]));
      std::vector<double> all((T + 1) * P * N, 0.0), G(P * N, 0.0);
      if (from_h0)
        for (int64_t i = 0; i < P * N; ++i) all[i] = in.h0[(b * Hn + h) * P * N + i];
      for (int64_t t = 0; t < T; ++t) {
        const int64_t row = b * T + t;
        const float* x = in.xbc.data() + row * W + h * P;
        const float* B = in.xbc.data() + row * W + I;
        const float* C = B + N;
        const double d = in.dt[row * Hn + h], a = std::exp(d * A);
        for (int64_t p = 0; p < P; ++p) {
          double out = double(in.D[h]) * x[p];
          for (int64_t n = 0; n < N; ++n) {
            const double v = a * all[t * P * N + p * N + n] + d * x[p] * B[n];
            all[(t + 1) * P * N + p * N + n] = v;
            out += C[n] * v;
          }
          r.y[row * I + h * P + p] = out;
        }
      }
      for (int64_t i = 0; i < P * N; ++i) r.last[(b * Hn + h) * P * N + i] = all[T * P * N + i];
      for (int64_t t = T - 1; t >= 0; --t) {
        const int64_t row = b * T + t;
        const float* x = in.xbc.data() + row * W + h * P;
        const float* B = in.xbc.data() + row * W + I;
        const float* C = B + N;
        const double d = in.dt[row * Hn + h], a = std::exp(d * A);
        for (int64_t p = 0; p < P; ++p) {
          const double dyp = in.dy[row * I + h * P + p];
          r.dD[h] += dyp * x[p];
          r.dxbc[row * W + h * P + p] += dyp * in.D[h];
          for (int64_t n = 0; n < N; ++n) {
            const double hp = all[t * P * N + p * N + n], ht = all[(t + 1) * P * N + p * N + n];
            double& g = G[p * N + n];
            g += dyp * C[n];
            r.dxbc[row * W + I + N + n] += dyp * ht;
            r.dxbc[row * W + I + n] += g * d * x[p];
            r.dxbc[row * W + h * P + p] += g * d * B[n];
            r.ddt[row * Hn + h] += g * (x[p] * B[n] + A * a * hp);
            r.da_log[h] += g * a * d * hp * A;
            g *= a;
          }
        }
      }
    }
  return r;
}

double relative_norm_error(const std::vector<float>& got, const std::vector<double>& want) {
  double diff = 0.0, norm = 0.0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    diff += (got[i] - want[i]) * (got[i] - want[i]);
    norm += want[i] * want[i];
  }
  return std::sqrt(diff) / std::max(std::sqrt(norm), 1e-30);
}

constexpr double kSsdTolerance = 1e-5;

void check_chunked_ssd(SsdShape s) {
  CAPTURE(s.batch);
  CAPTURE(s.seq);
  CAPTURE(s.heads);
  CAPTURE(s.head_dim);
  CAPTURE(s.state);
  const SsdInputs in(s, 9000 + uint64_t(s.seq));
  const auto want = sequential_ssd(in, false);
  CpuBackend be;
  const int64_t tokens = int64_t(s.batch) * s.seq;
  std::vector<float> y(tokens * s.inner()), checkpoints(ssd_checkpoint_floats(s), -1.0f);
  be.ssd_forward(y.data(), checkpoints.data(), in.xbc.data(), in.dt.data(), in.a_log.data(), in.D.data(),
                 nullptr, s);
  CHECK(relative_norm_error(y, want.y) <= kSsdTolerance);
  for (int64_t b = 0; b < s.batch; ++b)  // chunk 0 enters from zero
    for (int64_t i = 0; i < s.inner() * s.state; ++i)
      CHECK(checkpoints[b * scan_chunks(s.seq) * s.inner() * s.state + i] == 0.0f);

  std::vector<float> dxbc(tokens * s.xbc_width(), NAN), ddt(tokens * s.heads, NAN);  // written whole
  std::vector<float> da_log(s.heads, 0.0f), dD(s.heads, 0.0f), partials(ssd_partial_floats(s));
  be.ssd_backward(dxbc.data(), ddt.data(), da_log.data(), dD.data(), partials.data(), in.dy.data(),
                  checkpoints.data(), in.xbc.data(), in.dt.data(), in.a_log.data(), in.D.data(), s);
  CHECK(relative_norm_error(dxbc, want.dxbc) <= kSsdTolerance);
  CHECK(relative_norm_error(ddt, want.ddt) <= kSsdTolerance);
  CHECK(relative_norm_error(da_log, want.da_log) <= kSsdTolerance);
  CHECK(relative_norm_error(dD, want.dD) <= kSsdTolerance);

  const auto from_state = sequential_ssd(in, true);
  std::vector<float> state(in.h0), y_state(y.size());
  be.ssd_forward(y_state.data(), nullptr, in.xbc.data(), in.dt.data(), in.a_log.data(), in.D.data(),
                 state.data(), s);
  CHECK(relative_norm_error(y_state, from_state.y) <= kSsdTolerance);
  CHECK(relative_norm_error(state, from_state.last) <= kSsdTolerance);
}

}  // namespace

TEST_CASE("ssd scan: checkpointed chunks equal the plain recurrence around the chunk length") {
  for (int seq : {1, 63, 64, 65, 150}) check_chunked_ssd({2, seq, 3, 4, 5});
  check_chunked_ssd({1, 70, 2, 16, 16});
}

TEST_CASE("ssd scan: a shape outside the kernel's limits is an error, not a crash") {
  CpuBackend be;
  std::vector<float> buf(64, 0.0f);
  CHECK_THROWS_AS(be.ssd_forward(buf.data(), buf.data(), buf.data(), buf.data(), buf.data(), buf.data(),
                                 nullptr, {1, 1, 1, 1, 2000}),
                  std::invalid_argument);
  CHECK_THROWS_AS(be.ssd_forward(buf.data(), nullptr, buf.data(), buf.data(), buf.data(), buf.data(), nullptr,
                                 {1, 1, 1, 1, 2}),
                  std::invalid_argument);
}

TEST_CASE("ssd forward and backward against a double reference: 4 heads of 4, d_state 4, conv 4") {
  check_against_reference(ssd_spec(8, 2, 4, 4, 4), 8, 2, 6, ssd_reference(8, 16, 4, 4, 4));
}

TEST_CASE("ssd forward and backward against a double reference: one head, conv 1, three sequences") {
  check_against_reference(ssd_spec(8, 1, 3, 1, 8), 8, 3, 4, ssd_reference(8, 8, 3, 1, 8));
}

TEST_CASE("ssd forward and backward against a double reference: head_dim 2, d_state 5, conv 3") {
  check_against_reference(ssd_spec(8, 1, 5, 3, 2), 8, 1, 7, ssd_reference(8, 8, 5, 3, 2));
}

TEST_CASE("ssd differential forward and backward against a double reference") {
  check_against_reference(ssd_spec(8, 1, 4, 3, 4, true), 8, 2, 5, ssd_reference(8, 8, 4, 3, 4, true));
}

TEST_CASE("ssd decode equals the parallel forward, the state is Di x N + (k-1) x (Di + 2N)") {
  const auto spec = ssd_spec(16, 2, 8, 4, 8);
  CHECK(spec.state.fixed_elements == 32 * 8 + 3 * (32 + 2 * 8));
  check_decode_equals_forward(spec, 16, 3, 9);
  check_decode_equals_forward(ssd_spec(8, 1, 16, 4, 4), 8, 2, 2);       // fewer tokens than the kernel
  check_decode_equals_forward(ssd_spec(8, 2, 4, 4, 8, true), 8, 2, 6);  // differential: twice the heads
}

TEST_CASE("ssd: A in [1, 16] per head, dt in [1e-3, 1e-1], D = 1, norm gain 1 at initialisation") {
  const auto spec = ssd_spec(16, 2, 8, 4, 8);
  const ScanHarness h(spec, 16, {1, 1}, 11, false);
  int seen = 0;
  for (const auto& e : h.params.entries()) {
    const float* v = h.values + e.offset;
    if (e.name == "slot0.op0.a_log") {
      ++seen;
      CHECK(e.numel == 4);
      for (int64_t i = 0; i < e.numel; ++i) {
        CHECK(std::exp(v[i]) >= 1.0f - 1e-5f);
        CHECK(std::exp(v[i]) <= 16.0f + 1e-4f);
      }
    }
    if (e.name == "slot0.op0.dt_bias") {
      ++seen;
      for (int64_t i = 0; i < e.numel; ++i) {
        CHECK(ref::softplus(v[i]) >= 1e-3 * (1 - 1e-5));
        CHECK(ref::softplus(v[i]) <= 1e-1 * (1 + 1e-5));
      }
    }
    if (e.name == "slot0.op0.d" || e.name == "slot0.op0.norm") {
      ++seen;
      for (int64_t i = 0; i < e.numel; ++i) CHECK(v[i] == 1.0f);
    }
  }
  CHECK(seen == 4);
}

TEST_CASE("ssd: the same bits with one thread and with all of them") {
  check_thread_count_independent(ssd_spec(40, 2, 6, 4, 16, true), 40, 3, 17);
}

TEST_CASE("ssd: the mamba2-hybrid preset trains") { check_preset_trains("mamba2-hybrid"); }
