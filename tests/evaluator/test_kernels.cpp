// Every CPU kernel: forward against a plain reference, backward against
// finite differences (tests/evaluator/gradient_check.hpp states the tolerance).
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "evaluator/cpu/cpu_backend.hpp"
#include "tests/evaluator/gradient_check.hpp"

using namespace livs::evaluator;
using namespace livs::evaluator::testing;

namespace {

// y = x W^T in double.
std::vector<double> reference_matmul(const std::vector<float>& x, const std::vector<float>& w, int64_t n,
                                     int64_t in, int64_t out) {
  std::vector<double> y(n * out, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t o = 0; o < out; ++o)
      for (int64_t k = 0; k < in; ++k) y[i * out + o] += double(x[i * in + k]) * w[o * in + k];
  return y;
}

// Attention in double, straight from the definition.
std::vector<double> reference_attention(const std::vector<float>& q, const std::vector<float>& k,
                                        const std::vector<float>& v, const AttentionShape& s) {
  const int64_t hd = s.head_dim, T = s.seq, H = s.heads, KV = s.kv_heads;
  std::vector<double> out(int64_t(s.batch) * T * H * hd, 0.0);
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < T; ++i) {
        const int64_t kvh = h / (H / KV);
        std::vector<double> p;
        double mx = -1e300;
        const int64_t lo = s.window > 0 ? std::max<int64_t>(0, i - s.window + 1) : 0;
        for (int64_t j = lo; j <= i; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < hd; ++d)
            dot += double(q[((b * T + i) * H + h) * hd + d]) * k[((b * T + j) * KV + kvh) * hd + d];
          p.push_back(dot * s.scale);
          mx = std::max(mx, p.back());
        }
        double sum = 0;
        for (auto& x : p) sum += (x = std::exp(x - mx));
        for (int64_t j = lo; j <= i; ++j)
          for (int64_t d = 0; d < hd; ++d)
            out[((b * T + i) * H + h) * hd + d] += p[j - lo] / sum * v[((b * T + j) * KV + kvh) * hd + d];
      }
  return out;
}

}  // namespace

TEST_CASE("matmul matches a double reference on shapes that are not multiples of the tiles") {
  CpuBackend be;
  const int64_t n = 37, in = 300, out = 45;  // in > the packed panel depth
  auto x = random_vector(n * in, 1), w = random_vector(out * in, 2);
  std::vector<float> y(n * out);
  be.matmul({y.data(), n, out}, {x.data(), n, in}, {w.data(), out, in}, false);
  auto ref = reference_matmul(x, w, n, in, out);
  for (int64_t i = 0; i < n * out; ++i) REQUIRE(y[i] == doctest::Approx(ref[i]).epsilon(1e-4));
  be.matmul({y.data(), n, out}, {x.data(), n, in}, {w.data(), out, in},
            true);  // accumulate: twice the product
  for (int64_t i = 0; i < n * out; ++i) REQUIRE(y[i] == doctest::Approx(2 * ref[i]).epsilon(1e-4));
}

TEST_CASE("matmul backward products against finite differences") {
  CpuBackend be;
  const int64_t n = 9, in = 13, out = 35;
  auto x = random_vector(n * in, 3), w = random_vector(out * in, 4), r = random_vector(n * out, 5);
  std::vector<float> y(n * out), dx(n * in, 0.0f), dw(out * in, 0.0f);
  auto loss = [&] {
    be.matmul({y.data(), n, out}, {x.data(), n, in}, {w.data(), out, in}, false);
    return weighted_sum(y.data(), r);
  };
  be.matmul_backward_input({dx.data(), n, in}, {r.data(), n, out}, {w.data(), out, in});
  be.matmul_backward_weight({dw.data(), out, in}, {r.data(), n, out}, {x.data(), n, in});
  check_gradient("matmul dx", x.data(), dx, loss);
  check_gradient("matmul dW", w.data(), dw, loss);
}

TEST_CASE("embedding forward gathers rows and backward scatter-adds repeated tokens") {
  CpuBackend be;
  const int64_t V = 7, D = 5, N = 12;
  auto table = random_vector(V * D, 6), r = random_vector(N * D, 7);
  std::vector<int32_t> tokens = {0, 3, 3, 6, 1, 3, 0, 2, 5, 5, 4, 3};
  std::vector<float> out(N * D), dtable(V * D, 0.0f);
  be.embedding_forward({out.data(), N, D}, {table.data(), V, D}, tokens.data());
  for (int64_t n = 0; n < N; ++n)
    for (int64_t d = 0; d < D; ++d) REQUIRE(out[n * D + d] == table[tokens[n] * D + d]);
  be.embedding_backward({dtable.data(), V, D}, {r.data(), N, D}, tokens.data());
  check_gradient("embedding dtable", table.data(), dtable, [&] {
    be.embedding_forward({out.data(), N, D}, {table.data(), V, D}, tokens.data());
    return weighted_sum(out.data(), r);
  });
}

TEST_CASE("rmsnorm forward and backward") {
  CpuBackend be;
  const int64_t N = 6, D = 19;
  auto x = random_vector(N * D, 8), g = random_vector(D, 9, 0.3, 1.0), r = random_vector(N * D, 10);
  std::vector<float> y(N * D), rstd(N), dx(N * D, 0.0f), dg(D, 0.0f);
  auto loss = [&] {
    be.rmsnorm_forward({y.data(), N, D}, rstd.data(), {x.data(), N, D}, g.data(), 1e-5f);
    return weighted_sum(y.data(), r);
  };
  loss();
  for (int64_t n = 0; n < N; ++n) {
    double ms = 0;
    for (int64_t d = 0; d < D; ++d) ms += double(x[n * D + d]) * x[n * D + d];
    const double s = 1.0 / std::sqrt(ms / D + 1e-5);
    for (int64_t d = 0; d < D; ++d)
      REQUIRE(y[n * D + d] == doctest::Approx(x[n * D + d] * s * g[d]).epsilon(1e-5));
  }
  be.rmsnorm_backward({dx.data(), N, D}, dg.data(), {r.data(), N, D}, {x.data(), N, D}, g.data(), rstd.data(),
                      nullptr, /*accumulate_dx=*/true);
  check_gradient("rmsnorm dx", x.data(), dx, loss);
  check_gradient("rmsnorm dgain", g.data(), dg, loss);
  // Written (accumulate_dx false): the same values over a NaN-filled dx.
  std::vector<float> written(dx.size(), std::numeric_limits<float>::quiet_NaN()), dg2(dg.size(), 0.0f);
  be.rmsnorm_backward({written.data(), N, D}, dg2.data(), {r.data(), N, D}, {x.data(), N, D}, g.data(),
                      rstd.data(), nullptr, /*accumulate_dx=*/false);
  CHECK(written == dx);
}

TEST_CASE("rope rotates pairs by position and its backward is the inverse rotation") {
  CpuBackend be;
  const RopeShape s{2, 5, 3, 6, 4};  // position offset 4
  const int64_t half = 3, positions = 9, n = 2 * 5 * 3 * 6;
  std::vector<float> cos(positions * half), sin(positions * half);
  for (int64_t p = 0; p < positions; ++p)
    for (int64_t i = 0; i < half; ++i) {
      cos[p * half + i] = float(std::cos(p * std::pow(100.0, -double(i) / half)));
      sin[p * half + i] = float(std::sin(p * std::pow(100.0, -double(i) / half)));
    }
  auto x = random_vector(n, 11), r = random_vector(n, 12);
  std::vector<float> y(n), dx(n, 0.0f);
  auto loss = [&] {
    be.rope_forward(y.data(), x.data(), cos.data(), sin.data(), s);
    return weighted_sum(y.data(), r);
  };
  loss();
  // A rotation keeps each pair's length.
  for (int64_t row = 0; row < n / 6; ++row)
    for (int64_t i = 0; i < half; ++i) {
      const float* a = x.data() + row * 6;
      const float* b = y.data() + row * 6;
      CHECK(a[i] * a[i] + a[i + half] * a[i + half] ==
            doctest::Approx(b[i] * b[i] + b[i + half] * b[i + half]).epsilon(1e-5));
    }
  be.rope_backward(dx.data(), r.data(), cos.data(), sin.data(), s);
  check_gradient("rope din", x.data(), dx, loss);
}

TEST_CASE("attention matches a naive reference: MHA, GQA, MQA, sliding window, long rows") {
  CpuBackend be;
  for (auto [heads, kv, window, seq] :
       {std::tuple{4, 4, 0, 9}, std::tuple{4, 2, 0, 9}, std::tuple{4, 1, 3, 9}, std::tuple{2, 1, 0, 300},
        std::tuple{2, 2, 200, 300}}) {
    CAPTURE(heads);
    CAPTURE(kv);
    CAPTURE(window);
    CAPTURE(seq);
    const AttentionShape s{2, seq, heads, kv, 8, window, 0.35f};
    auto q = random_vector(2 * seq * heads * 8, 13), k = random_vector(2 * seq * kv * 8, 14),
         v = random_vector(2 * seq * kv * 8, 15);
    std::vector<float> out(q.size()), lse(2 * heads * seq);
    be.attention_forward(out.data(), lse.data(), q.data(), k.data(), v.data(), s);
    auto ref = reference_attention(q, k, v, s);
    for (std::size_t i = 0; i < out.size(); ++i)
      REQUIRE(out[i] == doctest::Approx(ref[i]).epsilon(1e-4).scale(1));
  }
}

TEST_CASE("attention backward against finite differences (GQA with a window, global MHA, long rows)") {
  CpuBackend be;
  // seq 150 crosses query blocks (32) and key chunks (128) of the blocked kernels.
  for (auto [heads, kv, window, seq] : {std::tuple{4, 2, 3, 7}, std::tuple{2, 2, 0, 7},
                                        std::tuple{2, 1, 0, 150}, std::tuple{2, 1, 100, 150}}) {
    CAPTURE(window);
    CAPTURE(seq);
    const AttentionShape s{2, seq, heads, kv, 4, window, 0.5f};
    auto q = random_vector(2 * seq * heads * 4, 16), k = random_vector(2 * seq * kv * 4, 17),
         v = random_vector(2 * seq * kv * 4, 18), r = random_vector(q.size(), 19);
    std::vector<float> out(q.size()), lse(2 * heads * seq), dq(q.size(), 0.0f), dk(k.size(), 0.0f),
        dv(v.size(), 0.0f);
    auto loss = [&] {
      be.attention_forward(out.data(), lse.data(), q.data(), k.data(), v.data(), s);
      return weighted_sum(out.data(), r);
    };
    loss();
    be.attention_backward(dq.data(), dk.data(), dv.data(), r.data(), q.data(), k.data(), v.data(), out.data(),
                          lse.data(), s, /*accumulate=*/true);
    // Written (accumulate false) over NaN-filled buffers: the same values
    // (before the finite differences move the inputs).
    const float nan = std::numeric_limits<float>::quiet_NaN();
    std::vector<float> wq(dq.size(), nan), wk(dk.size(), nan), wv(dv.size(), nan);
    be.attention_backward(wq.data(), wk.data(), wv.data(), r.data(), q.data(), k.data(), v.data(), out.data(),
                          lse.data(), s, /*accumulate=*/false);
    CHECK(wq == dq);
    CHECK(wk == dk);
    CHECK(wv == dv);
    check_gradient("attention dq", q.data(), dq, loss);
    check_gradient("attention dk", k.data(), dk, loss);
    check_gradient("attention dv", v.data(), dv, loss);
  }
}

TEST_CASE("swiglu forward and backward") {
  CpuBackend be;
  const int64_t n = 50;
  auto gate = random_vector(n, 20, 2.0), up = random_vector(n, 21), r = random_vector(n, 22);
  std::vector<float> h(n), dgate(n, 0.0f), dup(n, 0.0f);
  auto loss = [&] {
    be.swiglu_forward(h.data(), gate.data(), up.data(), n);
    return weighted_sum(h.data(), r);
  };
  loss();
  for (int64_t i = 0; i < n; ++i)
    REQUIRE(h[i] == doctest::Approx(gate[i] / (1 + std::exp(-double(gate[i]))) * up[i]).epsilon(1e-5));
  be.swiglu_backward(dgate.data(), dup.data(), r.data(), gate.data(), up.data(), n, /*accumulate=*/true);
  check_gradient("swiglu dgate", gate.data(), dgate, loss);
  check_gradient("swiglu dup", up.data(), dup, loss);
  // Writing instead of adding: the same values over whatever the outputs held.
  std::vector<float> written_gate(n, NAN), written_up(n, NAN);
  be.swiglu_backward(written_gate.data(), written_up.data(), r.data(), gate.data(), up.data(), n,
                     /*accumulate=*/false);
  CHECK(written_gate == dgate);
  CHECK(written_up == dup);
  be.swiglu_backward(dgate.data(), dup.data(), r.data(), gate.data(), up.data(), n, /*accumulate=*/true);
  for (int64_t i = 0; i < n; ++i) CHECK(dgate[i] == 2.0f * written_gate[i]);
}

TEST_CASE("cross-entropy forward and fused backward") {
  CpuBackend be;
  const int64_t N = 5, V = 11;
  auto logits = random_vector(N * V, 23, 3.0);
  std::vector<int32_t> targets = {0, 10, 3, 3, 7};
  std::vector<float> losses(N), lse(N), dlogits(N * V);
  auto loss = [&] {
    be.cross_entropy_forward(losses.data(), lse.data(), {logits.data(), N, V}, targets.data());
    double s = 0;
    for (float l : losses) s += 0.7 * l;
    return s;
  };
  loss();
  for (int64_t n = 0; n < N; ++n) {
    double sum = 0;
    for (int64_t j = 0; j < V; ++j) sum += std::exp(double(logits[n * V + j]));
    REQUIRE(losses[n] == doctest::Approx(std::log(sum) - logits[n * V + targets[n]]).epsilon(1e-5));
  }
  be.cross_entropy_backward({dlogits.data(), N, V}, {logits.data(), N, V}, lse.data(), targets.data(), 0.7f);
  check_gradient("cross-entropy dlogits", logits.data(), dlogits, loss);
}

TEST_CASE("cross-entropy: a negative target is ignored (no loss, a zero gradient row)") {
  CpuBackend be;
  const int64_t N = 4, V = 7;
  auto logits = random_vector(N * V, 29, 2.0);
  const std::vector<int32_t> targets = {3, -1, 6, -1};
  std::vector<float> losses(N, 99.0f), lse(N), dlogits(N * V, 99.0f);
  auto loss = [&] {
    be.cross_entropy_forward(losses.data(), lse.data(), {logits.data(), N, V}, targets.data());
    return 0.5 * (double(losses[0]) + losses[1] + losses[2] + losses[3]);
  };
  loss();
  CHECK(losses[1] == 0.0f);
  CHECK(losses[3] == 0.0f);
  CHECK(losses[0] > 0.0f);
  be.cross_entropy_backward({dlogits.data(), N, V}, {logits.data(), N, V}, lse.data(), targets.data(), 0.5f);
  for (int64_t j = 0; j < V; ++j) {
    CHECK(dlogits[1 * V + j] == 0.0f);
    CHECK(dlogits[3 * V + j] == 0.0f);
  }
  check_gradient("cross-entropy dlogits with ignored targets", logits.data(), dlogits, loss);
}

TEST_CASE("sum of squares and AdamW against double formulas") {
  CpuBackend be;
  const int64_t n = 100003;
  auto x = random_vector(n, 24);
  double ref = 0;
  for (float v : x) ref += double(v) * v;
  CHECK(be.sum_of_squares(x.data(), n) == doctest::Approx(ref).epsilon(1e-12));

  auto p = random_vector(10, 25), g = random_vector(10, 26), m = random_vector(10, 27, 0.1),
       v = random_vector(10, 28, 0.01, 0.05);
  auto p0 = p, m0 = m, v0 = v;
  AdamWStep s{0.01f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f, 3};
  be.adamw_update(p.data(), g.data(), m.data(), v.data(), 10, s);
  for (int i = 0; i < 10; ++i) {
    const double gi = 0.5 * g[i];
    const double mi = 0.9 * m0[i] + 0.1 * gi, vi = 0.95 * v0[i] + 0.05 * gi * gi;
    const double mh = mi / (1 - std::pow(0.9, 3)), vh = vi / (1 - std::pow(0.95, 3));
    const double pi = p0[i] * (1 - 0.01 * 0.1) - 0.01 * mh / (std::sqrt(vh) + 1e-8);
    CHECK(m[i] == doctest::Approx(mi).epsilon(1e-5));
    CHECK(v[i] == doctest::Approx(vi).epsilon(1e-5));
    CHECK(p[i] == doctest::Approx(pi).epsilon(1e-5));
  }
}

TEST_CASE("gated convolution equals the products and the convolution it fuses, bit for bit") {
  CpuBackend be;
  // A kernel longer than the sequence, kernel 1, a long kernel; decode through the state.
  for (ConvShape s :
       {ConvShape{2, 9, 5, 3}, ConvShape{1, 4, 6, 7}, ConvShape{3, 5, 4, 1}, ConvShape{2, 70, 3, 64}}) {
    CAPTURE(s.kernel);
    const int64_t C = s.channels, rows = int64_t(s.batch) * s.seq, hist = s.kernel - 1;
    const auto bcx = random_vector(rows * 3 * C, 40), w = random_vector(C * s.kernel, 41),
               dout = random_vector(rows * C, 42);
    // The parts, as gconv ran them before the fused call.
    std::vector<float> b(rows * C), c(rows * C), xt(rows * C);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t ch = 0; ch < C; ++ch) {
        b[r * C + ch] = bcx[r * 3 * C + ch];
        c[r * C + ch] = bcx[r * 3 * C + C + ch];
        xt[r * C + ch] = bcx[r * 3 * C + 2 * C + ch];
      }
    std::vector<float> bx(rows * C), conv(rows * C), cz(rows * C);
    be.multiply_forward(bx.data(), b.data(), xt.data(), rows * C);
    be.causal_conv_forward(conv.data(), bx.data(), w.data(), nullptr, nullptr, s);
    be.multiply_forward(cz.data(), c.data(), conv.data(), rows * C);
    std::vector<float> db(rows * C, 0.0f), dc(rows * C, 0.0f), dxt(rows * C, 0.0f), dbx(rows * C, 0.0f),
        dconv(rows * C, 0.0f), dw_parts(C * s.kernel, 0.5f);
    be.multiply_backward(dc.data(), dconv.data(), dout.data(), c.data(), conv.data(), rows * C, true);
    be.causal_conv_backward(dbx.data(), dw_parts.data(), nullptr, dconv.data(), bx.data(), w.data(), s, true);
    be.multiply_backward(db.data(), dxt.data(), dbx.data(), b.data(), xt.data(), rows * C, true);

    std::vector<float> out(rows * C, -7.0f), dbcx(rows * 3 * C, -7.0f), dw(C * s.kernel, 0.5f);
    be.gated_conv_forward(out.data(), bcx.data(), w.data(), nullptr, s);
    be.gated_conv_backward(dbcx.data(), dw.data(), dout.data(), bcx.data(), w.data(), s);
    CHECK(out == cz);
    CHECK(dw == dw_parts);  // accumulated onto its 0.5 start, as the parts'
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t ch = 0; ch < C; ++ch) {
        REQUIRE(dbcx[r * 3 * C + ch] == db[r * C + ch]);
        REQUIRE(dbcx[r * 3 * C + C + ch] == dc[r * C + ch]);
        REQUIRE(dbcx[r * 3 * C + 2 * C + ch] == dxt[r * C + ch]);
      }

    // Decode: one token at a time through a state of the last k-1 gated inputs.
    std::vector<float> state(std::max<int64_t>(1, hist * C), 0.0f), token(3 * C), y(C);
    for (int64_t bi = 0; bi < s.batch; ++bi) {
      std::fill(state.begin(), state.end(), 0.0f);
      for (int64_t t = 0; t < s.seq; ++t) {
        const int64_t r = bi * s.seq + t;
        std::copy_n(bcx.begin() + r * 3 * C, 3 * C, token.begin());
        be.gated_conv_forward(y.data(), token.data(), w.data(), state.data(), {1, 1, int(C), s.kernel});
        for (int64_t ch = 0; ch < C; ++ch) REQUIRE(y[ch] == cz[r * C + ch]);
      }
    }
  }
}
