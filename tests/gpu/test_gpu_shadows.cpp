// bf16 GEMM shadows (GemmOperand): a product reading shadows gives the bits of
// the same product rounding the fp32 operands itself, shadow-only operands
// (SwiGLU's bf16 outputs) hold the rounded fp32 results, products can write
// bf16 outputs, and dx = dy W can overwrite instead of accumulating.
#include <cmath>
#include <cstring>
#include <utility>

#include "tests/gpu/gpu_test_support.hpp"

using namespace livs::evaluator;
using namespace livs::evaluator::gpu_testing;

namespace {

using Array = DeviceArray<float>;

// bf16 bits (round to nearest even, as the device) and back.
uint16_t bf16_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
float from_bf16(uint16_t b) {
  const uint32_t u = uint32_t(b) << 16;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}
std::vector<float> widen(const std::vector<uint16_t>& bits) {
  std::vector<float> out(bits.size());
  for (std::size_t i = 0; i < bits.size(); ++i) out[i] = from_bf16(bits[i]);
  return out;
}
std::vector<float> round_bf16(const std::vector<float>& x) {
  std::vector<float> out(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) out[i] = from_bf16(bf16_bits(x[i]));
  return out;
}

}  // namespace

TEST_CASE("shadows: round_to_bf16 rounds to nearest even, and only the bf16 mode wants shadows") {
  CHECK(gpu_bf16().wants_gemm_shadows());
  CHECK_FALSE(gpu().wants_gemm_shadows());
  CHECK_FALSE(static_cast<Backend&>(cpu()).wants_gemm_shadows());
  for (int64_t count : {int64_t(1), int64_t(7), int64_t(4096 + 3)}) {
    CAPTURE(count);
    auto x = random_floats(std::size_t(count), 70, 3.0);
    if (count > 1) x[1] = 1.00390625f;  // exactly between two bf16 values: rounds to the even one (1.0)
    Array dx(gpu_bf16(), x);
    DeviceArray<uint16_t> shadow(gpu_bf16(), count);
    gpu_bf16().round_to_bf16(shadow.data(), dx.data(), count);
    const auto bits = shadow.download();
    for (int64_t i = 0; i < count; ++i) REQUIRE(bits[std::size_t(i)] == bf16_bits(x[std::size_t(i)]));
    if (count > 1) CHECK(from_bf16(bits[1]) == 1.0f);
  }
}

TEST_CASE("shadows: every product reading shadows gives the bits of rounding in the product") {
  struct Shape {
    int64_t n, in, out;
  };
  // k from 17 to 8192 (the weight gradient's k is n: past the depth where the
  // GEMM would otherwise leave fp32 inputs to cuBLAS).
  for (Shape s : {Shape{37, 300, 45}, Shape{8192, 64, 96}, Shape{1, 17, 5}}) {
    CAPTURE(s.n);
    CAPTURE(s.in);
    CAPTURE(s.out);
    Backend& be = gpu_bf16();
    const auto x = random_floats(s.n * s.in, 71), w = random_floats(s.out * s.in, 72, 0.1);
    const auto dy = random_floats(s.n * s.out, 73);
    Array dx(be, x), dw(be, w), ddy(be, dy);
    DeviceArray<uint16_t> x16(be, s.n * s.in), w16(be, s.out * s.in), dy16(be, s.n * s.out);
    be.round_to_bf16(x16.data(), dx.data(), s.n * s.in);
    be.round_to_bf16(w16.data(), dw.data(), s.out * s.in);
    be.round_to_bf16(dy16.data(), ddy.data(), s.n * s.out);
    auto products = [&](bool shadows) {
      const GemmOperand xs(dx.data(), s.n, s.in, shadows ? x16.data() : nullptr);
      const GemmOperand ws(dw.data(), s.out, s.in, shadows ? w16.data() : nullptr);
      const GemmOperand dys(ddy.data(), s.n, s.out, shadows ? dy16.data() : nullptr);
      auto y = poisoned(be, s.n * s.out), gx = poisoned(be, s.n * s.in);
      Array gw(be, std::vector<float>(std::size_t(s.out * s.in), 0.0f));
      be.matmul({y->data(), s.n, s.out}, xs, ws, false);
      be.matmul_backward_input({gx->data(), s.n, s.in}, dys, ws, /*accumulate=*/false);
      be.matmul_backward_weight({gw.data(), s.out, s.in}, dys, xs);
      return Outputs{{"y", y->download()}, {"dx", gx->download()}, {"dw", gw.download()}};
    };
    const Outputs with = products(true), without = products(false);
    // Where k <= 4096 the GEMM rounds the operands into copies itself: the
    // same bits. (Deeper products without shadows let cuBLAS round in the
    // kernel, CUBLAS_COMPUTE_32F_FAST_16BF, which measured 2e-3 away.)
    for (std::size_t i = 0; i < with.size(); ++i) {
      CAPTURE(with[i].first);
      if (s.n <= 4096 || with[i].first != "dw") CHECK(with[i].second == without[i].second);
    }
    // Against the host on the rounded operands, in double: exact up to fp32 summation.
    const auto xr = round_bf16(x), wr = round_bf16(w), dyr = round_bf16(dy);
    std::vector<float> want_y(std::size_t(s.n * s.out)), want_dx(std::size_t(s.n * s.in)),
        want_dw(std::size_t(s.out * s.in));
    for (int64_t r = 0; r < s.n; ++r)
      for (int64_t o = 0; o < s.out; ++o) {
        double sum = 0.0;
        for (int64_t i = 0; i < s.in; ++i) sum += double(xr[r * s.in + i]) * double(wr[o * s.in + i]);
        want_y[std::size_t(r * s.out + o)] = float(sum);
      }
    for (int64_t r = 0; r < s.n; ++r)
      for (int64_t i = 0; i < s.in; ++i) {
        double sum = 0.0;
        for (int64_t o = 0; o < s.out; ++o) sum += double(dyr[r * s.out + o]) * double(wr[o * s.in + i]);
        want_dx[std::size_t(r * s.in + i)] = float(sum);
      }
    for (int64_t o = 0; o < s.out; ++o)
      for (int64_t i = 0; i < s.in; ++i) {
        double sum = 0.0;
        for (int64_t r = 0; r < s.n; ++r) sum += double(dyr[r * s.out + o]) * double(xr[r * s.in + i]);
        want_dw[std::size_t(o * s.in + i)] = float(sum);
      }
    check_close("y against the rounded operands", with[0].second, want_y, 1e-5);
    check_close("dx against the rounded operands", with[1].second, want_dx, 1e-5);
    check_close("dw against the rounded operands", with[2].second, want_dw, 1e-5);
  }
}

TEST_CASE("shadows: dx = dy W overwrites when asked, on the CPU and the GPU") {
  const int64_t n = 33, in = 40, out = 24;
  const auto w = random_floats(out * in, 74, 0.1), dy = random_floats(n * out, 75);
  const auto garbage = random_floats(n * in, 76, 100.0);
  compare_backends(
      "overwrite",
      [&](Backend& be) {
        Array dw(be, w), ddy(be, dy), dx(be, garbage);
        be.matmul_backward_input({dx.data(), n, in}, {ddy.data(), n, out}, {dw.data(), out, in}, false);
        return Outputs{{"dx", dx.download()}};
      },
      kBf16GemmTolerance, gpu_bf16());
}

TEST_CASE("shadows: SwiGLU in bf16 gives its fp32 outputs on the widened inputs, rounded") {
  // gate and up are rows `ld` apart: ld = cols (separate tensors), or ld = 2
  // cols with up = gate + cols (the halves of one product, as SwigluOp has
  // them). offset 1 (views not 8-byte aligned) and cols that are not a
  // multiple of 4 take the scalar path.
  struct Case {
    int64_t rows, cols, ld, offset;
  };
  for (const Case& c :
       {Case{1, 1, 1, 0}, Case{1, 4099, 4099, 0}, Case{256, 256, 256, 0}, Case{1, 1001, 1001, 1},
        Case{37, 680, 1360, 0}, Case{5, 6, 12, 0}, Case{3, 8, 16, 1}}) {
    CAPTURE(c.rows);
    CAPTURE(c.cols);
    CAPTURE(c.ld);
    CAPTURE(c.offset);
    const bool halves = c.ld == 2 * c.cols;
    const int64_t count = c.rows * c.cols, span = c.rows * c.ld + c.offset;
    // One buffer holds gate (and up, in halves); a second holds up otherwise.
    const auto gate_up = round_bf16(random_floats(std::size_t(span), 77, 2.0)),
               up_alone = round_bf16(random_floats(std::size_t(span), 78)),
               dh = round_bf16(random_floats(std::size_t(count), 79));
    const int64_t up_shift = halves ? c.cols : 0;
    const std::vector<float>& up_source = halves ? gate_up : up_alone;
    // The same values gathered into [rows, cols] for the fp32 reference.
    std::vector<float> gate(static_cast<std::size_t>(count)), up(static_cast<std::size_t>(count));
    for (int64_t r = 0; r < c.rows; ++r)
      for (int64_t j = 0; j < c.cols; ++j) {
        gate[std::size_t(r * c.cols + j)] = gate_up[std::size_t(c.offset + r * c.ld + j)];
        up[std::size_t(r * c.cols + j)] = up_source[std::size_t(c.offset + r * c.ld + up_shift + j)];
      }
    Backend& be = gpu_bf16();
    Array g(be, gate), u(be, up), d(be, dh), gate_up_in(be, gate_up), up_in(be, up_alone);
    DeviceArray<uint16_t> gate_up16(be, span), up16(be, span), dh16(be, count);
    be.round_to_bf16(gate_up16.data(), gate_up_in.data(), span);
    be.round_to_bf16(up16.data(), up_in.data(), span);
    be.round_to_bf16(dh16.data(), d.data(), count);
    auto h = poisoned(be, count);
    Array dgate(be, std::vector<float>(std::size_t(count), 0.0f)), dup(be, dgate.download());
    be.swiglu_forward(h->data(), g.data(), u.data(), count);
    be.swiglu_backward(dgate.data(), dup.data(), d.data(), g.data(), u.data(), count, false);
    DeviceArray<uint16_t> h16(be, count), dgate_up16(be, span), dup16(be, span);
    uint16_t* gate16 = gate_up16.data() + c.offset;
    const uint16_t* up16_view = (halves ? gate_up16.data() : up16.data()) + c.offset + up_shift;
    uint16_t* dgate16 = dgate_up16.data() + c.offset;
    uint16_t* dup16_view = (halves ? dgate_up16.data() : dup16.data()) + c.offset + up_shift;
    be.swiglu_forward_bf16(h16.data(), gate16, up16_view, c.rows, c.cols, c.ld);
    be.swiglu_backward_bf16(dgate16, dup16_view, dh16.data(), gate16, up16_view, c.rows, c.cols, c.ld);
    CHECK(widen(h16.download()) == round_bf16(h->download()));
    const auto dgate_all = widen(dgate_up16.download()),
               dup_all = widen((halves ? dgate_up16 : dup16).download());
    std::vector<float> dgate_got(static_cast<std::size_t>(count)), dup_got(static_cast<std::size_t>(count));
    for (int64_t r = 0; r < c.rows; ++r)
      for (int64_t j = 0; j < c.cols; ++j) {
        dgate_got[std::size_t(r * c.cols + j)] = dgate_all[std::size_t(c.offset + r * c.ld + j)];
        dup_got[std::size_t(r * c.cols + j)] = dup_all[std::size_t(c.offset + r * c.ld + up_shift + j)];
      }
    CHECK(dgate_got == round_bf16(dgate.download()));
    CHECK(dup_got == round_bf16(dup.download()));
  }
}

TEST_CASE("shadows: RoPE's bf16 backward is its fp32 backward rounded, quad and scalar paths") {
  // head_dim 32 (quads of pairs) and 6 (pairs one by one).
  for (int head_dim : {32, 6}) {
    CAPTURE(head_dim);
    const RopeShape shape{3, 17, 2, head_dim, 5};
    const int64_t half = head_dim / 2, positions = shape.seq + shape.position_offset;
    const auto angles = random_floats(std::size_t(positions * half), 89, 3.0);
    std::vector<float> cos(angles.size()), sin(angles.size());
    for (std::size_t i = 0; i < angles.size(); ++i) {
      cos[i] = std::cos(angles[i]);
      sin[i] = std::sin(angles[i]);
    }
    const int64_t n = int64_t(shape.batch) * shape.seq * shape.heads * head_dim;
    Backend& be = gpu_bf16();
    Array dcos(be, cos), dsin(be, sin), ddout(be, random_floats(std::size_t(n), 90));
    auto din = poisoned(be, n);
    DeviceArray<uint16_t> din16(be, n);
    be.rope_backward(din->data(), ddout.data(), dcos.data(), dsin.data(), shape);
    be.rope_backward_bf16(din16.data(), ddout.data(), dcos.data(), dsin.data(), shape);
    CHECK(widen(din16.download()) == round_bf16(din->download()));

    // Rows `ld` apart in the output (q's part of a q | k gradient, as
    // AttentionOp writes it): the same values in every row's first width.
    const int64_t width = shape.width(), rows = n / width, ld = width + 8;
    DeviceArray<uint16_t> wide16(be, rows * ld);
    RopeShape strided = shape;
    strided.dst_ld = ld;
    be.rope_backward_bf16(wide16.data(), ddout.data(), dcos.data(), dsin.data(), strided);
    const auto wide = widen(wide16.download()), want = round_bf16(din->download());
    std::vector<float> got;
    for (int64_t r = 0; r < rows; ++r)
      got.insert(got.end(), wide.begin() + r * ld, wide.begin() + r * ld + width);
    CHECK(got == want);
  }
}

TEST_CASE("RoPE reads and writes rows a stride apart, on the CPU and the GPU") {
  // q | k rows of one projection: RoPE of q's part (src_ld) into a
  // contiguous output, and back into a strided one (dst_ld).
  for (int head_dim : {32, 6}) {
    CAPTURE(head_dim);
    const int batch = 2, seq = 9, heads = 3, other = 40;
    const int64_t width = int64_t(heads) * head_dim, ld = width + other, rows = int64_t(batch) * seq;
    const int64_t half = head_dim / 2;
    const auto angles = random_floats(std::size_t(seq * half), 91, 3.0);
    std::vector<float> cos(angles.size()), sin(angles.size());
    for (std::size_t i = 0; i < angles.size(); ++i) {
      cos[i] = std::cos(angles[i]);
      sin[i] = std::sin(angles[i]);
    }
    const auto wide = random_floats(std::size_t(rows * ld), 92);
    std::vector<float> packed;
    for (int64_t r = 0; r < rows; ++r)
      packed.insert(packed.end(), wide.begin() + r * ld, wide.begin() + r * ld + width);
    compare_backends(
        "rope strided",
        [&](Backend& be) {
          Array dcos(be, cos), dsin(be, sin), in_wide(be, wide), in_packed(be, packed);
          Array out_a(be, std::vector<float>(std::size_t(rows * width), 0.0f)), out_b(be, out_a.download());
          Array back_wide(be, std::vector<float>(std::size_t(rows * ld), 0.0f));
          const RopeShape plain{batch, seq, heads, head_dim, 0};
          RopeShape from_wide = plain, to_wide = plain;
          from_wide.src_ld = ld;
          to_wide.dst_ld = ld;
          be.rope_forward(out_a.data(), in_packed.data(), dcos.data(), dsin.data(), plain);
          be.rope_forward(out_b.data(), in_wide.data(), dcos.data(), dsin.data(), from_wide);
          be.rope_backward(back_wide.data(), out_b.data(), dcos.data(), dsin.data(), to_wide);
          const auto a = out_a.download(), b = out_b.download();
          CHECK(a == b);
          return Outputs{{"forward", b}, {"backward into wide rows", back_wide.download()}};
        },
        kFp32Tolerance, gpu());
  }
}

TEST_CASE("shadows: attention's bf16 copies of out and dv are them rounded, tensor-core and fp32 paths") {
  // head_dim 32 and 64 take the tensor-core kernel in bf16 mode; the fp32
  // backend (and head_dim 24 in either) rounds after its SIMT kernel.
  for (int head_dim : {32, 64, 24}) {
    for (Backend* be : {&gpu_bf16(), &gpu()}) {
      CAPTURE(head_dim);
      const AttentionShape s{2, 70, 4, 2, head_dim, 0, float(1.0 / std::sqrt(double(head_dim)))};
      const int64_t n = int64_t(s.batch) * s.seq * s.heads * head_dim,
                    kv = int64_t(s.batch) * s.seq * s.kv_heads * head_dim;
      Array q(*be, random_floats(std::size_t(n), 91)), k(*be, random_floats(std::size_t(kv), 92)),
          v(*be, random_floats(std::size_t(kv), 93));
      auto out = poisoned(*be, n), lse = poisoned(*be, int64_t(s.batch) * s.heads * s.seq);
      DeviceArray<uint16_t> out16(*be, n);
      be->attention_forward(out->data(), lse->data(), q.data(), k.data(), v.data(), s, out16.data());
      CHECK(widen(out16.download()) == round_bf16(out->download()));
      Array dout(*be, random_floats(std::size_t(n), 94));
      auto dq = poisoned(*be, n), dk = poisoned(*be, kv), dv = poisoned(*be, kv);
      DeviceArray<uint16_t> dv16(*be, kv);
      be->attention_backward(dq->data(), dk->data(), dv->data(), dout.data(), q.data(), k.data(), v.data(),
                             out->data(), lse->data(), s, /*accumulate=*/false, dv16.data());
      CHECK(widen(dv16.download()) == round_bf16(dv->download()));

      // dv16 as v's part of a wider gradient (rows dv16_ld apart, as
      // AttentionOp's q | k | v gradient): the same values on every row.
      const int64_t width = int64_t(s.kv_heads) * head_dim, tokens = kv / width, ld = width + 40;
      AttentionShape wide = s;
      wide.dv16_ld = ld;
      DeviceArray<uint16_t> wide16(*be, tokens * ld);
      be->attention_backward(dq->data(), dk->data(), dv->data(), dout.data(), q.data(), k.data(), v.data(),
                             out->data(), lse->data(), wide, /*accumulate=*/false, wide16.data());
      const auto rows = widen(wide16.download());
      std::vector<float> got;
      for (int64_t r = 0; r < tokens; ++r)
        got.insert(got.end(), rows.begin() + r * ld, rows.begin() + r * ld + width);
      CHECK(got == round_bf16(dv->download()));
    }
  }
}

TEST_CASE("shadows: products with bf16 outputs are the fp32-output products rounded") {
  const int64_t n = 300, in = 96, out = 136;
  const auto x = random_floats(std::size_t(n * in), 86), w = random_floats(std::size_t(out * in), 87, 0.1),
             dy = random_floats(std::size_t(n * out), 88);
  Backend& be = gpu_bf16();
  Array dx(be, x), dw(be, w), ddy(be, dy);
  auto y = poisoned(be, n * out), dxo = poisoned(be, n * in);
  DeviceArray<uint16_t> y16(be, n * out), dx16(be, n * in);
  be.matmul({y->data(), n, out}, {dx.data(), n, in}, {dw.data(), out, in});
  be.matmul_bf16_output(y16.data(), {dx.data(), n, in}, {dw.data(), out, in});
  be.matmul_backward_input({dxo->data(), n, in}, {ddy.data(), n, out}, {dw.data(), out, in}, false);
  be.matmul_backward_input_bf16_output(dx16.data(), {ddy.data(), n, out}, {dw.data(), out, in});
  // The same bf16 product; cuBLAS may sum in another order for another output type.
  auto near = [](const std::vector<float>& got, const std::vector<float>& want) {
    int64_t bad = 0;
    for (std::size_t i = 0; i < want.size(); ++i)
      if (!(std::abs(got[i] - want[i]) <= 8e-3f * std::abs(want[i]) + 1e-4f)) ++bad;
    return bad;
  };
  CHECK(near(widen(y16.download()), y->download()) == 0);
  CHECK(near(widen(dx16.download()), dxo->download()) == 0);
}

TEST_CASE("shadows: RMSNorm's bf16 shadows are its fp32 outputs rounded, on every path") {
  // d 512, 64 and 100: the register paths (32 lanes per row, 16 lanes, lanes
  // left idle); d 1030 (not a multiple of 4): the warp-per-row path.
  for (int64_t d : {int64_t(512), int64_t(64), int64_t(100), int64_t(1030)}) {
    CAPTURE(d);
    const int64_t rows = 300;
    const auto x = random_floats(std::size_t(rows * d), 82),
               gain = random_floats(std::size_t(d), 83, 0.2, 1.0);
    const auto dout = random_floats(std::size_t(rows * d), 84),
               dx0 = random_floats(std::size_t(rows * d), 85);
    Backend& be = gpu_bf16();
    Array dxin(be, x), dgain_in(be, gain), ddout(be, dout), dx(be, dx0);
    Array dgain(be, std::vector<float>(std::size_t(d), 0.0f));
    auto out = poisoned(be, rows * d), rstd = poisoned(be, rows);
    DeviceArray<uint16_t> out16(be, rows * d), dx16(be, rows * d);
    be.rmsnorm_forward({out->data(), rows, d}, rstd->data(), {dxin.data(), rows, d}, dgain_in.data(), 1e-5f,
                       out16.data());
    be.rmsnorm_backward({dx.data(), rows, d}, dgain.data(), {ddout.data(), rows, d}, {dxin.data(), rows, d},
                        dgain_in.data(), rstd->data(), dx16.data(), /*accumulate_dx=*/true);
    CHECK(widen(out16.download()) == round_bf16(out->download()));
    CHECK(widen(dx16.download()) == round_bf16(dx.download()));
    // And the shadow changes nothing else: the same call without one.
    auto out_plain = poisoned(be, rows * d), rstd_plain = poisoned(be, rows);
    Array dx_plain(be, dx0), dgain_plain(be, std::vector<float>(std::size_t(d), 0.0f));
    be.rmsnorm_forward({out_plain->data(), rows, d}, rstd_plain->data(), {dxin.data(), rows, d},
                       dgain_in.data(), 1e-5f);
    be.rmsnorm_backward({dx_plain.data(), rows, d}, dgain_plain.data(), {ddout.data(), rows, d},
                        {dxin.data(), rows, d}, dgain_in.data(), rstd_plain->data(), nullptr,
                        /*accumulate_dx=*/true);
    CHECK(out_plain->download() == out->download());
    CHECK(dx_plain.download() == dx.download());
    CHECK(dgain_plain.download() == dgain.download());
  }
}
