// The kernels of the linear-attention, recurrent, state-space, convolution,
// mixing and MoE operators: CUDA against the CPU backend (tolerances:
// gpu_test_support.hpp; kScanTolerance below for the recurrences).
#include <cuda_runtime.h>
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <utility>

#include "tests/gpu/gpu_test_support.hpp"

using namespace livs::evaluator;
using namespace livs::evaluator::gpu_testing;

namespace {

// (false, false), (true, false), (false, true), (true, true): two switches a case covers.
constexpr std::pair<bool, bool> kBoolPairs[] = {{false, false}, {true, false}, {false, true}, {true, true}};

using Array = DeviceArray<float>;

// Recurrences run hundreds of dependent steps whose partial sums (over
// channels, states, sequences) are grouped differently on the GPU.
constexpr double kScanTolerance = 1e-4;

std::unique_ptr<Array> accumulator(Backend& be, int64_t count, uint64_t seed) {
  return std::make_unique<Array>(be, random_floats(std::size_t(count), seed, 0.5));
}

std::vector<float> as_floats(const std::vector<int32_t>& v) { return std::vector<float>(v.begin(), v.end()); }

// Negative log-decays in (-inf, 0), as GLA produces them.
std::vector<float> log_decays(std::size_t n, uint64_t seed) {
  auto v = random_floats(n, seed);
  for (auto& x : v) x = -std::log1p(std::exp(x)) / 4.0f;
  return v;
}

}  // namespace

TEST_CASE("activations, products, biases and feature maps") {
  const int64_t rows = 1000, cols = 37, n = rows * cols;
  const auto x = random_floats(n, 100, 3.0), y = random_floats(n, 101), bias = random_floats(cols, 102);
  for (ActivationKind kind : {ActivationKind::silu, ActivationKind::gelu_tanh, ActivationKind::softplus}) {
    CAPTURE(int(kind));
    compare_backends(
        "activation",
        [&](Backend& be) {
          Array dx(be, x), dy(be, y);
          auto out = poisoned(be, n);
          auto din = accumulator(be, n, 103);
          auto din_written = poisoned(be, n);
          be.activation_forward(out->data(), dx.data(), n, kind);
          be.activation_backward(din->data(), dy.data(), dx.data(), n, kind, /*accumulate=*/true);
          be.activation_backward(din_written->data(), dy.data(), dx.data(), n, kind, /*accumulate=*/false);
          return Outputs{{"forward", out->download()},
                         {"backward", din->download()},
                         {"backward written", din_written->download()}};
        },
        kFp32Tolerance);
  }
  for (FeatureMapKind kind : {FeatureMapKind::elu_plus_one, FeatureMapKind::relu, FeatureMapKind::identity}) {
    CAPTURE(int(kind));
    compare_backends(
        "feature map",
        [&](Backend& be) {
          Array dx(be, x), dy(be, y);
          auto out = poisoned(be, n);
          auto din = accumulator(be, n, 104);
          auto din_written = poisoned(be, n);
          be.feature_map_forward(out->data(), dx.data(), n, kind);
          be.feature_map_backward(din->data(), dy.data(), dx.data(), n, kind, /*accumulate=*/true);
          be.feature_map_backward(din_written->data(), dy.data(), dx.data(), n, kind, /*accumulate=*/false);
          return Outputs{{"forward", out->download()},
                         {"backward", din->download()},
                         {"backward written", din_written->download()}};
        },
        kFp32Tolerance);
  }
  compare_backends(
      "multiply and bias",
      [&](Backend& be) {
        Array da(be, x), db(be, y), dbias_in(be, bias), biased(be, x);
        auto out = poisoned(be, n);
        auto dda = accumulator(be, n, 105), ddb = accumulator(be, n, 106), dbias = accumulator(be, cols, 107);
        auto dda_written = poisoned(be, n), ddb_written = poisoned(be, n);
        be.multiply_forward(out->data(), da.data(), db.data(), n);
        be.multiply_backward(dda->data(), ddb->data(), db.data(), da.data(), db.data(), n, true);
        be.multiply_backward(dda_written->data(), ddb_written->data(), db.data(), da.data(), db.data(), n,
                             false);
        be.add_bias({biased.data(), rows, cols}, dbias_in.data());
        be.bias_backward(dbias->data(), {db.data(), rows, cols});
        return Outputs{{"product", out->download()},
                       {"da", dda->download()},
                       {"db", ddb->download()},
                       {"da written", dda_written->download()},
                       {"db written", ddb_written->download()},
                       {"biased", biased.download()},
                       {"dbias", dbias->download()}};
      },
      kFp32Tolerance);
}

TEST_CASE("GLA log decay, differential combination and fusion gate") {
  const int64_t rows = 300, cols = 40;
  const auto z = random_floats(rows * cols, 110, 2.0), bias = random_floats(cols, 111),
             dl = random_floats(rows * cols, 112);
  compare_backends(
      "gla decay",
      [&](Backend& be) {
        Array dz_in(be, z), dbias_in(be, bias), ddl(be, dl);
        auto out = poisoned(be, rows * cols);
        auto dz = accumulator(be, rows * cols, 113), dbias = accumulator(be, cols, 114);
        be.gla_log_decay_forward(out->data(), dz_in.data(), dbias_in.data(), rows, cols, 16.0f);
        be.gla_log_decay_backward(dz->data(), dbias->data(), ddl.data(), dz_in.data(), dbias_in.data(), rows,
                                  cols, 16.0f);
        return Outputs{{"log alpha", out->download()}, {"dz", dz->download()}, {"dbias", dbias->download()}};
      },
      kFp32Tolerance);

  const int heads = 3, hd = 8;
  const int64_t width = heads * hd, drows = 50;
  const auto a1 = random_floats(drows * width, 115), a2 = random_floats(drows * width, 116),
             lambda = random_floats(heads, 117, 0.1), dout = random_floats(drows * width, 118);
  compare_backends(
      "differential",
      [&](Backend& be) {
        Array da1_in(be, a1), da2_in(be, a2), dlambda_in(be, lambda), ddout(be, dout);
        auto out = poisoned(be, drows * width);
        auto da1 = accumulator(be, drows * width, 119), da2 = accumulator(be, drows * width, 120),
             dlambda = accumulator(be, heads, 121);
        be.differential_forward(out->data(), da1_in.data(), da2_in.data(), dlambda_in.data(), 0.8f, drows,
                                heads, hd);
        be.differential_backward(da1->data(), da2->data(), dlambda->data(), ddout.data(), da2_in.data(),
                                 dlambda_in.data(), 0.8f, drows, heads, hd);
        return Outputs{{"out", out->download()},
                       {"da1", da1->download()},
                       {"da2", da2->download()},
                       {"dlambda", dlambda->download()}};
      },
      kFp32Tolerance);

  const int64_t grows = 200, gcols = 33;
  const auto y0 = random_floats(grows * gcols, 122), y1 = random_floats(grows * gcols, 123),
             gate = random_floats(gcols, 124), gdout = random_floats(grows * gcols, 125);
  compare_backends(
      "gate mix",
      [&](Backend& be) {
        Array dy0_in(be, y0), dy1_in(be, y1), dgate_in(be, gate), ddout(be, gdout);
        auto out = poisoned(be, grows * gcols);
        auto dy0 = accumulator(be, grows * gcols, 126), dy1 = accumulator(be, grows * gcols, 127),
             dgate = accumulator(be, gcols, 128);
        be.gate_mix_forward(out->data(), dy0_in.data(), dy1_in.data(), dgate_in.data(), grows, gcols);
        be.gate_mix_backward(dy0->data(), dy1->data(), dgate->data(), ddout.data(), dy0_in.data(),
                             dy1_in.data(), dgate_in.data(), grows, gcols);
        return Outputs{{"out", out->download()},
                       {"dy0", dy0->download()},
                       {"dy1", dy1->download()},
                       {"dgate", dgate->download()}};
      },
      kFp32Tolerance);
}

TEST_CASE("differential halves of rec, ssm and gconv") {
  const int64_t rows = 130, W = 45;
  const auto in = random_floats(rows * 2 * W, 190), lambda = random_floats(W, 191, 0.1),
             dout = random_floats(rows * W, 192);
  compare_backends(
      "halves difference",
      [&](Backend& be) {
        Array din_in(be, in), dlambda_in(be, lambda), ddout(be, dout);
        auto out = poisoned(be, rows * W);
        auto din = accumulator(be, rows * 2 * W, 193), dlambda = accumulator(be, W, 194);
        be.halves_difference_forward({out->data(), rows, W}, {din_in.data(), rows, 2 * W}, dlambda_in.data(),
                                     0.8f);
        be.halves_difference_backward({din->data(), rows, 2 * W}, dlambda->data(), {ddout.data(), rows, W},
                                      {din_in.data(), rows, 2 * W}, dlambda_in.data(), 0.8f);
        return Outputs{{"out", out->download()}, {"din", din->download()}, {"dlambda", dlambda->download()}};
      },
      kFp32Tolerance);
}

TEST_CASE("causal depthwise convolution: parallel, decode with state, backward") {
  // Kernels 2-4 take the one-pass weight gradient (row chunks that start
  // inside a sequence and across its start: 600 rows in 64 chunks of 10, 74
  // rows in chunks of 2). The last three take the tiled path (8 <= kernel <=
  // 128): sequences and channel counts that are not multiples of the 64 x 32
  // tile, a kernel longer than the sequence.
  for (ConvShape s :
       {ConvShape{2, 37, 20, 4}, ConvShape{3, 5, 70, 3}, ConvShape{1, 9, 8, 1}, ConvShape{4, 150, 130, 2},
        ConvShape{2, 130, 45, 64}, ConvShape{1, 20, 33, 16}, ConvShape{2, 50, 40, 100}}) {
    CAPTURE(s.seq);
    CAPTURE(s.kernel);
    const int64_t n = int64_t(s.batch) * s.seq * s.channels, hist = s.kernel - 1;
    const auto x = random_floats(n, 130), w = random_floats(int64_t(s.channels) * s.kernel, 131),
               bias = random_floats(s.channels, 132), dy = random_floats(n, 133);
    compare_backends(
        "conv",
        [&](Backend& be) {
          Array dx_in(be, x), dw_in(be, w), dbias_in(be, bias), ddy(be, dy);
          auto y = poisoned(be, n), y_decode = poisoned(be, n);
          auto dx = accumulator(be, n, 134), dw = accumulator(be, int64_t(s.channels) * s.kernel, 135),
               dbias = accumulator(be, s.channels, 136);
          be.causal_conv_forward(y->data(), dx_in.data(), dw_in.data(), dbias_in.data(), nullptr, s);
          auto dx_written = poisoned(be, n);
          be.causal_conv_backward(dx->data(), dw->data(), dbias->data(), ddy.data(), dx_in.data(),
                                  dw_in.data(), s, /*accumulate_dx=*/true);
          be.causal_conv_backward(dx_written->data(), dw->data(), dbias->data(), ddy.data(), dx_in.data(),
                                  dw_in.data(), s, /*accumulate_dx=*/false);
          // Decode: one token at a time through the state, per sequence (batch 1 views).
          Array state(be, std::max<int64_t>(1, hist * s.channels));
          Array token(be, s.channels), out(be, s.channels);
          std::vector<float> decoded;
          for (int b = 0; b < s.batch; ++b) {
            be.fill(state.data(), state.size(), 0.0f);
            for (int t = 0; t < s.seq; ++t) {
              be.copy(token.data(), dx_in.data() + (int64_t(b) * s.seq + t) * s.channels, s.channels);
              be.causal_conv_forward(out.data(), token.data(), dw_in.data(), dbias_in.data(), state.data(),
                                     {1, 1, s.channels, s.kernel});
              const auto row = out.download();
              decoded.insert(decoded.end(), row.begin(), row.end());
            }
          }
          return Outputs{{"y", y->download()},   {"decode", decoded},
                         {"dx", dx->download()}, {"dx written", dx_written->download()},
                         {"dw", dw->download()}, {"dbias", dbias->download()}};
        },
        kFp32Tolerance);
  }
}

TEST_CASE("gated convolution: tiled and per-element paths, decode with state, backward") {
  // Kernel <= 64 without a state takes the tiled path (sequences and channel
  // counts off the 64 x 32 tile, a kernel longer than the sequence); 100 the
  // per-element kernels and the column sums.
  for (ConvShape s : {ConvShape{2, 37, 20, 4}, ConvShape{3, 5, 70, 3}, ConvShape{1, 9, 8, 1},
                      ConvShape{2, 130, 45, 64}, ConvShape{1, 20, 33, 16}, ConvShape{2, 50, 40, 100}}) {
    CAPTURE(s.seq);
    CAPTURE(s.kernel);
    const int64_t C = s.channels, rows = int64_t(s.batch) * s.seq, hist = s.kernel - 1;
    const auto bcx = random_floats(rows * 3 * C, 150), w = random_floats(C * s.kernel, 151),
               dout = random_floats(rows * C, 152);
    compare_backends(
        "gated conv",
        [&](Backend& be) {
          Array d_bcx(be, bcx), d_w(be, w), d_dout(be, dout);
          auto out = poisoned(be, rows * C), dbcx = poisoned(be, rows * 3 * C);
          auto dw = accumulator(be, C * s.kernel, 153);
          be.gated_conv_forward(out->data(), d_bcx.data(), d_w.data(), nullptr, s);
          be.gated_conv_backward(dbcx->data(), dw->data(), d_dout.data(), d_bcx.data(), d_w.data(), s);
          Array state(be, std::max<int64_t>(1, hist * C));
          Array token(be, 3 * C), y(be, C);
          std::vector<float> decoded;
          for (int b = 0; b < s.batch; ++b) {
            be.fill(state.data(), state.size(), 0.0f);
            for (int t = 0; t < s.seq; ++t) {
              be.copy(token.data(), d_bcx.data() + (int64_t(b) * s.seq + t) * 3 * C, 3 * C);
              be.gated_conv_forward(y.data(), token.data(), d_w.data(), state.data(),
                                    {1, 1, int(C), s.kernel});
              const auto row = y.download();
              decoded.insert(decoded.end(), row.begin(), row.end());
            }
          }
          return Outputs{{"out", out->download()},
                         {"decode", decoded},
                         {"dbcx", dbcx->download()},
                         {"dw", dw->download()}};
        },
        kFp32Tolerance);
  }
}

TEST_CASE("RG-LRU scan: forward, decode with state, backward") {
  const ScanShape s{3, 50, 20, 1};
  const int64_t n = int64_t(s.batch) * s.seq * s.channels;
  const auto u = random_floats(n, 140), ga = random_floats(n, 141), gi = random_floats(n, 142),
             lambda = random_floats(s.channels, 143, 1.0, 2.0), dh = random_floats(n, 144);
  compare_backends(
      "rglru",
      [&](Backend& be) {
        Array du_in(be, u), dga_in(be, ga), dgi_in(be, gi), dlambda_in(be, lambda), ddh(be, dh);
        auto h = poisoned(be, n);
        auto du = accumulator(be, n, 145), dga = accumulator(be, n, 146), dgi = accumulator(be, n, 147),
             dlambda = accumulator(be, s.channels, 148);
        be.rglru_forward(h->data(), du_in.data(), dga_in.data(), dgi_in.data(), dlambda_in.data(), 8.0f,
                         nullptr, s);
        be.rglru_backward(du->data(), dga->data(), dgi->data(), dlambda->data(), ddh.data(), h->data(),
                          du_in.data(), dga_in.data(), dgi_in.data(), dlambda_in.data(), 8.0f, s);
        // Decode: one token at a time through the state.
        Array state(be, int64_t(s.batch) * s.channels);
        const ScanShape first{s.batch, 1, s.channels, 1};
        std::vector<float> stepped;
        for (int t = 0; t < s.seq; ++t) {
          // Rows of time t for every sequence are strided; gather them on the host.
          std::vector<float> ut(std::size_t(s.batch) * s.channels), gat(ut.size()), git(ut.size());
          for (int b = 0; b < s.batch; ++b)
            for (int c = 0; c < s.channels; ++c) {
              const std::size_t src = (std::size_t(b) * s.seq + t) * s.channels + c,
                                dst = std::size_t(b) * s.channels + c;
              ut[dst] = u[src];
              gat[dst] = ga[src];
              git[dst] = gi[src];
            }
          Array dut(be, ut), dgat(be, gat), dgit(be, git), hout(be, int64_t(ut.size()));
          be.rglru_forward(hout.data(), dut.data(), dgat.data(), dgit.data(), dlambda_in.data(), 8.0f,
                           state.data(), first);
          const auto row = hout.download();
          stepped.insert(stepped.end(), row.begin(), row.end());
        }
        return Outputs{{"h", h->download()},         {"decode", stepped},
                       {"du", du->download()},       {"dgate_a", dga->download()},
                       {"dgate_i", dgi->download()}, {"dlambda", dlambda->download()}};
      },
      kScanTolerance);
}

TEST_CASE("selective scan: forward with checkpoints, decode, backward") {
  const ScanShape s{2, 30, 12, 16};
  const int64_t n = int64_t(s.batch) * s.seq * s.channels, bn = int64_t(s.batch) * s.seq * s.state;
  auto delta = random_floats(n, 150);
  for (auto& d : delta) d = std::log1p(std::exp(d - 2.0f));  // softplus: positive steps around 0.1
  std::vector<float> a_log(std::size_t(s.channels) * s.state);
  for (std::size_t i = 0; i < a_log.size(); ++i) a_log[i] = std::log(float(i % s.state + 1));
  const auto u = random_floats(n, 151), B = random_floats(bn, 152), C = random_floats(bn, 153),
             D = random_floats(s.channels, 154), dy = random_floats(n, 155);
  compare_backends(
      "selective scan",
      [&](Backend& be) {
        Array du_in(be, u), ddelta_in(be, delta), dalog_in(be, a_log), dB_in(be, B), dC_in(be, C),
            dD_in(be, D), ddy(be, dy);
        auto y = poisoned(be, n), checkpoints = poisoned(be, selective_scan_checkpoint_floats(s));
        auto du = accumulator(be, n, 156), ddelta = accumulator(be, n, 157),
             dalog = accumulator(be, int64_t(a_log.size()), 158), dB = accumulator(be, bn, 159),
             dC = accumulator(be, bn, 160), dD = accumulator(be, s.channels, 161);
        auto partials = poisoned(be, int64_t(s.batch) * s.channels * (s.state + 1));
        be.selective_scan_forward(y->data(), checkpoints->data(), du_in.data(), ddelta_in.data(),
                                  dalog_in.data(), dB_in.data(), dC_in.data(), dD_in.data(), nullptr, s);
        be.selective_scan_backward(du->data(), ddelta->data(), dalog->data(), dB->data(), dC->data(),
                                   dD->data(), partials->data(), ddy.data(), checkpoints->data(),
                                   du_in.data(), ddelta_in.data(), dalog_in.data(), dB_in.data(),
                                   dC_in.data(), dD_in.data(), s);
        // Decode, sequence 0: one token at a time through the state.
        Array state(be, int64_t(s.channels) * s.state), yt(be, s.channels);
        std::vector<float> decoded;
        for (int t = 0; t < s.seq; ++t) {
          const int64_t row = t;  // batch 0
          be.selective_scan_forward(yt.data(), nullptr, du_in.data() + row * s.channels,
                                    ddelta_in.data() + row * s.channels, dalog_in.data(),
                                    dB_in.data() + row * s.state, dC_in.data() + row * s.state, dD_in.data(),
                                    state.data(), {1, 1, s.channels, s.state});
          const auto out = yt.download();
          decoded.insert(decoded.end(), out.begin(), out.end());
        }
        return Outputs{{"y", y->download()},
                       {"checkpoints", checkpoints->download()},
                       {"decode", decoded},
                       {"du", du->download()},
                       {"ddelta", ddelta->download()},
                       {"da_log", dalog->download()},
                       {"dB", dB->download()},
                       {"dC", dC->download()},
                       {"dD", dD->download()}};
      },
      kScanTolerance);
}

TEST_CASE("linear attention, gated and ungated, shared-memory and global state, decode") {
  struct Case {
    LinearAttentionShape shape;
    bool gated;
  };
  // Ungated with head_dim <= 64 takes the chunked kernels (64 steps a chunk),
  // on the tensor cores in a bf16 backend (head_dim 40 padded to 48 there):
  // one partial chunk, three chunks with a partial last one, exactly two
  // chunks at head_dim 64; ungated at head_dim 65 the sequential kernel.
  for (Case c : {Case{{2, 40, 3, 16}, true}, Case{{1, 33, 2, 40}, false}, Case{{1, 10, 1, 200}, true},
                 Case{{3, 150, 2, 32}, false}, Case{{2, 128, 2, 64}, false}, Case{{1, 70, 1, 65}, false}}) {
    const LinearAttentionShape& s = c.shape;
    CAPTURE(s.head_dim);
    CAPTURE(c.gated);
    const int64_t n = int64_t(s.batch) * s.seq * s.heads * s.head_dim;
    auto q = random_floats(n, 170), k = random_floats(n, 171);
    for (auto* v : {&q, &k})
      for (auto& x : *v) x = std::exp(x * 0.5f) / float(s.head_dim);  // positive features, as phi gives
    const auto v = random_floats(n, 172), la = log_decays(n, 173), dout = random_floats(n, 174);
    const auto run = [&](Backend& be) {
      Array dq_in(be, q), dk_in(be, k), dv_in(be, v), dla_in(be, la), ddout(be, dout);
      const float* log_alpha = c.gated ? dla_in.data() : nullptr;
      auto out = poisoned(be, n);
      auto dq = accumulator(be, n, 175), dk = accumulator(be, n, 176), dv = accumulator(be, n, 177),
           dla = accumulator(be, n, 178);
      // The written form into NaN-filled buffers: every element must be written.
      auto dq_w = poisoned(be, n), dk_w = poisoned(be, n), dv_w = poisoned(be, n), dla_w = poisoned(be, n);
      be.linear_attention_forward(out->data(), dq_in.data(), dk_in.data(), dv_in.data(), log_alpha, s);
      be.linear_attention_backward(dq->data(), dk->data(), dv->data(), c.gated ? dla->data() : nullptr,
                                   ddout.data(), dq_in.data(), dk_in.data(), dv_in.data(), log_alpha, s,
                                   /*accumulate=*/true);
      be.linear_attention_backward(dq_w->data(), dk_w->data(), dv_w->data(),
                                   c.gated ? dla_w->data() : nullptr, ddout.data(), dq_in.data(),
                                   dk_in.data(), dv_in.data(), log_alpha, s,
                                   /*accumulate=*/false);
      // Decode through the state, batch 0, all heads at once (rows of time t are contiguous).
      const int64_t row = int64_t(s.heads) * s.head_dim;
      Array state(be, int64_t(s.heads) * s.head_dim * s.head_dim), ot(be, row);
      const LinearAttentionShape one{1, 1, s.heads, s.head_dim};
      std::vector<float> decoded;
      for (int t = 0; t < s.seq; ++t) {
        be.linear_attention_state_update(state.data(), dk_in.data() + t * row, dv_in.data() + t * row,
                                         c.gated ? dla_in.data() + t * row : nullptr, one);
        be.linear_attention_state_read(ot.data(), dq_in.data() + t * row, state.data(), one);
        const auto o = ot.download();
        decoded.insert(decoded.end(), o.begin(), o.end());
      }
      Outputs outputs{{"out", out->download()},         {"decode", decoded},
                      {"dq", dq->download()},           {"dk", dk->download()},
                      {"dv", dv->download()},           {"dq written", dq_w->download()},
                      {"dk written", dk_w->download()}, {"dv written", dv_w->download()}};
      if (c.gated) {
        outputs.push_back({"dlog_alpha", dla->download()});
        outputs.push_back({"dlog_alpha written", dla_w->download()});
      }
      return outputs;
    };
    compare_backends("linear attention", run, kScanTolerance);
    if (!c.gated && s.head_dim <= 64) {  // the chunks on the tensor cores (bf16 operands)
      compare_backends("linear attention bf16", run, kBf16GemmTolerance, gpu_bf16());
      CHECK(run(gpu())[0].second != run(gpu_bf16())[0].second);  // the bf16 backend took them
    }
  }
}

namespace {

// Every MoE block kernel of one shape against the CPU backend.
void check_moe_blocks(int64_t rows, int64_t experts, int top_k, int64_t cols) {
  CAPTURE(rows);
  CAPTURE(experts);
  CAPTURE(top_k);
  CAPTURE(cols);
  const int64_t assignments = rows * top_k;
  const auto logits = random_floats(rows * experts, 180, 2.0), x = random_floats(rows * cols, 181),
             dtw = random_floats(assignments, 182), dy = random_floats(rows * cols, 183),
             ys = random_floats(assignments * cols, 184), dxs = random_floats(assignments * cols, 185),
             ys_second = random_floats(assignments * cols, 188);
  compare_backends(
      "moe",
      [&](Backend& be) {
        Array dlogits_in(be, logits), dx_in(be, x), ddtw(be, dtw), ddy(be, dy), dys_in(be, ys), ddxs(be, dxs),
            ys_folded(be, ys), dys_second(be, ys_second);
        auto probs = poisoned(be, rows * experts), top_weight = poisoned(be, assignments),
             fractions = poisoned(be, experts);
        DeviceArray<int32_t> top_index(be, assignments), order(be, assignments), position(be, assignments),
            offsets(be, experts + 1);
        be.moe_route(probs->data(), top_index.data(), top_weight->data(), {dlogits_in.data(), rows, experts},
                     top_k);
        be.moe_dispatch(order.data(), position.data(), offsets.data(), fractions->data(), top_index.data(),
                        rows, top_k, int(experts));
        auto dlogits = poisoned(be, rows * experts);  // written whole, not added to
        be.moe_route_backward({dlogits->data(), rows, experts}, ddtw.data(), probs->data(), top_index.data(),
                              top_weight->data(), fractions->data(), top_k, 0.01f);
        auto xs = poisoned(be, assignments * cols), y = poisoned(be, rows * cols);
        auto dx = accumulator(be, rows * cols, 187), dys = poisoned(be, assignments * cols),
             dtop = poisoned(be, assignments);
        be.moe_gather({xs->data(), assignments, cols}, {dx_in.data(), rows, cols}, order.data(), top_k);
        be.moe_gather_backward({dx->data(), rows, cols}, {ddxs.data(), assignments, cols}, position.data(),
                               top_k);
        be.moe_combine({y->data(), rows, cols}, {dys_in.data(), assignments, cols}, top_weight->data(),
                       position.data(), top_k);
        be.moe_combine_backward({dys->data(), assignments, cols}, dtop->data(), {ddy.data(), rows, cols},
                                {dys_in.data(), assignments, cols}, top_weight->data(), position.data(),
                                top_k);
        auto y_halves = poisoned(be, rows * cols);  // the down projection's two halves (moe_combine_halves)
        be.moe_combine_halves({y_halves->data(), rows, cols}, {ys_folded.data(), assignments, cols},
                              {dys_second.data(), assignments, cols}, top_weight->data(), position.data(),
                              top_k);
        return Outputs{{"probs", probs->download()},
                       {"top index", as_floats(top_index.download())},
                       {"top weight", top_weight->download()},
                       {"fractions", fractions->download()},
                       {"dlogits", dlogits->download()},
                       {"order", as_floats(order.download())},
                       {"position", as_floats(position.download())},
                       {"offsets", as_floats(offsets.download())},
                       {"gathered", xs->download()},
                       {"dx", dx->download()},
                       {"combined", y->download()},
                       {"dys", dys->download()},
                       {"dtop_weight", dtop->download()},
                       {"combined halves", y_halves->download()},
                       {"halves folded", ys_folded.download()}};
      },
      kFp32Tolerance);
}

}  // namespace

// A MoE layer's shape for the routing tests: tokens, experts, choices, width.
struct MoeShape {
  int64_t rows, experts;
  int top_k;
  int64_t cols;
};

TEST_CASE("MoE: routing, statistics, dispatch, gather and combine with their backward") {
  // A training step's rows, a chunk of the dispatch (256 assignments) with a
  // tail, more experts than a warp's lanes, the genome's most experts (1024,
  // most of them empty) over many chunks; more chunks (70) than the one-launch
  // scan and scatter takes; rows of whole float4s (the row-wise kernels'
  // 16-byte path) and of odd widths.
  for (const MoeShape shape :
       {MoeShape{100, 8, 2, 24}, MoeShape{2048, 8, 2, 128}, MoeShape{333, 41, 3, 13}, MoeShape{128, 8, 2, 7},
        MoeShape{3000, 1024, 2, 24}, MoeShape{200, 32, 4, 36}, MoeShape{8960, 16, 2, 8}})
    check_moe_blocks(shape.rows, shape.experts, shape.top_k, shape.cols);
}

// One MoE layer's routing buffers in a backend's memory (floats poisoned) and
// the MoeRouting that names them.
struct RoutingBuffers {
  RoutingBuffers(Backend& be, int64_t rows, int64_t experts, int top_k)
      : logits(poisoned(be, rows * experts)),
        probs(poisoned(be, rows * experts)),
        top_weight(poisoned(be, rows * top_k)),
        fractions(poisoned(be, experts)),
        top_index(be, rows * top_k),
        order(be, rows * top_k),
        position(be, rows * top_k),
        offsets(be, experts + 1),
        routing{logits->data(),
                probs->data(),
                top_index.data(),
                top_weight->data(),
                fractions->data(),
                order.data(),
                position.data(),
                offsets.data(),
                rows,
                int(experts),
                top_k} {}
  std::unique_ptr<Array> logits, probs, top_weight, fractions;
  DeviceArray<int32_t> top_index, order, position, offsets;
  MoeRouting routing;
};

// The composite MoE calls (router product, routing, dispatch and gather in
// one; combine and route backward in one; the router's input gradient with
// the gather's backward) against the CPU, which runs the calls each stands
// for. Shapes: a training step's, tails, a 32-expert bucket with top-4, more
// chunks than the one-launch scan takes, top-1 and top-3, and more experts
// than a warp's lanes (which the GPU leaves to the separate calls too).
TEST_CASE("MoE composite calls: fused routing, dispatch and gather; combine and route backward; router dx") {
  for (const MoeShape shape : {MoeShape{2048, 8, 2, 128}, MoeShape{100, 8, 2, 24}, MoeShape{333, 20, 4, 13},
                               MoeShape{8960, 16, 2, 8}, MoeShape{200, 32, 1, 36}, MoeShape{50, 6, 3, 16},
                               MoeShape{70, 40, 2, 12}}) {
    const int64_t rows = shape.rows, experts = shape.experts, cols = shape.cols;
    const int top_k = shape.top_k;
    const int64_t assignments = rows * top_k;
    CAPTURE(rows);
    CAPTURE(experts);
    CAPTURE(top_k);
    CAPTURE(cols);
    const auto x = random_floats(rows * cols, 280), router = random_floats(experts * cols, 281, 0.5),
               dy = random_floats(rows * cols, 282), ys = random_floats(assignments * cols, 283),
               dxs = random_floats(assignments * cols, 284), dxs_up = random_floats(assignments * cols, 286);
    for (const auto& [accumulate, apart] : kBoolPairs) {
      CAPTURE(accumulate);
      CAPTURE(
          apart);  // the up product's input gradient in rows of its own (grouped_gate_up_backward's dx_up)
      const auto run = [&](Backend& be) {
        Array dx_in(be, x), drouter(be, router), ddy(be, dy), dys_in(be, ys), ddxs(be, dxs),
            ddxs_up(be, dxs_up);
        RoutingBuffers buffers(be, rows, experts, top_k);
        const MoeRouting& r = buffers.routing;
        auto xs = poisoned(be, assignments * cols);
        be.moe_route_and_gather(r, {xs->data(), assignments, cols}, {dx_in.data(), rows, cols},
                                {drouter.data(), experts, cols});
        auto dlogits = poisoned(be, rows * experts), dys = poisoned(be, assignments * cols),
             dtop = poisoned(be, assignments);
        be.moe_combine_route_backward(r, {dlogits->data(), rows, experts}, nullptr,
                                      {dys->data(), assignments, cols}, dtop->data(),
                                      {ddy.data(), rows, cols}, {dys_in.data(), assignments, cols}, 0.01f);
        auto dx = accumulate ? accumulator(be, rows * cols, 285) : poisoned(be, rows * cols);
        be.moe_gather_router_backward(r, {dx->data(), rows, cols}, {ddxs.data(), assignments, cols},
                                      {dlogits->data(), rows, experts}, {drouter.data(), experts, cols},
                                      accumulate,
                                      apart ? ConstMatrix{ddxs_up.data(), assignments, cols} : ConstMatrix{});
        return Outputs{{"probs", buffers.probs->download()},
                       {"top index", as_floats(buffers.top_index.download())},
                       {"top weight", buffers.top_weight->download()},
                       {"fractions", buffers.fractions->download()},
                       {"order", as_floats(buffers.order.download())},
                       {"position", as_floats(buffers.position.download())},
                       {"offsets", as_floats(buffers.offsets.download())},
                       {"gathered", xs->download()},
                       {"dlogits", dlogits->download()},
                       {"dys", dys->download()},
                       {"dx", dx->download()}};
      };
      compare_backends("moe composite", run, kFp32Tolerance);
    }
  }
}

// The fused combine-and-route backward's bf16 copy of dlogits: dlogits rounded.
TEST_CASE("MoE combine and route backward: the bf16 copy of dlogits is dlogits rounded") {
  const int64_t rows = 300, experts = 8, cols = 64;
  const int top_k = 2;
  const int64_t assignments = rows * top_k;
  Backend& be = gpu();
  Array x(be, random_floats(rows * cols, 290)), router(be, random_floats(experts * cols, 291, 0.5)),
      dy(be, random_floats(rows * cols, 292)), ys(be, random_floats(assignments * cols, 293));
  auto xs = poisoned(be, assignments * cols), dlogits = poisoned(be, rows * experts),
       dys = poisoned(be, assignments * cols), dtop = poisoned(be, assignments);
  DeviceArray<uint16_t> dlogits16(be, rows * experts);
  RoutingBuffers buffers(be, rows, experts, top_k);
  const MoeRouting& r = buffers.routing;
  be.moe_route_and_gather(r, {xs->data(), assignments, cols}, {x.data(), rows, cols},
                          {router.data(), experts, cols});
  be.moe_combine_route_backward(r, {dlogits->data(), rows, experts}, dlogits16.data(),
                                {dys->data(), assignments, cols}, dtop->data(), {dy.data(), rows, cols},
                                {ys.data(), assignments, cols}, 0.01f);
  const auto wide = dlogits->download();
  const auto bits = dlogits16.download();
  int64_t wrong = 0;
  for (std::size_t i = 0; i < wide.size(); ++i) {
    uint32_t u = 0;
    std::memcpy(&u, &wide[i], sizeof u);
    wrong += bits[i] != uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  }
  CHECK(wrong == 0);
}

TEST_CASE("MoE grouped GEMMs: exact fp32 and bf16 tensor cores; tails, empty experts, long reductions") {
  struct Shape {
    int64_t in, out, capacity;
    std::vector<int32_t> offsets;  // experts + 1
  };
  const std::vector<Shape> shapes = {
      {45, 77, 200, {0, 70, 70, 135, 199, 200}},  // tails on every side, expert 1 empty
      {128, 64, 256, {0, 64, 128, 192, 256}},     // whole tiles
      {33, 130, 7, {0, 0, 1, 1, 3}},              // single rows; rows 3..6 belong to no expert
      {16, 24, 5, {0, 0, 0, 0}},                  // no expert has rows
      {300, 520, 1030, {0, 1000, 1030}},          // a reduction of 1000 rows for dW (3 row chunks)
      {64, 64, 2048, {0, 1024, 1024, 2048}},      // dW in 5 row chunks, expert 1 empty
      {45, 77, 2048, {0, 1000, 2048}},            // chunks whose sums are not whole quads
      {64, 96, 4096, {0, 512, 1024, 1536, 2048, 2560, 3072, 3584, 4096}}};  // a training step's shape
  for (const Shape& s : shapes) {
    const int experts = int(s.offsets.size()) - 1;
    const bool dropless = s.offsets.back() == s.capacity;  // every row is written, so outputs start as NaN
    CAPTURE(s.in);
    CAPTURE(s.out);
    CAPTURE(s.capacity);
    const auto x = random_floats(s.capacity * s.in, 190), w = random_floats(experts * s.out * s.in, 191, 0.1),
               dy = random_floats(s.capacity * s.out, 192), y0 = random_floats(s.capacity * s.out, 193),
               dx0 = random_floats(s.capacity * s.in, 194);
    auto run = [&](Backend& be) {
      Array dx_in(be, x), dw_in(be, w), ddy(be, dy), y_acc(be, y0), dx_acc(be, dx0);
      DeviceArray<int32_t> offsets(be, s.offsets);
      const ExpertRows groups{offsets.data(), experts};
      auto y = dropless ? poisoned(be, s.capacity * s.out) : accumulator(be, s.capacity * s.out, 195);
      auto dx = dropless ? poisoned(be, s.capacity * s.in) : accumulator(be, s.capacity * s.in, 196);
      auto dw = accumulator(be, experts * s.out * s.in, 197);
      be.grouped_matmul({y->data(), s.capacity, s.out}, {dx_in.data(), s.capacity, s.in},
                        {dw_in.data(), s.out, s.in}, groups, false);
      be.grouped_matmul({y_acc.data(), s.capacity, s.out}, {dx_in.data(), s.capacity, s.in},
                        {dw_in.data(), s.out, s.in}, groups, true);
      be.grouped_matmul_backward_input({dx->data(), s.capacity, s.in}, {ddy.data(), s.capacity, s.out},
                                       {dw_in.data(), s.out, s.in}, groups, false);
      be.grouped_matmul_backward_input({dx_acc.data(), s.capacity, s.in}, {ddy.data(), s.capacity, s.out},
                                       {dw_in.data(), s.out, s.in}, groups, true);
      be.grouped_matmul_backward_weight({dw->data(), s.out, s.in}, {ddy.data(), s.capacity, s.out},
                                        {dx_in.data(), s.capacity, s.in}, groups);
      Outputs out{{"y", y->download()},
                  {"y accumulated", y_acc.download()},
                  {"dx", dx->download()},
                  {"dx accumulated", dx_acc.download()},
                  {"dw", dw->download()}};
      if (dropless) {  // y + y_second from the reduction's halves (every row written, as MoE's)
        auto half = poisoned(be, s.capacity * s.out), second = poisoned(be, s.capacity * s.out);
        be.grouped_matmul_halves({half->data(), s.capacity, s.out}, {second->data(), s.capacity, s.out},
                                 {dx_in.data(), s.capacity, s.in}, {dw_in.data(), s.out, s.in}, groups);
        std::vector<float> sum = half->download();
        const std::vector<float> second_values = second->download();
        for (std::size_t i = 0; i < sum.size(); ++i) sum[i] += second_values[i];
        out.emplace_back("y from halves", std::move(sum));
      }
      return out;
    };
    compare_backends("grouped fp32", run, kFp32Tolerance, gpu());
    compare_backends("grouped bf16", run, kBf16GemmTolerance, gpu_bf16());
    if (s.in == 64 && s.out == 96) {  // the bf16 mode really rounds (tensor cores, not the fp32 kernel)
      const auto want = run(cpu()), got = run(gpu_bf16());
      CHECK(relative_error(got[0].second, want[0].second) > 1e-4);
    }
  }
}

TEST_CASE("MoE products split in two only where twice their blocks fit in one wave of the device") {
  int device = 0, sms = 0;
  REQUIRE(cudaGetDevice(&device) == cudaSuccess);
  REQUIRE(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) == cudaSuccess);
  const Backend& be = gpu();
  // One column tile and one expert: ceil(capacity / 64) + 1 blocks, one wave 4 an SM.
  const int64_t fits = (2 * int64_t(sms) - 1) * 64;
  CHECK(be.splits_grouped_products(fits, 64, 1));
  CHECK_FALSE(be.splits_grouped_products(fits + 1, 64, 1));
  if (sms >= 72) {  // an H100 / H200: the d 128 pair splits, the d 256 one does not
    CHECK(be.splits_grouped_products(2048 * 2, 128, 8));
    CHECK_FALSE(be.splits_grouped_products(16384 * 2, 256, 8));
  }
  CHECK_FALSE(be.splits_grouped_products(0, 128, 8));
  CHECK_FALSE(static_cast<const Backend&>(cpu()).splits_grouped_products(2048 * 2, 128, 8));
}

// The pairs, the SwiGLU layers and the two-at-a-time backward launches
// (grouped_swiglu_backward, grouped_gate_up_backward) against the separate
// launches they stand for.
TEST_CASE("MoE grouped GEMM pairs and SwiGLU layers: the bits of the calls each stands for, fp32 and bf16") {
  struct Shape {
    int64_t in, out, capacity;
    std::vector<int32_t> offsets;  // experts + 1, dropless (every row belongs to an expert)
  };
  const std::vector<Shape> shapes = {{45, 77, 200, {0, 70, 70, 135, 199, 200}},
                                     {33, 130, 3, {0, 0, 1, 1, 3}},
                                     {64, 64, 2048, {0, 1024, 1024, 2048}},
                                     {128, 256, 4096, {0, 512, 1024, 1536, 2048, 2560, 3072, 3584, 4096}}};
  for (const Shape& s : shapes) {
    const int experts = int(s.offsets.size()) - 1;
    CAPTURE(s.in);
    CAPTURE(s.out);
    CAPTURE(s.capacity);
    const int64_t hidden = s.capacity * s.out;
    const auto x = random_floats(s.capacity * s.in, 200),
               w0 = random_floats(experts * s.out * s.in, 201, 0.1),
               w1 = random_floats(experts * s.out * s.in, 202, 0.1), dy0 = random_floats(hidden, 203),
               dy1 = random_floats(hidden, 204), dx_start = random_floats(s.capacity * s.in, 205),
               dw_start = random_floats(experts * s.out * s.in, 206),
               w_down = random_floats(experts * s.in * s.out, 207, 0.1);
    for (Backend* be : {static_cast<Backend*>(&gpu()), static_cast<Backend*>(&gpu_bf16())}) {
      // apart: the gate and up input gradients into dx and dx_up (side by side on the GPU).
      auto run = [&](bool fused, bool accumulate_dx, bool apart) {
        Array xs(*be, x), w0s(*be, w0), w1s(*be, w1), wds(*be, w_down), dy0s(*be, dy0), dy1s(*be, dy1),
            dx(*be, dx_start), dw0(*be, dw_start), dw1(*be, dw_start), dwd(*be, dw_start);
        auto dx_up = poisoned(*be, s.capacity * s.in);
        const Matrix dx_up_m = apart ? Matrix{dx_up->data(), s.capacity, s.in} : Matrix{};
        auto gate = poisoned(*be, hidden), up = poisoned(*be, hidden), h = poisoned(*be, hidden),
             dgate = poisoned(*be, hidden), dup = poisoned(*be, hidden), dh = poisoned(*be, hidden);
        DeviceArray<int32_t> offsets(*be, s.offsets);
        const ExpertRows groups{offsets.data(), experts};
        const auto hidden_of = [&](float* p) { return Matrix{p, s.capacity, s.out}; };
        const Matrix dxm{dx.data(), s.capacity, s.in}, dw0m{dw0.data(), s.out, s.in},
            dw1m{dw1.data(), s.out, s.in}, dwdm{dwd.data(), s.in, s.out};
        const ConstMatrix xm{xs.data(), s.capacity, s.in}, w0m{w0s.data(), s.out, s.in},
            w1m{w1s.data(), s.out, s.in}, wdm{wds.data(), s.in, s.out}, dy0m{dy0s.data(), s.capacity, s.out},
            dy1m{dy1s.data(), s.capacity, s.out}, dxs_as_dy{xs.data(), s.capacity, s.in};
        if (fused) {
          be->grouped_swiglu_forward(hidden_of(h->data()), hidden_of(gate->data()), hidden_of(up->data()), xm,
                                     w0m, w1m, groups);
          be->grouped_swiglu_backward(dwdm, hidden_of(dgate->data()), hidden_of(dup->data()),
                                      hidden_of(dh->data()), dxs_as_dy, hidden_of(h->data()), wdm,
                                      hidden_of(gate->data()), hidden_of(up->data()), groups);
          be->grouped_gate_up_backward(dw0m, dw1m, dxm, dy0m, dy1m, xm, w0m, w1m, groups, accumulate_dx,
                                       dx_up_m);
        } else {  // Backend's own bodies: the calls they stand for
          be->Backend::grouped_swiglu_forward(hidden_of(h->data()), hidden_of(gate->data()),
                                              hidden_of(up->data()), xm, w0m, w1m, groups);
          be->grouped_matmul_backward_weight(dwdm, dxs_as_dy, hidden_of(h->data()), groups);
          be->Backend::grouped_swiglu_backward_input(hidden_of(dgate->data()), hidden_of(dup->data()),
                                                     hidden_of(dh->data()), dxs_as_dy, wdm,
                                                     hidden_of(gate->data()), hidden_of(up->data()), groups);
          if (apart) {  // the weight pair, then the two input products as separate launches
            be->Backend::grouped_gate_up_backward(dw0m, dw1m, dxm, dy0m, dy1m, xm, w0m, w1m, groups,
                                                  accumulate_dx, dx_up_m);
          } else {
            be->Backend::grouped_matmul_backward_input_pair(dxm, dy0m, w0m, dy1m, w1m, groups, accumulate_dx);
            be->Backend::grouped_matmul_backward_weight_pair(dw0m, dy0m, dw1m, dy1m, xm, groups);
          }
        }
        std::vector<std::vector<float>> out{gate->download(),  up->download(),  h->download(),
                                            dgate->download(), dup->download(), dx.download(),
                                            dw0.download(),    dw1.download(),  dwd.download()};
        if (apart) out.push_back(dx_up->download());
        return out;
      };
      for (const auto& [accumulate_dx, apart] : kBoolPairs) {
        CAPTURE(accumulate_dx);
        CAPTURE(apart);
        const auto fused = run(true, accumulate_dx, apart), plain = run(false, accumulate_dx, apart);
        for (std::size_t i = 0; i < fused.size(); ++i) {
          CAPTURE(i);
          CHECK(fused[i] == plain[i]);
          for (float v : fused[i]) REQUIRE(std::isfinite(v));  // every element written
        }
      }
    }
  }
}

TEST_CASE("MoE load-balancing loss on the device") {
  const int experts = 7;
  const int64_t rows = 3000;
  auto fractions = random_floats(experts, 198), probs = random_floats(rows * experts, 199);
  for (auto& v : fractions) v = std::fabs(v);
  for (auto& v : probs) v = std::fabs(v);
  const auto run = [&](Backend& be) {
    Array dfractions(be, fractions), dprobs(be, probs);
    DeviceArray<double> aux(be, 1);
    be.moe_balance_loss(aux.data(), dfractions.data(), {dprobs.data(), rows, experts}, 0.01f);
    return aux.download()[0];
  };
  // The products and their sum in double in the same order; P_e's float
  // sums over 3000 rows differ in order (a tree on the device).
  CHECK(run(gpu()) == doctest::Approx(run(cpu())).epsilon(1e-5));
}
