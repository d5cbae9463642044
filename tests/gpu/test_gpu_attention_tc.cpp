// The tensor-core attention (attention_tc_*.cu: bf16 operands, fp32
// accumulation and softmax), which a bf16 CudaBackend runs for head_dim 16,
// 32, 64 and 128, against the CPU backend in fp32. Inputs are fresh random
// values per shape; outputs start as NaN; gradients accumulate into random
// starting values, which the comparisons subtract so that the stated
// tolerance measures the gradient itself.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>
#include <string>

#include "tests/gpu/gpu_test_support.hpp"

using namespace livs::evaluator;
using namespace livs::evaluator::gpu_testing;

namespace {

using Array = DeviceArray<float>;

// Stated tolerances (relative norm). q, k, v, dout and the probabilities are
// rounded to bf16 (8-bit mantissa, relative error 2^-9) before each product;
// sums are fp32. The log-sum-exp only sees the rounding of the scores.
constexpr double kOutTolerance = 2e-2;
constexpr double kGradientTolerance = 2e-2;
constexpr double kLseTolerance = 5e-3;
// Sharp attention (scores of several units): the bf16 rounding of q and k
// moves each score by about 2^-9 of its size, so p and the gradients move more.
constexpr double kSharpGradientTolerance = 5e-2;
constexpr double kSingleKeyResidue = 5e-2;  // seq 1: RMS of dq, dk, whose exact value is 0 (see below)

// {batch, seq, heads, kv_heads, head_dim, window, scale}; scale is set below.
const AttentionShape kShapes[] = {
    {1, 1, 2, 2, 16, 0, 0},     {2, 37, 4, 4, 16, 16, 0},    {3, 128, 8, 2, 16, 0, 0},
    {1, 200, 4, 1, 32, 0, 0},   {2, 37, 2, 2, 32, 0, 0},     {3, 200, 8, 2, 32, 100, 0},
    {1, 1024, 4, 4, 32, 0, 0},  {2, 1024, 2, 1, 32, 100, 0}, {1, 1, 4, 1, 64, 0, 0},
    {2, 128, 4, 4, 64, 16, 0},  {1, 200, 8, 2, 64, 0, 0},    {1, 1024, 2, 2, 64, 16, 0},
    {2, 37, 4, 1, 128, 0, 0},   {1, 200, 2, 2, 128, 100, 0}, {3, 128, 8, 2, 128, 16, 0},
    {1, 1024, 4, 1, 128, 0, 0},
};

AttentionShape scaled(AttentionShape s) {
  s.scale = float(1.0 / std::sqrt(double(s.head_dim)));
  return s;
}

int64_t q_count(const AttentionShape& s) { return int64_t(s.batch) * s.seq * s.heads * s.head_dim; }
int64_t kv_count(const AttentionShape& s) { return int64_t(s.batch) * s.seq * s.kv_heads * s.head_dim; }
int64_t row_count(const AttentionShape& s) { return int64_t(s.batch) * s.heads * s.seq; }

// The per-shape seed: every shape gets fresh inputs.
uint64_t shape_seed(const AttentionShape& s, uint64_t salt) {
  return livs::derive_seed(salt, std::to_string(s.batch) + "/" + std::to_string(s.seq) + "/" +
                                     std::to_string(s.heads) + "/" + std::to_string(s.kv_heads) + "/" +
                                     std::to_string(s.head_dim) + "/" + std::to_string(s.window));
}

struct Inputs {
  std::vector<float> q, k, v, dout;
  explicit Inputs(const AttentionShape& s)
      : q(random_floats(q_count(s), shape_seed(s, 1))),
        k(random_floats(kv_count(s), shape_seed(s, 2))),
        v(random_floats(kv_count(s), shape_seed(s, 3))),
        dout(random_floats(q_count(s), shape_seed(s, 4))) {}
};

Outputs run_forward(Backend& be, const AttentionShape& s, const Inputs& in) {
  Array q(be, in.q), k(be, in.k), v(be, in.v);
  auto out = poisoned(be, q_count(s)), lse = poisoned(be, row_count(s));
  be.attention_forward(out->data(), lse->data(), q.data(), k.data(), v.data(), s);
  return Outputs{{"out", out->download()}, {"lse", lse->download()}};
}

// dq, dk, dv minus their random starting values. out and lse come from the
// CPU forward on both backends, so this checks the backward alone.
Outputs run_backward(Backend& be, const AttentionShape& s, const Inputs& in, const std::vector<float>& out,
                     const std::vector<float>& lse) {
  const auto dq_start = random_floats(q_count(s), shape_seed(s, 5), 0.5),
             dk_start = random_floats(kv_count(s), shape_seed(s, 6), 0.5),
             dv_start = random_floats(kv_count(s), shape_seed(s, 7), 0.5);
  Array q(be, in.q), k(be, in.k), v(be, in.v), dout(be, in.dout), o(be, out), l(be, lse);
  Array dq(be, dq_start), dk(be, dk_start), dv(be, dv_start);
  be.attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(), v.data(), o.data(),
                        l.data(), s, /*accumulate=*/true);
  auto minus = [](std::vector<float> got, const std::vector<float>& start) {
    for (std::size_t i = 0; i < got.size(); ++i) got[i] -= start[i];
    return got;
  };
  // And written over NaN-filled buffers (as the model calls it): every element must be written.
  auto dq_w = poisoned(be, q_count(s)), dk_w = poisoned(be, kv_count(s)), dv_w = poisoned(be, kv_count(s));
  be.attention_backward(dq_w->data(), dk_w->data(), dv_w->data(), dout.data(), q.data(), k.data(), v.data(),
                        o.data(), l.data(), s, /*accumulate=*/false);
  return Outputs{{"dq", minus(dq.download(), dq_start)}, {"dk", minus(dk.download(), dk_start)},
                 {"dv", minus(dv.download(), dv_start)}, {"dq written", dq_w->download()},
                 {"dk written", dk_w->download()},       {"dv written", dv_w->download()}};
}

std::string shape_name(const AttentionShape& s) {
  std::ostringstream name;  // (not "b" + std::to_string(..): GCC 12 raises a false -Wrestrict there)
  name << "b" << s.batch << " T" << s.seq << " H" << s.heads << "/" << s.kv_heads << " hd" << s.head_dim
       << " w" << s.window;
  return name.str();
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("attention tc forward against the CPU: head dims 16-128, tails, windows, GQA") {
  double worst_out = 0.0, worst_lse = 0.0;
  for (AttentionShape s : kShapes) {
    s = scaled(s);
    const std::string name = "attention tc forward " + shape_name(s);
    const Inputs in(s);
    const auto want = run_forward(cpu(), s, in), got = run_forward(gpu_bf16(), s, in);
    check_close(name + " out", got[0].second, want[0].second, kOutTolerance);
    check_close(name + " lse", got[1].second, want[1].second, kLseTolerance);
    worst_out = std::max(worst_out, relative_error(got[0].second, want[0].second));
    worst_lse = std::max(worst_lse, relative_error(got[1].second, want[1].second));
  }
  MESSAGE("worst relative errors: out " << worst_out << ", lse " << worst_lse);
}

namespace {

// q_scale > 1 sharpens the attention (rows that sit mostly on one key, as in
// a trained model), where ds = p (dp - delta) is a small difference.
void check_backward(const AttentionShape& shape, double q_scale, double tolerance, double& worst) {
  const AttentionShape s = scaled(shape);
  const std::string name = "attention tc backward " + shape_name(s) + (q_scale != 1.0 ? " sharp" : "");
  Inputs in(s);
  for (float& x : in.q) x = float(x * q_scale);
  std::vector<float> out(q_count(s)), lse(row_count(s));
  cpu().attention_forward(out.data(), lse.data(), in.q.data(), in.k.data(), in.v.data(), s);
  const auto want = run_backward(cpu(), s, in, out, lse), got = run_backward(gpu_bf16(), s, in, out, lse);
  for (std::size_t i = 0; i < want.size(); ++i) {
    if (s.seq == 1 && want[i].first != "dv") {
      // One key: p = 1 and ds = p (dp - delta) = 0, so the exact dq and dk are
      // 0 and a relative norm means nothing. The bf16 rounding of v in
      // dp = dout . v (out, hence delta, comes from the fp32 CPU forward
      // here) leaves a residue of order 2^-9 |dout| |v| scale |k|.
      double squares = 0.0;
      for (std::size_t e = 0; e < want[i].second.size(); ++e)
        squares += std::pow(double(got[i].second[e]) - double(want[i].second[e]), 2);
      const double rms = std::sqrt(squares / double(want[i].second.size()));
      INFO(name << " " << want[i].first << ": RMS error " << rms << " against an exact 0, bound "
                << kSingleKeyResidue);
      CHECK(rms <= kSingleKeyResidue);
    } else {
      check_close(name + " " + want[i].first, got[i].second, want[i].second, tolerance);
      worst = std::max(worst, relative_error(got[i].second, want[i].second));
    }
  }
}

}  // namespace

TEST_CASE("attention tc backward against the CPU: accumulates dq, dk, dv") {
  double worst = 0.0;
  for (const AttentionShape& s : kShapes) check_backward(s, 1.0, kGradientTolerance, worst);
  MESSAGE("worst relative error of dq, dk, dv: " << worst);
}

TEST_CASE("attention tc backward against the CPU with sharp attention (q x 4)") {
  double worst = 0.0;
  for (const AttentionShape& s :
       {AttentionShape{2, 128, 4, 2, 16, 0, 0}, AttentionShape{1, 200, 8, 2, 32, 16, 0},
        AttentionShape{2, 1024, 2, 2, 64, 0, 0}, AttentionShape{1, 200, 2, 1, 128, 0, 0}})
    check_backward(s, 4.0, kSharpGradientTolerance, worst);
  MESSAGE("worst relative error of dq, dk, dv: " << worst);
}

TEST_CASE("attention tc forward and backward give the same bits on every run") {
  for (AttentionShape s :
       {AttentionShape{2, 200, 8, 2, 32, 0, 0}, AttentionShape{1, 300, 4, 1, 128, 100, 0}}) {
    s = scaled(s);
    INFO(shape_name(s));
    const Inputs in(s);
    const auto forward_a = run_forward(gpu_bf16(), s, in), forward_b = run_forward(gpu_bf16(), s, in);
    CHECK(same_bits(forward_a[0].second, forward_b[0].second));
    CHECK(same_bits(forward_a[1].second, forward_b[1].second));
    const auto a = run_backward(gpu_bf16(), s, in, forward_a[0].second, forward_a[1].second);
    const auto b = run_backward(gpu_bf16(), s, in, forward_a[0].second, forward_a[1].second);
    for (std::size_t i = 0; i < a.size(); ++i) {
      INFO(a[i].first);
      CHECK(same_bits(a[i].second, b[i].second));
    }
  }
}

// A bf16 backend takes the tensor-core path where it applies (its results
// then differ from the exact fp32 kernels in the low bits) and the fp32 SIMT
// kernels elsewhere (the same bits as an fp32 backend).
TEST_CASE("attention tc dispatch: tensor cores for head dims 16-128 in bf16, exact fp32 kernels otherwise") {
  for (int head_dim : {32, 48}) {
    const AttentionShape s = scaled({1, 96, 2, 2, head_dim, 0, 0});
    INFO(shape_name(s));
    const Inputs in(s);
    const auto exact = run_forward(gpu(), s, in), mixed = run_forward(gpu_bf16(), s, in);
    std::vector<float> out(q_count(s)), lse(row_count(s));
    cpu().attention_forward(out.data(), lse.data(), in.q.data(), in.k.data(), in.v.data(), s);
    const auto exact_grad = run_backward(gpu(), s, in, out, lse),
               mixed_grad = run_backward(gpu_bf16(), s, in, out, lse);
    const bool tensor_cores = head_dim != 48;
    CHECK(same_bits(exact[0].second, mixed[0].second) != tensor_cores);
    CHECK(same_bits(exact_grad[0].second, mixed_grad[0].second) != tensor_cores);
    CHECK(same_bits(exact_grad[1].second, mixed_grad[1].second) != tensor_cores);
  }
}

// Sequence lengths one short of, at and one past the tile sizes the kernels
// use (64 and 128 rows; 32-row tiles at head_dim 128), with windows that end
// on a tile edge: every masked-tile and tail path against the CPU.
TEST_CASE("attention tc forward and backward at tile-size boundaries") {
  double worst = 0.0;
  for (int head_dim : {32, 64, 128})
    for (int seq : {31, 63, 64, 65, 127, 128, 129, 257})
      for (int window : {0, 64}) {
        const AttentionShape s = scaled({1, seq, 4, 2, head_dim, window, 0});
        const std::string name = "attention tc boundary " + shape_name(s);
        const Inputs in(s);
        const auto want = run_forward(cpu(), s, in), got = run_forward(gpu_bf16(), s, in);
        check_close(name + " out", got[0].second, want[0].second, kOutTolerance);
        check_close(name + " lse", got[1].second, want[1].second, kLseTolerance);
        check_backward(s, 1.0, kGradientTolerance, worst);
      }
  MESSAGE("worst relative error of dq, dk, dv: " << worst);
}
