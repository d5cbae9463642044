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

genome::OpSpec gconv_spec(int d, int kernel, bool differential = false) {
  genome::OpGene op;
  op.cls = genome::LivClass::gconv;
  op.gconv.kernel = kernel;
  op.differential = differential;
  return decoded_op(op, d);
}

// [B; C; x~] = x W_in^T (Ci channels each), m = C * conv_k(B * x~),
// y = m W_out^T, or (m_1 - (0.8 + diff_lambda) m_2) W_out^T when differential (Ci = 2D).
Reference gconv_reference(int64_t d, int64_t k, bool differential = false) {
  return [d, k, differential](const std::vector<double>& x, const Weights& w, int batch, int seq) {
    const int64_t ci = differential ? 2 * d : d;
    const auto b = ref::linear(x, w.at("w_in"), d, ci, 0);
    const auto c = ref::linear(x, w.at("w_in"), d, ci, ci);
    const auto xt = ref::linear(x, w.at("w_in"), d, ci, 2 * ci);
    std::vector<double> bx(b.size());
    for (std::size_t i = 0; i < b.size(); ++i) bx[i] = b[i] * xt[i];
    auto m = ref::causal_conv(bx, w.at("conv"), nullptr, batch, seq, ci, k);
    for (std::size_t i = 0; i < m.size(); ++i) m[i] *= c[i];
    if (differential) m = ref::halves_difference(m, w.at("diff_lambda"));
    return ref::linear(m, w.at("w_out"), d, d);
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

TEST_CASE("gconv differential forward and backward against a double reference") {
  check_against_reference(gconv_spec(8, 3, true), 8, 2, 5, gconv_reference(8, 3, true));
}

TEST_CASE("gconv decode equals the parallel forward, the state is (k-1) x D") {
  check_decode_equals_forward(gconv_spec(16, 3), 16, 3, 9);
  check_decode_equals_forward(gconv_spec(8, 6), 8, 2, 4);        // fewer tokens than the kernel
  check_decode_equals_forward(gconv_spec(8, 1), 8, 2, 3);        // no state at all
  check_decode_equals_forward(gconv_spec(8, 4, true), 8, 2, 6);  // differential: 2D channels of state
}

TEST_CASE("gconv: the same bits with one thread and with all of them") {
  check_thread_count_independent(gconv_spec(72, 5, true), 72, 3, 17);
}

TEST_CASE("gconv: the lfm2 preset trains") { check_preset_trains("lfm2"); }

TEST_CASE("gconv: the hyena-like preset (kernel 64) trains") { check_preset_trains("hyena-like"); }
