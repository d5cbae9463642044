// Every kernel of the CUDA backend against the CPU backend, on several shapes
// (including sizes that are not multiples of the tiles, windows and GQA).
// Tolerances: gpu_test_support.hpp.
#include <doctest/doctest.h>

#include <cmath>

#include "tests/gpu/gpu_test_support.hpp"

using namespace livs::evaluator;
using namespace livs::evaluator::gpu_testing;

namespace {

using Array = DeviceArray<float>;

// A gradient buffer that kernels accumulate into: the same random start on both backends.
std::unique_ptr<Array> accumulator(Backend& be, int64_t count, uint64_t seed) {
  return std::make_unique<Array>(be, random_floats(std::size_t(count), seed, 0.5));
}

}  // namespace

TEST_CASE("fill, add and copy") {
  const int64_t n = 12345;
  const auto a = random_floats(n, 1), b = random_floats(n, 2);
  compare_backends(
      "elementwise",
      [&](Backend& be) {
        Array da(be, a), db(be, b);
        auto sum = poisoned(be, n), copied = poisoned(be, n), filled = poisoned(be, n);
        be.add(sum->data(), da.data(), db.data(), n);
        be.add(da.data(), da.data(), db.data(), n);  // aliasing the output
        be.copy(copied->data(), db.data(), n);
        be.fill(filled->data(), n - 1, 2.5f);
        auto f = filled->download();
        f.back() = 0.0f;  // the one element fill was not asked to write stays NaN
        return Outputs{{"add", sum->download()},
                       {"add in place", da.download()},
                       {"copy", copied->download()},
                       {"fill", f}};
      },
      0.0);
}

TEST_CASE("embedding forward and backward, repeated tokens") {
  struct Shape {
    int64_t vocab, d, rows;
  };
  for (Shape s : {Shape{50, 70, 300}, Shape{300, 33, 1000}, Shape{1000, 130, 7}}) {
    CAPTURE(s.vocab);
    const auto table = random_floats(s.vocab * s.d, 3), dout = random_floats(s.rows * s.d, 4);
    const auto tokens = random_tokens(s.rows, int(s.vocab), 5);
    compare_backends(
        "embedding",
        [&](Backend& be) {
          Array dtable_in(be, table), ddout(be, dout);
          DeviceArray<int32_t> dtokens(be, tokens);
          auto out = poisoned(be, s.rows * s.d);
          auto dtable = accumulator(be, s.vocab * s.d, 6);
          be.embedding_forward({out->data(), s.rows, s.d}, {dtable_in.data(), s.vocab, s.d}, dtokens.data());
          be.embedding_backward({dtable->data(), s.vocab, s.d}, {ddout.data(), s.rows, s.d}, dtokens.data());
          return Outputs{{"forward", out->download()}, {"backward", dtable->download()}};
        },
        kFp32Tolerance);
  }
}

TEST_CASE("rmsnorm forward and backward") {
  struct Shape {
    int64_t rows, d;
  };
  for (Shape s : {Shape{37, 96}, Shape{1000, 200}, Shape{3, 1030}, Shape{65, 7}}) {
    CAPTURE(s.rows);
    CAPTURE(s.d);
    const auto x = random_floats(s.rows * s.d, 7, 2.0, 0.3), gain = random_floats(s.d, 8, 0.3, 1.0);
    const auto dout = random_floats(s.rows * s.d, 9);
    compare_backends(
        "rmsnorm",
        [&](Backend& be) {
          Array dx_in(be, x), dgain_in(be, gain), ddout(be, dout);
          auto out = poisoned(be, s.rows * s.d), rstd = poisoned(be, s.rows);
          auto dx = accumulator(be, s.rows * s.d, 10), dgain = accumulator(be, s.d, 11);
          auto dx_written = poisoned(be, s.rows * s.d), dgain_written = accumulator(be, s.d, 12);
          be.rmsnorm_forward({out->data(), s.rows, s.d}, rstd->data(), {dx_in.data(), s.rows, s.d},
                             dgain_in.data(), 1e-5f);
          be.rmsnorm_backward({dx->data(), s.rows, s.d}, dgain->data(), {ddout.data(), s.rows, s.d},
                              {dx_in.data(), s.rows, s.d}, dgain_in.data(), rstd->data(), nullptr,
                              /*accumulate_dx=*/true);
          be.rmsnorm_backward({dx_written->data(), s.rows, s.d}, dgain_written->data(),
                              {ddout.data(), s.rows, s.d}, {dx_in.data(), s.rows, s.d}, dgain_in.data(),
                              rstd->data(), nullptr, /*accumulate_dx=*/false);
          return Outputs{{"out", out->download()},
                         {"rstd", rstd->download()},
                         {"dx", dx->download()},
                         {"dgain", dgain->download()},
                         {"dx written", dx_written->download()},
                         {"dgain (dx written)", dgain_written->download()}};
        },
        kFp32Tolerance);
  }
}

TEST_CASE("matmul and its backward products, exact fp32 and bf16 tensor cores") {
  struct Shape {
    int64_t n, in, out;
  };
  for (Shape s : {Shape{37, 300, 45}, Shape{128, 64, 256}, Shape{1, 17, 5}, Shape{300, 129, 513}}) {
    CAPTURE(s.n);
    CAPTURE(s.in);
    CAPTURE(s.out);
    const auto x = random_floats(s.n * s.in, 12), w = random_floats(s.out * s.in, 13, 0.1);
    const auto dy = random_floats(s.n * s.out, 14), y0 = random_floats(s.n * s.out, 15);
    auto run = [&](Backend& be) {
      Array dx_in(be, x), dw_in(be, w), ddy(be, dy), acc(be, y0);
      auto y = poisoned(be, s.n * s.out);
      auto dx = accumulator(be, s.n * s.in, 16), dw = accumulator(be, s.out * s.in, 17);
      be.matmul({y->data(), s.n, s.out}, {dx_in.data(), s.n, s.in}, {dw_in.data(), s.out, s.in}, false);
      be.matmul({acc.data(), s.n, s.out}, {dx_in.data(), s.n, s.in}, {dw_in.data(), s.out, s.in}, true);
      be.matmul_backward_input({dx->data(), s.n, s.in}, {ddy.data(), s.n, s.out},
                               {dw_in.data(), s.out, s.in});
      be.matmul_backward_weight({dw->data(), s.out, s.in}, {ddy.data(), s.n, s.out},
                                {dx_in.data(), s.n, s.in});
      return Outputs{{"y", y->download()},
                     {"y accumulated", acc.download()},
                     {"dx", dx->download()},
                     {"dw", dw->download()}};
    };
    compare_backends("matmul fp32", run, kFp32Tolerance, gpu());
    compare_backends("matmul bf16", run, kBf16GemmTolerance, gpu_bf16());
  }
}

TEST_CASE("the bf16 GEMM mode really rounds its inputs (the fp32 mode is not silently used)") {
  const int64_t n = 64, in = 256, out = 64;
  const auto x = random_floats(n * in, 18), w = random_floats(out * in, 19);
  auto run = [&](Backend& be) {
    Array dx(be, x), dw(be, w);
    auto y = poisoned(be, n * out);
    be.matmul({y->data(), n, out}, {dx.data(), n, in}, {dw.data(), out, in}, false);
    return y->download();
  };
  const double bf16_error = relative_error(run(gpu_bf16()), run(cpu()));
  const double fp32_error = relative_error(run(gpu()), run(cpu()));
  CHECK(fp32_error < 1e-6);
  CHECK(bf16_error > 1e-4);  // bf16 has an 8-bit mantissa: ~2e-3 relative per product
  CHECK(bf16_error < kBf16GemmTolerance);
}

TEST_CASE("rope forward (in place too) and backward") {
  struct Shape {
    int batch, seq, heads, head_dim;
    int64_t offset;
  };
  for (Shape s : {Shape{2, 13, 3, 16, 0}, Shape{1, 40, 5, 6, 7}, Shape{3, 9, 2, 128, 100}}) {
    CAPTURE(s.head_dim);
    const int64_t half = s.head_dim / 2, positions = s.offset + s.seq;
    std::vector<float> cos(positions * half), sin(positions * half);
    for (int64_t p = 0; p < positions; ++p)
      for (int64_t i = 0; i < half; ++i) {
        const double angle = double(p) * std::pow(10000.0, -2.0 * double(i) / double(s.head_dim));
        cos[p * half + i] = float(std::cos(angle));
        sin[p * half + i] = float(std::sin(angle));
      }
    const int64_t n = int64_t(s.batch) * s.seq * s.heads * s.head_dim;
    const auto x = random_floats(n, 20), dout = random_floats(n, 21);
    const RopeShape shape{s.batch, s.seq, s.heads, s.head_dim, s.offset};
    compare_backends(
        "rope",
        [&](Backend& be) {
          Array dcos(be, cos), dsin(be, sin), din(be, x), ddout(be, dout), inplace(be, x);
          auto out = poisoned(be, n);
          auto dx = poisoned(be, n);  // written, not added to
          Array dx_in_place(be, dout);
          be.rope_forward(out->data(), din.data(), dcos.data(), dsin.data(), shape);
          be.rope_forward(inplace.data(), inplace.data(), dcos.data(), dsin.data(), shape);
          be.rope_backward(dx->data(), ddout.data(), dcos.data(), dsin.data(), shape);
          be.rope_backward(dx_in_place.data(), dx_in_place.data(), dcos.data(), dsin.data(), shape);
          return Outputs{{"out", out->download()},
                         {"in place", inplace.download()},
                         {"din", dx->download()},
                         {"din in place", dx_in_place.download()}};
        },
        kFp32Tolerance);
  }
}

namespace {

// batch, seq, heads, kv_heads, head_dim, window: odd sizes, GQA and MQA,
// windows shorter and longer than a tile, every head-dim template.
const AttentionShape kAttentionShapes[] = {
    {2, 37, 4, 2, 16, 0, 0.25f},    {1, 100, 4, 1, 64, 0, 0.125f},  {2, 129, 6, 3, 40, 17, 0.158f},
    {1, 70, 2, 2, 128, 32, 0.088f}, {1, 33, 8, 8, 256, 0, 0.0625f}, {1, 20, 2, 1, 512, 5, 0.044f},
    {3, 1, 2, 1, 8, 0, 0.35f},      {1, 300, 2, 2, 32, 50, 0.177f},
};

int64_t q_count(const AttentionShape& s) { return int64_t(s.batch) * s.seq * s.heads * s.head_dim; }
int64_t kv_count(const AttentionShape& s) { return int64_t(s.batch) * s.seq * s.kv_heads * s.head_dim; }

}  // namespace

TEST_CASE("attention forward: causal, GQA, sliding windows, head dims 8..512") {
  for (const AttentionShape& s : kAttentionShapes) {
    CAPTURE(s.seq);
    CAPTURE(s.head_dim);
    CAPTURE(s.window);
    const auto q = random_floats(q_count(s), 23), k = random_floats(kv_count(s), 24),
               v = random_floats(kv_count(s), 25);
    compare_backends(
        "attention forward",
        [&](Backend& be) {
          Array dq(be, q), dk(be, k), dv(be, v);
          auto out = poisoned(be, q_count(s)), lse = poisoned(be, int64_t(s.batch) * s.heads * s.seq);
          be.attention_forward(out->data(), lse->data(), dq.data(), dk.data(), dv.data(), s);
          return Outputs{{"out", out->download()}, {"lse", lse->download()}};
        },
        kAttentionTolerance);
  }
}

TEST_CASE("attention backward from the saved log-sum-exp") {
  for (const AttentionShape& s : kAttentionShapes) {
    CAPTURE(s.seq);
    CAPTURE(s.head_dim);
    CAPTURE(s.window);
    const auto q = random_floats(q_count(s), 26), k = random_floats(kv_count(s), 27),
               v = random_floats(kv_count(s), 28), dout = random_floats(q_count(s), 29);
    // The forward's out and lse come from the CPU for both backends: this checks the backward alone.
    std::vector<float> out(q_count(s)), lse(int64_t(s.batch) * s.heads * s.seq);
    cpu().attention_forward(out.data(), lse.data(), q.data(), k.data(), v.data(), s);
    compare_backends(
        "attention backward",
        [&](Backend& be) {
          Array dq_in(be, q), dk_in(be, k), dv_in(be, v), ddout(be, dout), dout_fwd(be, out), dlse(be, lse);
          auto dq = accumulator(be, q_count(s), 30), dk = accumulator(be, kv_count(s), 31),
               dv = accumulator(be, kv_count(s), 32);
          auto dq_w = poisoned(be, q_count(s)), dk_w = poisoned(be, kv_count(s)),
               dv_w = poisoned(be, kv_count(s));
          be.attention_backward(dq->data(), dk->data(), dv->data(), ddout.data(), dq_in.data(), dk_in.data(),
                                dv_in.data(), dout_fwd.data(), dlse.data(), s, /*accumulate=*/true);
          be.attention_backward(dq_w->data(), dk_w->data(), dv_w->data(), ddout.data(), dq_in.data(),
                                dk_in.data(), dv_in.data(), dout_fwd.data(), dlse.data(), s,
                                /*accumulate=*/false);
          Outputs outputs{{"dq", dq->download()},
                          {"dk", dk->download()},
                          {"dv", dv->download()},
                          {"dv written", dv_w->download()}};
          // With one key p = 1 and ds = p (dp - delta) is rounding noise around
          // 0, so the written dq and dk have no scale to compare against (the
          // added forms above still check them against their starting values).
          if (s.seq > 1) {
            outputs.push_back({"dq written", dq_w->download()});
            outputs.push_back({"dk written", dk_w->download()});
          }
          return outputs;
        },
        kAttentionTolerance);
  }
}

TEST_CASE("kv cache write and one-token decode, global and in a ring buffer, over several splits") {
  struct Case {
    AttentionShape shape;
    int64_t capacity, steps;
  };
  for (Case c : {Case{{2, 1, 4, 2, 32, 0, 0.177f}, 40, 40}, Case{{3, 1, 4, 1, 48, 8, 0.144f}, 8, 45},
                 Case{{1, 1, 2, 2, 128, 0, 0.088f}, 70, 70},
                 // Several 256-key splits (flash-decoding), the last one short; and a
                 // window wider than a split in a ring buffer.
                 Case{{1, 1, 4, 2, 32, 0, 0.177f}, 700, 700}, Case{{2, 1, 2, 1, 16, 300, 0.25f}, 300, 800}}) {
    const AttentionShape& s = c.shape;
    CAPTURE(s.head_dim);
    CAPTURE(s.window);
    const int64_t q_row = int64_t(s.batch) * s.heads * s.head_dim,
                  kv_row = int64_t(s.batch) * s.kv_heads * s.head_dim;
    const auto q = random_floats(q_row * c.steps, 33), k = random_floats(kv_row * c.steps, 34),
               v = random_floats(kv_row * c.steps, 35);
    compare_backends(
        "decode",
        [&](Backend& be) {
          Array dq(be, q), dk(be, k), dv(be, v);
          const int64_t cache = int64_t(s.batch) * s.kv_heads * c.capacity * s.head_dim;
          auto k_cache = poisoned(be, cache), v_cache = poisoned(be, cache);
          auto out = poisoned(be, q_row * c.steps);
          for (int64_t p = 0; p < c.steps; ++p) {
            be.kv_cache_write(k_cache->data(), v_cache->data(), dk.data() + p * kv_row,
                              dv.data() + p * kv_row, s, c.capacity, p);
            be.attention_decode(out->data() + p * q_row, dq.data() + p * q_row, k_cache->data(),
                                v_cache->data(), s, c.capacity, p);
          }
          return Outputs{{"out", out->download()}};
        },
        kAttentionTolerance);
  }
}

TEST_CASE("swiglu forward and backward") {
  const int64_t n = 10007;
  const auto gate = random_floats(n, 36, 2.0), up = random_floats(n, 37), dh = random_floats(n, 38);
  compare_backends(
      "swiglu",
      [&](Backend& be) {
        Array dgate_in(be, gate), dup_in(be, up), ddh(be, dh);
        auto h = poisoned(be, n);
        auto dgate = accumulator(be, n, 39), dup = accumulator(be, n, 40);
        be.swiglu_forward(h->data(), dgate_in.data(), dup_in.data(), n);
        be.swiglu_backward(dgate->data(), dup->data(), ddh.data(), dgate_in.data(), dup_in.data(), n, true);
        return Outputs{{"h", h->download()}, {"dgate", dgate->download()}, {"dup", dup->download()}};
      },
      kFp32Tolerance);
}

TEST_CASE("cross-entropy forward and backward (in place, as the model calls it), ignored targets") {
  struct Shape {
    int64_t rows, vocab;
  };
  for (Shape s : {Shape{37, 256}, Shape{5, 50304}, Shape{300, 97}}) {
    CAPTURE(s.vocab);
    const auto logits = random_floats(s.rows * s.vocab, 41, 3.0);
    auto targets = random_tokens(s.rows, int(s.vocab), 42);
    if (s.vocab == 97)  // ignored targets (negative): no loss, a zero gradient row
      for (int64_t i = 0; i < s.rows; i += 7) targets[i] = -1;
    const float scale = 1.0f / float(s.rows);
    compare_backends(
        "cross-entropy",
        [&](Backend& be) {
          Array dlogits(be, logits);
          DeviceArray<int32_t> dtargets(be, targets);
          auto losses = poisoned(be, s.rows), lse = poisoned(be, s.rows);
          be.cross_entropy_forward(losses->data(), lse->data(), {dlogits.data(), s.rows, s.vocab},
                                   dtargets.data());
          be.cross_entropy_backward({dlogits.data(), s.rows, s.vocab}, {dlogits.data(), s.rows, s.vocab},
                                    lse->data(), dtargets.data(), scale);
          return Outputs{
              {"losses", losses->download()}, {"lse", lse->download()}, {"dlogits", dlogits.download()}};
        },
        kFp32Tolerance);
  }
}

TEST_CASE("sum of squares in double, and the same bits on every call") {
  for (int64_t n : {int64_t(1), int64_t(1000), int64_t(1000003)}) {
    CAPTURE(n);
    const auto x = random_floats(std::size_t(n), 43);
    Array dx(gpu(), x);
    const double want = cpu().sum_of_squares(x.data(), n);
    const double got = gpu().sum_of_squares(dx.data(), n);
    CHECK(std::abs(got - want) <= 1e-12 * want);
    CHECK(gpu().sum_of_squares(dx.data(), n) == got);
  }
}

TEST_CASE("adamw over several steps, with decay and clipping scale") {
  const int64_t n = 10007;
  const auto params = random_floats(n, 44), grads = random_floats(n, 45);
  compare_backends(
      "adamw",
      [&](Backend& be) {
        Array p(be, params), g(be, grads), m(be, n), v(be, n);
        for (int step = 1; step <= 3; ++step) {
          AdamWStep s;
          s.learning_rate = 1e-2f * float(step);
          s.weight_decay = 0.1f;
          s.grad_scale = step == 2 ? 0.5f : 1.0f;
          s.step = step;
          be.adamw_update(p.data(), g.data(), m.data(), v.data(), n, s);
        }
        return Outputs{{"params", p.download()}, {"m", m.download()}, {"v", v.download()}};
      },
      kFp32Tolerance);
}

TEST_CASE("out of memory is std::bad_alloc, and the backend stays usable") {
  CHECK_THROWS_AS(gpu().allocate(std::size_t(1) << 50), std::bad_alloc);
  Array after(gpu(), std::vector<float>{1.0f, 2.0f});
  CHECK(after.download() == std::vector<float>{1.0f, 2.0f});
}
