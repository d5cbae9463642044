// The chunked scans (RG-LRU and selective scan) on the GPU against the CPU
// backend, forward (from zero and from a state) and backward, on both of the
// GPU's paths: time-parallel (few sequences x channels: batch 1 at T 4096,
// batch 16 at T 128) and sequential over chunks (many channels), with sizes
// that are not multiples of the chunk, the warp or the state slices.
// Tolerance: relative norm 1e-5 (fp32; the carries across chunks are
// combined in another order than the CPU's step-by-step scan).
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "evaluator/cuda/kernels.hpp"
#include "tests/gpu/gpu_test_support.hpp"

using namespace livs::evaluator;
using namespace livs::evaluator::gpu_testing;

namespace {

using Array = DeviceArray<float>;

constexpr double kChunkedScanTolerance = 1e-5;

std::string describe(const ScanShape& s) {
  return "batch " + std::to_string(s.batch) + " seq " + std::to_string(s.seq) + " channels " +
         std::to_string(s.channels) + " state " + std::to_string(s.state);
}

std::unique_ptr<Array> accumulator(Backend& be, int64_t count, uint64_t seed) {
  return std::make_unique<Array>(be, random_floats(std::size_t(count), seed, 0.5));
}

void check_rglru(const ScanShape& s, bool splits_time, uint64_t seed) {
  CAPTURE(describe(s));
  CHECK(cuda::scan_splits_time(s) == splits_time);
  const int64_t n = int64_t(s.batch) * s.seq * s.channels, states = int64_t(s.batch) * s.channels;
  const auto u = random_floats(n, seed), ga = random_floats(n, seed + 1), gi = random_floats(n, seed + 2),
             lambda = random_floats(s.channels, seed + 3, 1.0, 2.0), dh = random_floats(n, seed + 4),
             h0 = random_floats(states, seed + 5);
  compare_backends(
      "rglru " + describe(s),
      [&](Backend& be) {
        Array du_in(be, u), dga_in(be, ga), dgi_in(be, gi), dlambda_in(be, lambda), ddh(be, dh),
            state(be, h0);
        auto h = poisoned(be, n), h_from_state = poisoned(be, n);
        auto du = accumulator(be, n, seed + 6), dga = accumulator(be, n, seed + 7),
             dgi = accumulator(be, n, seed + 8), dlambda = accumulator(be, s.channels, seed + 9);
        be.rglru_forward(h->data(), du_in.data(), dga_in.data(), dgi_in.data(), dlambda_in.data(), 8.0f,
                         nullptr, s);
        be.rglru_backward(du->data(), dga->data(), dgi->data(), dlambda->data(), ddh.data(), h->data(),
                          du_in.data(), dga_in.data(), dgi_in.data(), dlambda_in.data(), 8.0f, s);
        be.rglru_forward(h_from_state->data(), du_in.data(), dga_in.data(), dgi_in.data(), dlambda_in.data(),
                         8.0f, state.data(), s);
        return Outputs{{"h", h->download()},
                       {"h from a state", h_from_state->download()},
                       {"last state", state.download()},
                       {"du", du->download()},
                       {"dgate_a", dga->download()},
                       {"dgate_i", dgi->download()},
                       {"dlambda", dlambda->download()}};
      },
      kChunkedScanTolerance);
}

void check_selective_scan(const ScanShape& s, bool splits_time, uint64_t seed) {
  CAPTURE(describe(s));
  CHECK(cuda::scan_splits_time(s) == splits_time);
  const int64_t n = int64_t(s.batch) * s.seq * s.channels, bn = int64_t(s.batch) * s.seq * s.state;
  const int64_t states = int64_t(s.batch) * s.channels * s.state,
                checkpoints = selective_scan_checkpoint_floats(s);
  auto delta = random_floats(n, seed);
  for (auto& d : delta) d = std::log1p(std::exp(d - 2.0f));  // softplus: positive steps around 0.1
  std::vector<float> a_log(std::size_t(s.channels) * s.state);
  for (std::size_t i = 0; i < a_log.size(); ++i) a_log[i] = std::log(float(i % s.state + 1));
  const auto u = random_floats(n, seed + 1), B = random_floats(bn, seed + 2), C = random_floats(bn, seed + 3),
             D = random_floats(s.channels, seed + 4), dy = random_floats(n, seed + 5),
             h0 = random_floats(states, seed + 6);
  compare_backends(
      "selective scan " + describe(s),
      [&](Backend& be) {
        Array du_in(be, u), ddelta_in(be, delta), dalog_in(be, a_log), dB_in(be, B), dC_in(be, C),
            dD_in(be, D), ddy(be, dy), state(be, h0);
        auto y = poisoned(be, n), cp = poisoned(be, checkpoints);
        auto y_from_state = poisoned(be, n), cp_from_state = poisoned(be, checkpoints);
        auto du = accumulator(be, n, seed + 7), ddelta = accumulator(be, n, seed + 8),
             dalog = accumulator(be, int64_t(a_log.size()), seed + 9), dB = accumulator(be, bn, seed + 10),
             dC = accumulator(be, bn, seed + 11), dD = accumulator(be, s.channels, seed + 12);
        auto partials = poisoned(be, int64_t(s.batch) * s.channels * (s.state + 1));
        be.selective_scan_forward(y->data(), cp->data(), du_in.data(), ddelta_in.data(), dalog_in.data(),
                                  dB_in.data(), dC_in.data(), dD_in.data(), nullptr, s);
        be.selective_scan_backward(du->data(), ddelta->data(), dalog->data(), dB->data(), dC->data(),
                                   dD->data(), partials->data(), ddy.data(), cp->data(), du_in.data(),
                                   ddelta_in.data(), dalog_in.data(), dB_in.data(), dC_in.data(),
                                   dD_in.data(), s);
        be.selective_scan_forward(y_from_state->data(), cp_from_state->data(), du_in.data(), ddelta_in.data(),
                                  dalog_in.data(), dB_in.data(), dC_in.data(), dD_in.data(), state.data(), s);
        return Outputs{{"y", y->download()},
                       {"checkpoints", cp->download()},
                       {"y from a state", y_from_state->download()},
                       {"checkpoints from a state", cp_from_state->download()},
                       {"last state", state.download()},
                       {"du", du->download()},
                       {"ddelta", ddelta->download()},
                       {"da_log", dalog->download()},
                       {"dB", dB->download()},
                       {"dC", dC->download()},
                       {"dD", dD->download()}};
      },
      kChunkedScanTolerance);
}

}  // namespace

TEST_CASE("scan RG-LRU: time-parallel at batch 1 T 4096 and batch 16 T 128") {
  check_rglru({1, 4096, 256, 1}, true, 300);
  check_rglru({16, 128, 512, 1}, true, 310);
}

TEST_CASE("scan RG-LRU: sequential over chunks when channels fill the GPU, odd sizes") {
  check_rglru({16, 130, 4096, 1}, false, 320);
  check_rglru({3, 200, 37, 1}, true, 330);
  check_rglru({2, 1, 7, 1}, false, 340);
  check_rglru({2, 64, 9, 1}, false, 350);  // exactly one chunk
}

TEST_CASE("scan selective: time-parallel at batch 1 T 4096 and batch 16 T 128") {
  check_selective_scan({1, 4096, 64, 16}, true, 400);
  check_selective_scan({16, 128, 256, 16}, true, 410);
}

TEST_CASE("scan selective: sequential over chunks when channels fill the GPU") {
  check_selective_scan({16, 130, 4096, 16}, false, 420);
  check_selective_scan({5, 70, 13109, 3}, false, 430);  // channels not a multiple of the warp
}

TEST_CASE("scan selective: odd sizes (states past one slice, partial warps, one step)") {
  check_selective_scan({3, 200, 37, 5}, true, 440);
  check_selective_scan({2, 65, 33, 17}, true, 450);
  check_selective_scan({1, 1, 7, 3}, false, 460);
  check_selective_scan({2, 127, 3, 1}, true, 470);
}
