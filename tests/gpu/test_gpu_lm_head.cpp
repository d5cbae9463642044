// The LM head's backward (cross-entropy gradient, then dx and dtable): the
// CUDA backend's bf16 dlogits in row chunks against the CPU's fp32 in place,
// with one chunk and with many (a chunk size that does not divide the rows).
#include "tests/gpu/gpu_test_support.hpp"

using namespace livs::evaluator;
using namespace livs::evaluator::gpu_testing;

namespace {

using Array = DeviceArray<float>;

void check_lm_head(int64_t rows, int64_t vocab, int64_t width, std::size_t chunk_bytes) {
  CAPTURE(rows);
  CAPTURE(vocab);
  CAPTURE(chunk_bytes);
  const auto logits = random_floats(std::size_t(rows * vocab), 61, 2.0);
  const auto x = random_floats(std::size_t(rows * width), 62);
  const auto table = random_floats(std::size_t(vocab * width), 63, 0.1);
  // Accumulators start at about the size of what is added to them, so a wrong
  // gradient cannot hide behind them (and an overwrite instead of += shows).
  const auto dx0 = random_floats(std::size_t(rows * width), 64, 0.1 / double(rows));
  const auto dtable0 =
      random_floats(std::size_t(vocab * width), 65, 1.0 / (double(vocab) * std::sqrt(double(rows))));
  const auto targets = random_tokens(std::size_t(rows), int(vocab), 66);
  const float scale = 1.0f / float(rows);
  gpu_bf16().set_lm_head_chunk_bytes(chunk_bytes);
  compare_backends(
      "lm head backward",
      [&](Backend& be) {
        Array dlogits(be, logits), dx_in(be, x), dtab(be, table), dx(be, dx0), dtable(be, dtable0);
        DeviceArray<int32_t> dtargets(be, targets);
        auto losses = poisoned(be, rows), lse = poisoned(be, rows);
        be.cross_entropy_forward(losses->data(), lse->data(), {dlogits.data(), rows, vocab}, dtargets.data());
        be.lm_head_backward({dx.data(), rows, width}, {dtable.data(), vocab, width},
                            {dlogits.data(), rows, vocab}, {dx_in.data(), rows, width},
                            {dtab.data(), vocab, width}, lse->data(), dtargets.data(), scale);
        return Outputs{{"dx", dx.download()}, {"dtable", dtable.download()}};
      },
      kBf16GemmTolerance, gpu_bf16());
  gpu_bf16().set_lm_head_chunk_bytes(std::size_t(256) << 20);
}

}  // namespace

TEST_CASE("lm head backward: bf16 dlogits in one chunk against the CPU") {
  check_lm_head(37, 300, 24, std::size_t(256) << 20);
  check_lm_head(512, 256, 64, std::size_t(256) << 20);
}

TEST_CASE("lm head backward: bf16 dlogits in many chunks (the last one short) against the CPU") {
  // 7 rows of 300 bf16 values per chunk: 1000 rows give 142 full chunks and one of 6.
  check_lm_head(1000, 300, 32, 7 * 300 * 2);
  check_lm_head(2048, 50304, 32, std::size_t(64) << 20);
}
