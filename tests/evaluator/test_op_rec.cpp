// rec (Griffin's recurrent block with the RG-LRU): forward against a double
// reference written from the equations, backward against its finite
// differences, decode against the parallel forward, cache size, the
// initialisation of lambda, and the griffin preset training.
#include <doctest/doctest.h>

#include "tests/evaluator/scan_op_harness.hpp"

using namespace livs::evaluator;
using namespace livs::evaluator::testing;
namespace genome = livs::genome;

namespace {

genome::OpSpec rec_spec(int d, int width, int kernel, bool differential = false) {
  genome::OpGene op;
  op.cls = genome::LivClass::rec;
  op.rec.width = width;
  op.rec.conv_kernel = kernel;
  op.differential = differential;
  return decoded_op(op, d);
}

// u = conv(x W_x^T) + bias; r = sigmoid(u W_a^T + b_a); i = sigmoid(u W_i^T + b_i);
// log a = -8 r softplus(lambda); h = a h + sqrt(1 - a^2) i u; y = (gelu(x W_y^T) * h) W_out^T,
// with h = h_1 - (0.8 + diff_lambda) h_2 over 2W recurrent channels when differential.
Reference rec_reference(int64_t d, int64_t width, int64_t k, bool differential = false) {
  return [=](const std::vector<double>& x, const Weights& w, int batch, int seq) {
    const int64_t wi = differential ? 2 * width : width;
    const auto xb = ref::linear(x, w.at("w_x"), d, wi);
    const auto u = ref::causal_conv(xb, w.at("conv"), &w.at("conv_bias"), batch, seq, wi, k);
    const auto ga = ref::linear(u, w.at("w_a"), wi, wi);
    const auto gi = ref::linear(u, w.at("w_i"), wi, wi);
    const auto& lambda = w.at("lambda");
    std::vector<double> h(u.size());
    for (int b = 0; b < batch; ++b)
      for (int64_t c = 0; c < wi; ++c) {
        double state = 0.0;
        for (int t = 0; t < seq; ++t) {
          const int64_t e = (int64_t(b) * seq + t) * wi + c;
          const double r = ref::sigmoid(ga[e] + w.at("b_a")[c]), i = ref::sigmoid(gi[e] + w.at("b_i")[c]);
          const double a = std::exp(-8.0 * r * ref::softplus(lambda[c]));
          state = a * state + std::sqrt(1.0 - a * a) * (i * u[e]);
          h[e] = state;
        }
      }
    if (differential) h = ref::halves_difference(h, w.at("diff_lambda"));
    const auto yb = ref::linear(x, w.at("w_y"), d, width);
    for (std::size_t e = 0; e < h.size(); ++e) h[e] *= ref::gelu_tanh(yb[e]);
    return ref::linear(h, w.at("w_out"), width, d);
  };
}

}  // namespace

TEST_CASE("rec forward and backward against a double reference: width 12, conv 4") {
  check_against_reference(rec_spec(8, 12, 4), 8, 2, 6, rec_reference(8, 12, 4));
}

TEST_CASE("rec forward and backward against a double reference: width 40 over two channel blocks, conv 2") {
  check_against_reference(rec_spec(16, 40, 2), 16, 1, 7, rec_reference(16, 40, 2));
}

TEST_CASE("rec forward and backward against a double reference: conv 1, three sequences") {
  check_against_reference(rec_spec(8, 8, 1), 8, 3, 4, rec_reference(8, 8, 1));
}

TEST_CASE("rec differential forward and backward against a double reference") {
  check_against_reference(rec_spec(8, 12, 3, true), 8, 2, 5, rec_reference(8, 12, 3, true));
}

TEST_CASE("rec decode equals the parallel forward, the state is W + (k-1) W") {
  check_decode_equals_forward(rec_spec(16, 24, 4), 16, 3, 10);
  check_decode_equals_forward(rec_spec(8, 40, 3), 8, 2, 2);        // fewer tokens than the kernel
  check_decode_equals_forward(rec_spec(8, 16, 4, true), 8, 2, 6);  // differential: 2W channels of state
}

TEST_CASE("rec: lambda starts with the decay at r = 1 in [0.9, 0.999]") {
  const auto spec = rec_spec(16, 64, 4);
  const ScanHarness h(spec, 16, {1, 1}, 11, false);  // the training initialisation alone
  const auto& params = h.params;
  const float* values = h.values;
  double lo = 1.0, hi = 0.0;
  for (const auto& e : params.entries()) {
    if (e.name != "slot0.op0.lambda") continue;
    for (int64_t i = 0; i < e.numel; ++i) {
      const double a = std::exp(-8.0 * ref::softplus(values[e.offset + i]));
      lo = std::min(lo, a);
      hi = std::max(hi, a);
    }
  }
  CHECK(lo >= 0.9 - 1e-6);
  CHECK(hi <= 0.999 + 1e-6);
  CHECK(hi - lo > 0.05);  // spread over the range, not one value
}

TEST_CASE("rec: the same bits with one thread and with all of them") {
  check_thread_count_independent(rec_spec(16, 72, 4, true), 16, 3, 17);
}

TEST_CASE("rec: the griffin preset trains") { check_preset_trains("griffin"); }
