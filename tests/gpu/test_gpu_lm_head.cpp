// The tied LM head, forward then backward (cross-entropy, then dx and
// dtable): the CUDA backend's bf16 logits and bf16 dlogits in place (large
// logits) against the CPU's fp32, its fp32 logits (small ones, and fp32
// mode) likewise. Rows that do and do not allow 16-byte loads, and ignored
// targets.
#include "tests/gpu/gpu_test_support.hpp"

using namespace livs::evaluator;
using namespace livs::evaluator::gpu_testing;

namespace {

using Array = DeviceArray<float>;

void check_lm_head(int64_t rows, int64_t vocab, int64_t width, Backend& device, double tolerance) {
  CAPTURE(rows);
  CAPTURE(vocab);
  CAPTURE(width);
  const auto x = random_floats(std::size_t(rows * width), 62);
  const auto table = random_floats(std::size_t(vocab * width), 63, 0.3);
  // Accumulators start at about the size of what is added to them, so a wrong
  // gradient cannot hide behind them (and an overwrite instead of += shows).
  const auto dx0 = random_floats(std::size_t(rows * width), 64, 0.1 / double(rows));
  const auto dtable0 =
      random_floats(std::size_t(vocab * width), 65, 1.0 / (double(vocab) * std::sqrt(double(rows))));
  auto targets = random_tokens(std::size_t(rows), int(vocab), 66);
  for (std::size_t i = 0; i < targets.size(); i += 7) targets[i] = -1;  // ignored: no loss, no gradient
  const float scale = 1.0f / float(rows);
  compare_backends(
      "lm head",
      [&](Backend& be) {
        Array dx_in(be, x), dtab(be, table), dx(be, dx0), dtable(be, dtable0);
        DeviceArray<int32_t> dtargets(be, targets);
        auto logits = poisoned(be, be.lm_head_logits_floats(rows, vocab));
        auto losses = poisoned(be, rows), lse = poisoned(be, rows);
        be.lm_head_forward(losses->data(), lse->data(), {logits->data(), rows, vocab},
                           {dx_in.data(), rows, width}, {dtab.data(), vocab, width}, dtargets.data());
        be.lm_head_backward({dx.data(), rows, width}, {dtable.data(), vocab, width},
                            {logits->data(), rows, vocab}, {dx_in.data(), rows, width},
                            {dtab.data(), vocab, width}, lse->data(), dtargets.data(), scale);
        return Outputs{{"losses", losses->download()},
                       {"lse", lse->download()},
                       {"dx", dx.download()},
                       {"dtable", dtable.download()}};
      },
      tolerance, device);
}

}  // namespace

TEST_CASE("lm head: bf16 logits and dlogits (large logits) against the CPU") {
  CHECK(gpu_bf16().bf16_logits(2048, 50304));
  CHECK(gpu_bf16().lm_head_logits_floats(2048, 50304) == 2048 * 50304 / 2);
  check_lm_head(2048, 50304, 32, gpu_bf16(), kBf16GemmTolerance);  // 16-byte loads
  check_lm_head(4097, 4099, 16, gpu_bf16(), kBf16GemmTolerance);   // odd rows of 8198 bytes: scalar loads
}

TEST_CASE("lm head: small logits stay fp32 in bf16 mode, and fp32 mode, against the CPU") {
  CHECK_FALSE(gpu_bf16().bf16_logits(512, 256));
  CHECK(gpu_bf16().lm_head_logits_floats(512, 256) == 512 * 256);
  check_lm_head(37, 300, 24, gpu_bf16(), kBf16GemmTolerance);
  check_lm_head(512, 256, 64, gpu_bf16(), kBf16GemmTolerance);
  CHECK_FALSE(gpu().bf16_logits(2048, 50304));
  check_lm_head(37, 300, 24, gpu(), 1e-4);
  check_lm_head(512, 256, 64, gpu(), 1e-4);
}
