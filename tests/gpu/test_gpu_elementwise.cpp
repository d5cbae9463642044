// The memory-bound kernels' fast paths (16-byte accesses, the one-pass
// RMSNorm backward, the sorted embedding backward) against the CPU backend, on the shapes
// that pick each path and its fallback: counts and widths that are not
// multiples of four, views that start one or two floats into a buffer (not
// 16-byte aligned), narrow and wide rows. The sums whose order the kernels fix
// are checked for the same bits on every run, and the embedding backward for
// the CPU backend's bits.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>

#include "tests/gpu/gpu_test_support.hpp"

using namespace livs::evaluator;
using namespace livs::evaluator::gpu_testing;

namespace {

using Array = DeviceArray<float>;

// `count` floats of `host` in one backend's memory, starting `offset` floats
// into the buffer: offsets 1..3 make a view that is not 16-byte aligned.
class OffsetArray {
 public:
  OffsetArray(Backend& be, const std::vector<float>& host, int64_t offset)
      : buffer_(be, int64_t(host.size()) + offset), offset_(offset), count_(int64_t(host.size())) {
    be.copy_to_device(buffer_.data() + offset_, host.data(), host.size() * sizeof(float));
  }
  float* data() { return buffer_.data() + offset_; }
  std::vector<float> download() const {
    const auto all = buffer_.download();
    return std::vector<float>(all.begin() + offset_, all.begin() + offset_ + count_);
  }

 private:
  Array buffer_;
  int64_t offset_, count_;
};

std::vector<float> nan_floats(int64_t count) {
  return std::vector<float>(std::size_t(count), std::numeric_limits<float>::quiet_NaN());
}

// Elements whose bits differ (NaN counts as differing from anything but the same NaN bits).
int64_t bit_differences(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return -1;
  int64_t differ = 0;
  for (std::size_t i = 0; i < a.size(); ++i) differ += std::memcmp(&a[i], &b[i], sizeof(float)) != 0;
  return differ;
}

}  // namespace

TEST_CASE("elementwise: add, fill and swiglu on odd counts and misaligned views") {
  for (int64_t n : {int64_t(1), int64_t(3), int64_t(4), int64_t(7), int64_t(4099), int64_t(100003)}) {
    for (int64_t offset : {0, 1, 2}) {
      CAPTURE(n);
      CAPTURE(offset);
      const auto a = random_floats(n, 101, 2.0), b = random_floats(n, 102), c = random_floats(n, 103);
      const auto dgate0 = random_floats(n, 104, 0.5), dup0 = random_floats(n, 105, 0.5);
      auto run = [&](Backend& be) {
        OffsetArray da(be, a, offset), db(be, b, offset), dc(be, c, offset), sum(be, nan_floats(n), offset),
            in_place(be, a, offset), filled(be, nan_floats(n + 1), offset),
            zeroed(be, nan_floats(n + 1), offset), h(be, nan_floats(n), offset), dgate(be, dgate0, offset),
            dup(be, dup0, offset), written_gate(be, nan_floats(n), offset),
            written_up(be, nan_floats(n), offset);
        be.add(sum.data(), da.data(), db.data(), n);
        be.add(in_place.data(), in_place.data(), db.data(), n);
        be.fill(filled.data(), n, 2.5f);  // the element after the n asked for stays NaN
        be.fill(zeroed.data(), n, 0.0f);
        be.swiglu_forward(h.data(), da.data(), db.data(), n);
        be.swiglu_backward(dgate.data(), dup.data(), dc.data(), da.data(), db.data(), n, /*accumulate=*/true);
        be.swiglu_backward(written_gate.data(), written_up.data(), dc.data(), da.data(), db.data(), n,
                           /*accumulate=*/false);
        auto f = filled.download(), z = zeroed.download();
        CHECK(std::isnan(f.back()));
        CHECK(std::isnan(z.back()));
        f.pop_back();
        z.pop_back();
        return Outputs{{"add", sum.download()},
                       {"add in place", in_place.download()},
                       {"fill", f},
                       {"fill zero", z},
                       {"swiglu h", h.download()},
                       {"swiglu dgate", dgate.download()},
                       {"swiglu dup", dup.download()},
                       {"swiglu dgate written", written_gate.download()},
                       {"swiglu dup written", written_up.download()}};
      };
      const auto want = run(cpu());
      const auto got = run(gpu());
      REQUIRE(got.size() == want.size());
      for (std::size_t i = 0; i < want.size(); ++i) {
        const bool exact = want[i].first.rfind("swiglu", 0) != 0;  // add and fill have one rounding: exact
        check_close(want[i].first, got[i].second, want[i].second, exact ? 0.0 : kFp32Tolerance);
      }
    }
  }
}

TEST_CASE("elementwise: fill with -0.0 keeps the sign bit (not the zero memset)") {
  const int64_t n = 1001;
  Array x(gpu(), n);
  gpu().fill(x.data(), n, -0.0f);
  const auto v = x.download();
  int64_t negative_zeros = 0;
  for (float f : v) negative_zeros += f == 0.0f && std::signbit(f);
  CHECK(negative_zeros == n);
}

TEST_CASE("elementwise: rope with and without the four-pair path, misaligned views, in place") {
  struct Shape {
    int batch, seq, heads, head_dim;
    int64_t offset;
    int64_t view_offset;  // floats into the buffers of x, dout and din
  };
  for (Shape s : {Shape{2, 7, 3, 8, 0, 0}, Shape{1, 5, 2, 24, 3, 0}, Shape{2, 33, 8, 64, 0, 0},
                  Shape{1, 9, 4, 64, 11, 1}, Shape{1, 3, 1, 2, 0, 0}, Shape{2, 4, 3, 10, 5, 2},
                  Shape{1, 2, 40, 128, 0, 0}}) {
    CAPTURE(s.head_dim);
    CAPTURE(s.heads);
    CAPTURE(s.view_offset);
    const int64_t half = s.head_dim / 2, positions = s.offset + s.seq;
    const auto cos = random_floats(positions * half, 110), sin = random_floats(positions * half, 111);
    const int64_t n = int64_t(s.batch) * s.seq * s.heads * s.head_dim;
    const auto x = random_floats(n, 112), dout = random_floats(n, 113);
    const RopeShape shape{s.batch, s.seq, s.heads, s.head_dim, s.offset};
    compare_backends(
        "rope",
        [&](Backend& be) {
          Array dcos(be, cos), dsin(be, sin);
          OffsetArray dx(be, x, s.view_offset), ddout(be, dout, s.view_offset),
              out(be, nan_floats(n), s.view_offset), inplace(be, x, s.view_offset),
              din(be, nan_floats(n), s.view_offset);
          be.rope_forward(out.data(), dx.data(), dcos.data(), dsin.data(), shape);
          be.rope_forward(inplace.data(), inplace.data(), dcos.data(), dsin.data(), shape);
          be.rope_backward(din.data(), ddout.data(), dcos.data(), dsin.data(), shape);
          return Outputs{{"out", out.download()}, {"in place", inplace.download()}, {"din", din.download()}};
        },
        kFp32Tolerance);
  }
}

TEST_CASE("elementwise: rmsnorm on narrow, odd and wide rows, one row, many rows, a misaligned view") {
  struct Shape {
    int64_t rows, d, view_offset;
  };
  // d 4..32: 8 lanes a row; 64: 16; 96..1024: a warp with 1, 2, 4, 8 float4 a lane;
  // 1028, 2048 (too wide), 30 and 13 (not multiples of 4) and the offset view: generic.
  for (Shape s :
       {Shape{5, 4, 0}, Shape{37, 28, 0}, Shape{300, 64, 0}, Shape{33, 96, 0}, Shape{1000, 200, 0},
        Shape{2500, 512, 0}, Shape{70, 1024, 0}, Shape{9, 1028, 0}, Shape{4, 2048, 0}, Shape{41, 30, 0},
        Shape{17, 13, 0}, Shape{100, 512, 1}, Shape{1, 512, 0}, Shape{70000, 64, 0}}) {
    CAPTURE(s.rows);
    CAPTURE(s.d);
    CAPTURE(s.view_offset);
    const auto x = random_floats(s.rows * s.d, 120, 2.0, 0.3), gain = random_floats(s.d, 121, 0.3, 1.0);
    const auto dout = random_floats(s.rows * s.d, 122), dx0 = random_floats(s.rows * s.d, 123, 0.5);
    const auto dgain0 = random_floats(s.d, 124, 0.5);
    compare_backends(
        "rmsnorm",
        [&](Backend& be) {
          const int64_t o = s.view_offset;
          OffsetArray dxin(be, x, o), dgain_in(be, gain, o), ddout(be, dout, o),
              out(be, nan_floats(s.rows * s.d), o), dx(be, dx0, o), dgain(be, dgain0, o);
          auto rstd = poisoned(be, s.rows);
          be.rmsnorm_forward({out.data(), s.rows, s.d}, rstd->data(), {dxin.data(), s.rows, s.d},
                             dgain_in.data(), 1e-5f);
          be.rmsnorm_backward({dx.data(), s.rows, s.d}, dgain.data(), {ddout.data(), s.rows, s.d},
                              {dxin.data(), s.rows, s.d}, dgain_in.data(), rstd->data(), nullptr,
                              /*accumulate_dx=*/true);
          return Outputs{{"out", out.download()},
                         {"rstd", rstd->download()},
                         {"dx", dx.download()},
                         {"dgain", dgain.download()}};
        },
        kFp32Tolerance);
  }
}

TEST_CASE("elementwise: rmsnorm backward gives the same bits on every run") {
  for (int64_t d : {int64_t(512), int64_t(64), int64_t(510)}) {
    CAPTURE(d);
    const int64_t rows = 16384 * 64 / d;
    const auto x = random_floats(rows * d, 130, 2.0), gain = random_floats(d, 131, 0.3, 1.0),
               dout = random_floats(rows * d, 132);
    Array dx_in(gpu(), x), dgain_in(gpu(), gain), ddout(gpu(), dout), out(gpu(), rows * d), rstd(gpu(), rows);
    gpu().rmsnorm_forward({out.data(), rows, d}, rstd.data(), {dx_in.data(), rows, d}, dgain_in.data(),
                          1e-5f);
    auto backward = [&] {
      Array dx(gpu(), rows * d), dgain(gpu(), d);
      gpu().rmsnorm_backward({dx.data(), rows, d}, dgain.data(), {ddout.data(), rows, d},
                             {dx_in.data(), rows, d}, dgain_in.data(), rstd.data(), nullptr,
                             /*accumulate_dx=*/true);
      return std::make_pair(dx.download(), dgain.download());
    };
    const auto first = backward();
    for (int run = 0; run < 3; ++run) {
      const auto again = backward();
      CHECK(bit_differences(again.first, first.first) == 0);
      CHECK(bit_differences(again.second, first.second) == 0);
    }
  }
}

TEST_CASE("elementwise: embedding backward has the CPU backend's bits and the same bits on every run") {
  struct Case {
    const char* what;
    int64_t vocab, d, rows, view_offset;
    int repeated_token;  // -1: uniform random tokens, else every token is this one
  };
  for (Case c :
       {Case{"vocab much larger than tokens", 50304, 512, 2048, 0, -1},
        Case{"one token repeated", 10, 64, 5000, 0, 3}, Case{"one token, the last row", 7, 36, 999, 0, 6},
        Case{"small vocab, long runs", 256, 128, 6000, 0, -1},
        Case{"width not a multiple of 4", 1000, 130, 777, 0, -1},
        Case{"misaligned dout and dtable", 300, 64, 1000, 1, -1}, Case{"one token", 5, 8, 1, 0, -1}}) {
    CAPTURE(c.what);
    const auto table = random_floats(c.vocab * c.d, 140), dout = random_floats(c.rows * c.d, 141),
               dtable0 = random_floats(c.vocab * c.d, 142, 0.5);
    auto tokens = random_tokens(c.rows, int(c.vocab), 143);
    if (c.repeated_token >= 0) std::fill(tokens.begin(), tokens.end(), c.repeated_token);
    auto run = [&](Backend& be) {
      OffsetArray dtable_in(be, table, c.view_offset), ddout(be, dout, c.view_offset),
          out(be, nan_floats(c.rows * c.d), c.view_offset), dtable(be, dtable0, c.view_offset);
      DeviceArray<int32_t> dtokens(be, tokens);
      be.embedding_forward({out.data(), c.rows, c.d}, {dtable_in.data(), c.vocab, c.d}, dtokens.data());
      be.embedding_backward({dtable.data(), c.vocab, c.d}, {ddout.data(), c.rows, c.d}, dtokens.data());
      return std::make_pair(out.download(), dtable.download());
    };
    const auto want = run(cpu());
    const auto got = run(gpu());
    CHECK(bit_differences(got.first, want.first) == 0);
    CHECK(bit_differences(got.second, want.second) == 0);  // the same additions in the same order
    CHECK(bit_differences(run(gpu()).second, got.second) == 0);
  }
}

TEST_CASE("elementwise: activations, feature maps and products on odd counts and misaligned views") {
  for (int64_t n : {int64_t(5), int64_t(4099)}) {
    for (int64_t offset : {0, 3}) {
      CAPTURE(n);
      CAPTURE(offset);
      const auto x = random_floats(n, 150, 3.0), y = random_floats(n, 151), d0 = random_floats(n, 152, 0.5);
      compare_backends(
          "pointwise",
          [&](Backend& be) {
            OffsetArray dx(be, x, offset), dy(be, y, offset), act(be, nan_floats(n), offset),
                dact(be, d0, offset), fmap(be, nan_floats(n), offset), dfmap(be, d0, offset),
                product(be, nan_floats(n), offset), da(be, d0, offset), db(be, d0, offset);
            be.activation_forward(act.data(), dx.data(), n, ActivationKind::gelu_tanh);
            be.activation_backward(dact.data(), dy.data(), dx.data(), n, ActivationKind::gelu_tanh, true);
            be.feature_map_forward(fmap.data(), dx.data(), n, FeatureMapKind::elu_plus_one);
            be.feature_map_backward(dfmap.data(), dy.data(), dx.data(), n, FeatureMapKind::elu_plus_one,
                                    /*accumulate=*/true);
            be.multiply_forward(product.data(), dx.data(), dy.data(), n);
            be.multiply_backward(da.data(), db.data(), dy.data(), dx.data(), dy.data(), n, true);
            return Outputs{{"activation", act.download()},
                           {"activation backward", dact.download()},
                           {"feature map", fmap.download()},
                           {"feature map backward", dfmap.download()},
                           {"product", product.download()},
                           {"da", da.download()},
                           {"db", db.download()}};
          },
          kFp32Tolerance);
    }
  }
}

TEST_CASE("elementwise: the fused residual add and RMSNorm give the bits of add then rmsnorm") {
  // d 512, 128 and 64: the register path; d 1030 and a misaligned view: add then rmsnorm.
  struct Shape {
    int64_t rows, d, offset;
  };
  for (Shape s :
       {Shape{300, 512, 0}, Shape{2048, 128, 0}, Shape{77, 64, 0}, Shape{50, 1030, 0}, Shape{40, 512, 1}}) {
    CAPTURE(s.d);
    CAPTURE(s.offset);
    Backend& be = gpu_bf16();
    const int64_t count = s.rows * s.d;
    const auto a = random_floats(std::size_t(count), 91), b = random_floats(std::size_t(count), 92, 0.5);
    const auto gain = random_floats(std::size_t(s.d), 93, 0.2, 1.0);
    OffsetArray da(be, a, s.offset), db(be, b, 0);
    Array dgain(be, gain);
    auto fused_sum = poisoned(be, count), fused_out = poisoned(be, count), fused_rstd = poisoned(be, s.rows);
    auto sum = poisoned(be, count), out = poisoned(be, count), rstd = poisoned(be, s.rows);
    DeviceArray<uint16_t> fused16(be, count), out16(be, count);
    be.add_rmsnorm_forward(fused_sum->data(), {fused_out->data(), s.rows, s.d}, fused_rstd->data(), da.data(),
                           db.data(), dgain.data(), 1e-5f, fused16.data());
    be.add(sum->data(), da.data(), db.data(), count);
    be.rmsnorm_forward({out->data(), s.rows, s.d}, rstd->data(), {sum->data(), s.rows, s.d}, dgain.data(),
                       1e-5f, out16.data());
    CHECK(fused_sum->download() == sum->download());
    CHECK(fused_out->download() == out->download());
    CHECK(fused_rstd->download() == rstd->download());
    CHECK(fused16.download() == out16.download());
  }
  // And against the CPU backend, which composes the two.
  const int64_t rows = 33, d = 128;
  const auto a = random_floats(std::size_t(rows * d), 94), b = random_floats(std::size_t(rows * d), 95);
  const auto gain = random_floats(std::size_t(d), 96, 0.2, 1.0);
  compare_backends(
      "add_rmsnorm_forward",
      [&](Backend& be) {
        Array da(be, a), db(be, b), dgain(be, gain);
        auto sum = poisoned(be, rows * d), out = poisoned(be, rows * d), rstd = poisoned(be, rows);
        be.add_rmsnorm_forward(sum->data(), {out->data(), rows, d}, rstd->data(), da.data(), db.data(),
                               dgain.data(), 1e-5f);
        return Outputs{{"sum", sum->download()}, {"out", out->download()}, {"rstd", rstd->download()}};
      },
      kFp32Tolerance, gpu());
}
