// gconv (LFM2 double-gated short convolution): forward against a double
// reference written from the equations, backward against its finite
// differences, decode against the parallel forward, cache size, and the
// lfm2 and hyena-like presets training.
#include <doctest/doctest.h>

#include "tests/evaluator/scan_op_harness.hpp"

using namespace livs::evaluator;
using namespace livs::evaluator::testing;
namespace genome = livs::genome;

namespace {

genome::OpSpec gconv_spec(int d, int kernel) {
  genome::OpGene op;
  op.cls = genome::LivClass::gconv;
  op.gconv.kernel = kernel;
  return decoded_op(op, d);
}

// [B; C; x~] = x W_in^T, y = (C * conv_k(B * x~)) W_out^T.
Reference gconv_reference(int64_t d, int64_t k) {
  return [d, k](const std::vector<double>& x, const Weights& w, int batch, int seq) {
    const auto b = ref::linear(x, w.at("w_in"), d, d, 0);
    const auto c = ref::linear(x, w.at("w_in"), d, d, d);
    const auto xt = ref::linear(x, w.at("w_in"), d, d, 2 * d);
    std::vector<double> bx(b.size());
    for (std::size_t i = 0; i < b.size(); ++i) bx[i] = b[i] * xt[i];
    auto z = ref::causal_conv(bx, w.at("conv"), nullptr, batch, seq, d, k);
    for (std::size_t i = 0; i < z.size(); ++i) z[i] *= c[i];
    return ref::linear(z, w.at("w_out"), d, d);
  };
}

}  // namespace

TEST_CASE("gconv forward and backward against a double reference: kernel 3") {
  check_against_reference(gconv_spec(8, 3), 8, 2, 5, gconv_reference(8, 3));
}

TEST_CASE("gconv forward and backward against a double reference: kernel longer than the sequence") {
  check_against_reference(gconv_spec(16, 7), 16, 1, 5, gconv_reference(16, 7));
}

TEST_CASE("gconv forward and backward against a double reference: kernel 1") {
  check_against_reference(gconv_spec(8, 1), 8, 3, 2, gconv_reference(8, 1));
}

TEST_CASE("gconv decode equals the parallel forward; the state is (k-1) x D") {
  check_decode_equals_forward(gconv_spec(16, 3), 16, 3, 9);
  check_decode_equals_forward(gconv_spec(8, 6), 8, 2, 4);  // fewer tokens than the kernel
  check_decode_equals_forward(gconv_spec(8, 1), 8, 2, 3);  // no state at all
}

TEST_CASE("gconv: the lfm2 preset trains") { check_preset_trains("lfm2"); }

TEST_CASE("gconv: the hyena-like preset (kernel 64) trains") { check_preset_trains("hyena-like"); }
