#pragma once
// The short-convolution featurizer of sa and linattn (and of deltanet): a
// causal depthwise convolution of `kernel` taps, without bias, on one
// projection's output (q, k or v of one feature group), as STAR's featurizer
// option and as modern linear attention (fla's ShortConvolution) put it:
//   q_t = sum_j w[c, j] * (x W_q^T)_{t - (kernel - 1) + j}
// With kernel 0 it is off and every call is the identity on the caller's
// buffer: the projection writes straight into `out` and backward hands back
// the gradient it was given.
//
// The weight holds the taps of every channel of a projection [channels_total,
// kernel]; one ShortConv covers `channels` of them starting at
// `first_channel` (a feature group of a doubled projection). Decode keeps
// the last kernel - 1 projected inputs of each sequence (causal_conv_forward's
// state, [decode_batch, kernel - 1, channels]).
#include <cstdint>

#include "evaluator/arena.hpp"
#include "evaluator/backend.hpp"
#include "evaluator/parameters.hpp"

namespace livs::evaluator {

class ShortConv {
 public:
  ShortConv() = default;
  ShortConv(const Param* weight, int64_t first_channel, int64_t channels, int kernel)
      : weight_(weight), first_(first_channel), channels_(channels), kernel_(kernel) {}

  bool on() const { return kernel_ > 0; }
  int64_t state_floats() const { return on() ? (kernel_ - 1) * channels_ : 0; }

  // rows: training tokens (with gradients) or 0; decode_rows: decode batch or 0.
  void plan(Arena& arena, int64_t rows, int64_t decode_rows) {
    if (!on()) return;
    if (rows > 0) {
      arena.reserve(&pre_, rows * channels_);
      arena.reserve(&dpre_, rows * channels_);
    }
    if (decode_rows > 0) {
      arena.reserve(&dec_pre_, decode_rows * channels_);
      arena.reserve_state(&state_, decode_rows * state_floats());
    }
  }

  // Where the projection writes: our input buffer, or `out` itself when off.
  float* input(float* out, bool decode) const {
    if (!on()) return out;
    return decode ? dec_pre_ : pre_;
  }
  // out = conv(input) (training: zero history; decode: through the state).
  void forward(Backend& be, float* out, int batch, int seq, bool decode) const {
    if (!on()) return;
    be.causal_conv_forward(out, decode ? dec_pre_ : pre_, taps(), nullptr, decode ? state_ : nullptr,
                           {batch, seq, int(channels_), kernel_});
  }
  // The gradient of the projection's output from that of the conv's output
  // (and the taps' gradient); `dout` itself when off.
  const float* backward(Backend& be, const float* dout, int batch, int seq) const {
    if (!on()) return dout;
    be.causal_conv_backward(dpre_, weight_->grad + first_ * kernel_, nullptr, dout, pre_, taps(),
                            {batch, seq, int(channels_), kernel_}, /*accumulate_dx=*/false);
    return dpre_;
  }

 private:
  const float* taps() const { return weight_->value + first_ * kernel_; }

  const Param* weight_ = nullptr;
  int64_t first_ = 0, channels_ = 0;
  int kernel_ = 0;
  float *pre_ = nullptr, *dpre_ = nullptr, *dec_pre_ = nullptr, *state_ = nullptr;
};

}  // namespace livs::evaluator
