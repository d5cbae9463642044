#pragma once
// Small pieces shared by the convolution and scan operators (op_rec.cpp,
// op_ssm.cpp, op_gconv.cpp): a linear map through a block of rows of a weight
// (several projections live in one weight, e.g. Mamba's in_proj = [x; z]),
// and the buffer bookkeeping of a training pass and a decode pass.
#include <cstdint>
#include <initializer_list>

#include "evaluator/arena.hpp"
#include "evaluator/backend.hpp"
#include "evaluator/parameters.hpp"

namespace livs::evaluator {

// The differential form: the inner channels come in two halves and
// y = y_1 - (kDiffLambdaInit + diff_lambda) * y_2 per channel, diff_lambda
// starting at zero (the Differential Transformer's lambda_init, as sa and linattn use).
constexpr float kDiffLambdaInit = 0.8f;

// Rows [first_row, first_row + rows) of a weight [*, cols]: y = x W_block^T.
struct WeightRows {
  const Param* param = nullptr;
  int64_t first_row = 0, rows = 0, cols = 0;

  const float* value() const { return param->value + first_row * cols; }
  float* grad() const { return param->grad + first_row * cols; }

  void forward(Backend& be, float* y, const float* x, int64_t n) const {
    be.matmul({y, n, rows}, {x, n, cols}, {value(), rows, cols});
  }
  // dW_block += dy^T x; dx += dy W_block.
  void backward(Backend& be, const float* dy, const float* x, float* dx, int64_t n) const {
    be.matmul_backward_weight({grad(), rows, cols}, {dy, n, rows}, {x, n, cols});
    be.matmul_backward_input({dx, n, cols}, {dy, n, rows}, {value(), rows, cols});
  }
};

// Reserves `count` floats for each buffer.
inline void reserve_all(Arena& arena, std::initializer_list<float**> buffers, int64_t count) {
  for (float** b : buffers) arena.reserve(b, count);
}

// Zeroes internal gradient buffers at the start of a backward pass.
inline void zero_all(Backend& be, std::initializer_list<float*> buffers, int64_t count) {
  for (float* b : buffers) be.fill(b, count, 0.0f);
}

}  // namespace livs::evaluator
