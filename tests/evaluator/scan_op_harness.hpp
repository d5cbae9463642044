#pragma once
// Test harness for the convolution and scan operators (rec, ssm, gconv).
//
// Each operator's test file holds an independent double-precision
// re-implementation of its forward, written from the equations. The harness
// checks:
// - the fp32 forward against that reference: |y - y_ref| <= 1e-4 * max|y_ref| + 1e-5;
// - the fp32 backward (input and every weight) against central differences of
//   the DOUBLE reference (eps 1e-4, so truncation is ~1e-8 relative and fp32
//   rounding of the evaluator is the only error left):
//   |a - n| <= 2e-3 * (|a| + |n|) + 2e-4 * max|a| over the tensor;
// - decode, token by token, against the parallel forward, and the planned
//   decode state against decode_state() and the ModelSpec's analytic state.
// Operator specs come from genome::decode of a one-slot genome, so the
// analytic state is the one the search reports as cache size.
#include <doctest/doctest.h>
#include <tbb/global_control.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "evaluator/cpu/cpu_backend.hpp"
#include "evaluator/operator.hpp"
#include "evaluator/trainer.hpp"
#include "genome/decode.hpp"
#include "genome/genome.hpp"
#include "genome/presets.hpp"
#include "tests/evaluator/gradient_check.hpp"

namespace livs::evaluator::testing {

// The ModelSpec operator of a one-slot genome holding `op`.
inline genome::OpSpec decoded_op(const genome::OpGene& op, int d_model) {
  genome::Genome g;
  g.d_model = d_model;
  g.slots.push_back({genome::FusionKind::none, {op}});
  return genome::decode(g).slots.at(0).ops.at(0);
}

// Weights by local name ("w_x"), in double.
using Weights = std::map<std::string, std::vector<double>>;
// y [batch * seq, d] from x [batch * seq, d], in double.
using Reference =
    std::function<std::vector<double>(const std::vector<double>& x, const Weights& w, int batch, int seq)>;

// Building blocks of the double references, rows [tokens, cols] row-major.
namespace ref {

inline double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
inline double softplus(double x) { return std::log1p(std::exp(x)); }
inline double silu(double x) { return x * sigmoid(x); }
inline double gelu_tanh(double x) {
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

// y = x W_block^T for rows [first, first + out) of w [*, in].
inline std::vector<double> linear(const std::vector<double>& x, const std::vector<double>& w, int64_t in,
                                  int64_t out, int64_t first = 0) {
  const int64_t n = int64_t(x.size()) / in;
  std::vector<double> y(n * out, 0.0);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t o = 0; o < out; ++o) {
      double s = 0.0;
      for (int64_t i = 0; i < in; ++i) s += x[t * in + i] * w[(first + o) * in + i];
      y[t * out + o] = s;
    }
  return y;
}

// Depthwise causal convolution of [batch, seq, channels] with w [channels, k]
// (PyTorch Conv1d, padding k-1, first seq outputs), optional bias.
inline std::vector<double> causal_conv(const std::vector<double>& x, const std::vector<double>& w,
                                       const std::vector<double>* bias, int batch, int seq, int64_t channels,
                                       int64_t k) {
  std::vector<double> y(x.size(), 0.0);
  for (int b = 0; b < batch; ++b)
    for (int t = 0; t < seq; ++t)
      for (int64_t c = 0; c < channels; ++c) {
        double s = bias ? (*bias)[c] : 0.0;
        for (int64_t j = 0; j < k; ++j) {
          const int64_t src = t - (k - 1) + j;
          if (src >= 0) s += w[c * k + j] * x[(int64_t(b) * seq + src) * channels + c];
        }
        y[(int64_t(b) * seq + t) * channels + c] = s;
      }
  return y;
}

// The differential form: [rows, 2W] -> [rows, W], y_1 - (0.8 + lambda) y_2.
inline std::vector<double> halves_difference(const std::vector<double>& in,
                                             const std::vector<double>& lambda) {
  const int64_t w = int64_t(lambda.size()), rows = int64_t(in.size()) / (2 * w);
  std::vector<double> out(rows * w);
  for (int64_t n = 0; n < rows; ++n)
    for (int64_t c = 0; c < w; ++c)
      out[n * w + c] = in[n * 2 * w + c] - (0.8 + lambda[c]) * in[n * 2 * w + w + c];
  return out;
}

}  // namespace ref

// One operator with its own parameters and arena. Weights start from the
// training initialisation plus noise, so that every term of the backward is
// exercised and the gates are away from their resting points (`noise` false:
// the initialisation alone, for the tests of the initialisation).
struct ScanHarness {
  CpuBackend backend;
  ParameterStore params;
  Arena arena{backend};
  std::unique_ptr<Operator> op;
  float *values = nullptr, *grads = nullptr;

  ScanHarness(const genome::OpSpec& spec, int d, const PlanShape& shape, uint64_t init_seed = 5,
              bool noise = true) {
    OpContext context(spec, 0, 0, d, 2, 1e-5, params);
    op = make_operator(context);
    arena.reserve(&values, params.count());
    arena.reserve(&grads, params.count());
    op->plan(arena, shape);
    arena.allocate();
    params.bind(values, grads);
    params.initialize(backend, init_seed, 2);
    if (!noise) return;
    const auto extra = random_vector(params.count(), 99);
    for (const auto& e : params.entries()) {
      const double scale = (e.init == Init::normal || e.init == Init::out_projection) ? 0.4 : 0.3;
      for (int64_t i = 0; i < e.numel; ++i) values[e.offset + i] += float(scale * extra[e.offset + i]);
    }
  }

  static std::string local_name(const std::string& full) { return full.substr(full.rfind('.') + 1); }

  Weights weights() const {
    Weights w;
    for (const auto& e : params.entries())
      w[local_name(e.name)] = std::vector<double>(values + e.offset, values + e.offset + e.numel);
    return w;
  }
};

inline void check_close_to_reference(const std::vector<float>& y, const std::vector<double>& ref) {
  double scale = 0.0, worst = 0.0;
  for (double v : ref) scale = std::max(scale, std::fabs(v));
  for (std::size_t i = 0; i < y.size(); ++i) worst = std::max(worst, std::fabs(double(y[i]) - ref[i]));
  CHECK_MESSAGE(worst <= 1e-4 * scale + 1e-5,
                "forward differs from the double reference by " << worst << " (scale " << scale << ")");
}

// `analytic` against central differences of `loss` at `point` (perturbed in place).
inline void check_against_differences(const std::string& what, std::vector<double>& point,
                                      const std::vector<float>& analytic, const std::function<double()>& loss,
                                      std::size_t max_points = 48) {
  constexpr double eps = 1e-4, rtol = 2e-3, atol = 2e-4;
  double scale = 0.0;
  for (float a : analytic) scale = std::max(scale, double(std::fabs(a)));
  REQUIRE_MESSAGE(scale > 0.0, what << ": the analytic gradient is all zero");
  const std::size_t stride = std::max<std::size_t>(1, analytic.size() / max_points);
  int failures = 0;
  for (std::size_t i = 0; i < analytic.size(); i += stride) {
    const double saved = point[i];
    point[i] = saved + eps;
    const double up = loss();
    point[i] = saved - eps;
    const double down = loss();
    point[i] = saved;
    const double numeric = (up - down) / (2.0 * eps), a = analytic[i];
    if (std::fabs(a - numeric) > rtol * (std::fabs(a) + std::fabs(numeric)) + atol * scale && failures++ < 5)
      MESSAGE(what << "[" << i << "]: analytic " << a << ", numeric " << numeric);
  }
  CHECK_MESSAGE(failures == 0, what << ": " << failures << " entries differ from finite differences");
}

// Forward against the reference, backward against its finite differences.
inline void check_against_reference(const genome::OpSpec& spec, int d, int batch, int seq,
                                    const Reference& reference) {
  ScanHarness h(spec, d, {batch, seq});
  const int64_t n = int64_t(batch) * seq * d;
  const auto x = random_vector(n, 31), r = random_vector(n, 32);
  std::vector<float> y(n), dx(n, 0.0f);
  h.op->forward(h.backend, x.data(), y.data());
  Weights w = h.weights();
  std::vector<double> xd(x.begin(), x.end());
  check_close_to_reference(y, reference(xd, w, batch, seq));

  std::fill(h.grads, h.grads + h.params.count(), 0.0f);
  h.op->backward(h.backend, x.data(), r.data(), dx.data());
  auto loss = [&] {
    const auto out = reference(xd, w, batch, seq);
    double s = 0.0;
    for (std::size_t i = 0; i < out.size(); ++i) s += out[i] * double(r[i]);
    return s;
  };
  check_against_differences("dx", xd, dx, loss);
  for (const auto& e : h.params.entries()) {
    std::vector<float> g(h.grads + e.offset, h.grads + e.offset + e.numel);
    check_against_differences(e.name, w[ScanHarness::local_name(e.name)], g, loss);
  }
}

// Decode token by token gives what the parallel forward gives, twice (after a
// state reset), and the state the operator holds is the analytic one.
inline void check_decode_equals_forward(const genome::OpSpec& spec, int d, int batch, int seq) {
  ScanHarness h(spec, d, {batch, seq, batch, seq});
  const int64_t n = int64_t(batch) * seq * d;
  auto x = random_vector(n, 41);
  std::vector<float> y(n), xt(int64_t(batch) * d), yt(int64_t(batch) * d);
  h.op->forward(h.backend, x.data(), y.data());
  for (int pass = 0; pass < 2; ++pass) {
    h.arena.reset_state();
    double worst = 0.0, scale = 0.0;
    for (int t = 0; t < seq; ++t) {
      for (int b = 0; b < batch; ++b)
        std::copy_n(x.data() + (int64_t(b) * seq + t) * d, d, xt.data() + int64_t(b) * d);
      h.op->decode_step(h.backend, xt.data(), yt.data(), t);
      for (int b = 0; b < batch; ++b)
        for (int i = 0; i < d; ++i) {
          const float want = y[(int64_t(b) * seq + t) * d + i];
          worst = std::max(worst, double(std::fabs(yt[int64_t(b) * d + i] - want)));
          scale = std::max(scale, double(std::fabs(want)));
        }
    }
    CHECK_MESSAGE(worst <= 1e-5 * scale, "pass " << pass << ": decode differs from forward by " << worst);
  }
  CHECK(h.op->decode_state().elements(seq) == spec.state.elements(seq));
  CHECK(h.arena.state_elements() == batch * spec.state.elements(seq));
}

// Forward, backward and decode give the same bits with one thread and with
// every thread (the determinism rule of the kernel interface).
inline void check_thread_count_independent(const genome::OpSpec& spec, int d, int batch, int seq) {
  auto run = [&](int threads) {
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
    ScanHarness h(spec, d, {batch, seq, batch, seq});
    const int64_t n = int64_t(batch) * seq * d;
    const auto x = random_vector(n, 51), r = random_vector(n, 52);
    std::vector<float> y(n), dx(n, 0.0f), yt(int64_t(batch) * d);
    h.op->forward(h.backend, x.data(), y.data());
    std::fill(h.grads, h.grads + h.params.count(), 0.0f);
    h.op->backward(h.backend, x.data(), r.data(), dx.data());
    std::vector<float> all = y;
    all.insert(all.end(), dx.begin(), dx.end());
    all.insert(all.end(), h.grads, h.grads + h.params.count());
    h.arena.reset_state();
    for (int t = 0; t < 3; ++t) {
      h.op->decode_step(h.backend, x.data() + int64_t(t) * batch * d, yt.data(), t);
      all.insert(all.end(), yt.begin(), yt.end());
    }
    return all;
  };
  const auto one = run(1), many = run(int(std::max(2u, std::thread::hardware_concurrency())));
  REQUIRE(one.size() == many.size());
  int64_t differing = 0;
  for (std::size_t i = 0; i < one.size(); ++i)
    differing += std::memcmp(&one[i], &many[i], sizeof(float)) != 0;
  CHECK_MESSAGE(differing == 0, differing << " of " << one.size() << " values depend on the thread count");
}

// A genome preset at d_model 32, one mixer + MLP pair, trains on the sample
// corpus for 40 small steps: the status is ok, the loss falls well below its
// start (ln 256 = 5.5 at initialisation) and the validation perplexity is
// below the uniform 256.
inline void check_preset_trains(const std::string& name) {
  static const std::vector<uint16_t> corpus = [] {
    std::ifstream in(LIVSEARCH_SOURCE_DIR "/data/kjv.txt", std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)), {});
    text.resize(std::min<std::size_t>(text.size(), 200000));
    return std::vector<uint16_t>(text.begin(), text.end());
  }();
  REQUIRE_MESSAGE(corpus.size() == 200000, "data/kjv.txt is missing or short");
  const auto spec = genome::decode(genome::preset(name, 32, 1));
  TrainSettings s;
  s.steps = 40;
  s.batch_size = 4;
  s.seq_len = 32;
  s.warmup_steps = 4;
  s.learning_rate = 1e-2;
  s.eval_tokens = 2048;
  CpuBackend backend;
  const std::span<const uint16_t> all(corpus);
  const auto report = train_and_evaluate(spec, s, all.first(180000), all.subspan(180000), 3, backend);
  REQUIRE_MESSAGE(report.status == TrainStatus::ok, name << ": " << report.error);
  const auto& l = report.train_loss;
  const double first = l.front();
  const double last = std::accumulate(l.end() - 5, l.end(), 0.0) / 5.0;
  MESSAGE(name << ": loss " << first << " -> " << last << ", validation perplexity " << report.perplexity);
  CHECK(last < first - 1.0);
  CHECK(report.perplexity < 256.0);
}

}  // namespace livs::evaluator::testing
