// Mixture of experts on the CPU: softmax router with top-k selection and
// renormalised weights, the Switch/GShard load-balancing statistics,
// deterministic dispatch (a stable counting sort by expert), gather and
// weighted combine. Every output row has one owner; sums run in a fixed order.
#include <tbb/parallel_for.h>

#include <cmath>
#include <vector>

#include "evaluator/cpu/cpu_backend.hpp"
#include "evaluator/cpu/dot.hpp"

namespace livs::evaluator {

namespace {
constexpr int64_t kRowGrain = 16;
}  // namespace

void CpuBackend::moe_route(float* probs, int32_t* top_index, float* top_weight, ConstMatrix logits,
                           int top_k) {
  const int64_t rows = logits.rows, experts = logits.cols;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, rows, kRowGrain), [&](const auto& r) {
    for (int64_t n = r.begin(); n != r.end(); ++n) {
      const float* l = logits.data + n * experts;
      float* p = probs + n * experts;
      float max = l[0];
      for (int64_t e = 1; e < experts; ++e) max = std::max(max, l[e]);
      float sum = 0.0f;
      for (int64_t e = 0; e < experts; ++e) sum += (p[e] = std::exp(l[e] - max));
      for (int64_t e = 0; e < experts; ++e) p[e] /= sum;
      // Top-k by repeated arg-max; ">" keeps the lower index on ties.
      float chosen_sum = 0.0f;
      for (int j = 0; j < top_k; ++j) {
        int32_t best = -1;
        for (int64_t e = 0; e < experts; ++e) {
          bool taken = false;
          for (int i = 0; i < j; ++i) taken = taken || top_index[n * top_k + i] == e;
          if (!taken && (best < 0 || p[e] > p[best])) best = int32_t(e);
        }
        top_index[n * top_k + j] = best;
        chosen_sum += p[best];
      }
      for (int j = 0; j < top_k; ++j) top_weight[n * top_k + j] = p[top_index[n * top_k + j]] / chosen_sum;
    }
  });
}

// Per row: dp_e = aux_weight * E * f_e / rows (the load-balancing term, f held
// constant), plus, for each chosen expert i_j with w_j = p_{i_j} / P,
// dp_{i_j} += (dw_j - sum_l dw_l w_l) / P; then dlogits += p * (dp - p . dp).
void CpuBackend::moe_route_backward(Matrix dlogits, const float* dtop_weight, const float* probs,
                                    const int32_t* top_index, const float* top_weight,
                                    const float* expert_fractions, int top_k, float aux_weight) {
  const int64_t rows = dlogits.rows, experts = dlogits.cols;
  const float balance = aux_weight * float(experts) / float(rows);
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, rows, kRowGrain), [&](const auto& r) {
    thread_local std::vector<float> dp_buffer;
    if (dp_buffer.size() < std::size_t(experts)) dp_buffer.resize(std::size_t(experts));
    float* dp = dp_buffer.data();
    for (int64_t n = r.begin(); n != r.end(); ++n) {
      const float* p = probs + n * experts;
      const int32_t* idx = top_index + n * top_k;
      for (int64_t e = 0; e < experts; ++e) dp[e] = balance * expert_fractions[e];
      float chosen_sum = 0.0f, weighted = 0.0f;
      for (int j = 0; j < top_k; ++j) {
        chosen_sum += p[idx[j]];
        weighted += dtop_weight[n * top_k + j] * top_weight[n * top_k + j];
      }
      for (int j = 0; j < top_k; ++j) dp[idx[j]] += (dtop_weight[n * top_k + j] - weighted) / chosen_sum;
      const float pdp = cpu::dot(p, dp, experts);
      for (int64_t e = 0; e < experts; ++e) dlogits.data[n * experts + e] = p[e] * (dp[e] - pdp);
    }
  });
}

void CpuBackend::moe_dispatch(int32_t* order, int32_t* position, int32_t* offsets, float* expert_fractions,
                              const int32_t* top_index, int64_t rows, int top_k, int experts) {
  const int64_t assignments = rows * top_k;
  for (int e = 0; e <= experts; ++e) offsets[e] = 0;
  for (int64_t a = 0; a < assignments; ++a) ++offsets[top_index[a] + 1];
  for (int e = 0; e < experts; ++e)
    expert_fractions[e] = assignments > 0 ? float(double(offsets[e + 1]) / double(assignments)) : 0.0f;
  for (int e = 0; e < experts; ++e) offsets[e + 1] += offsets[e];
  // Stable: assignments of one expert keep their token order.
  for (int e = 0; e < experts; ++e) {
    int32_t next = offsets[e];
    for (int64_t a = 0; a < assignments; ++a)
      if (top_index[a] == e) {
        order[next] = int32_t(a);
        position[a] = next++;
      }
  }
}

void CpuBackend::moe_gather(Matrix xs, ConstMatrix x, const int32_t* order, int top_k) {
  const int64_t cols = x.cols;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, xs.rows, kRowGrain), [&](const auto& r) {
    for (int64_t p = r.begin(); p != r.end(); ++p) {
      const float* src = x.data + int64_t(order[p] / top_k) * cols;
      std::copy(src, src + cols, xs.data + p * cols);
    }
  });
}

void CpuBackend::moe_gather_backward(Matrix dx, ConstMatrix dxs, const int32_t* position, int top_k) {
  const int64_t cols = dx.cols;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, dx.rows, kRowGrain), [&](const auto& r) {
    for (int64_t n = r.begin(); n != r.end(); ++n)
      for (int j = 0; j < top_k; ++j)
        cpu::axpy(dx.data + n * cols, 1.0f, dxs.data + int64_t(position[n * top_k + j]) * cols, cols);
  });
}

void CpuBackend::moe_combine(Matrix y, ConstMatrix ys, const float* top_weight, const int32_t* position,
                             int top_k) {
  const int64_t cols = y.cols;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, y.rows, kRowGrain), [&](const auto& r) {
    for (int64_t n = r.begin(); n != r.end(); ++n) {
      float* out = y.data + n * cols;
      std::fill(out, out + cols, 0.0f);
      for (int j = 0; j < top_k; ++j)
        cpu::axpy(out, top_weight[n * top_k + j], ys.data + int64_t(position[n * top_k + j]) * cols, cols);
    }
  });
}

void CpuBackend::moe_combine_backward(Matrix dys, float* dtop_weight, ConstMatrix dy, ConstMatrix ys,
                                      const float* top_weight, const int32_t* position, int top_k) {
  const int64_t cols = dy.cols;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, dy.rows, kRowGrain), [&](const auto& r) {
    for (int64_t n = r.begin(); n != r.end(); ++n)
      for (int j = 0; j < top_k; ++j) {
        const int64_t a = n * top_k + j, p = position[a];
        float* out = dys.data + p * cols;
        std::fill(out, out + cols, 0.0f);
        cpu::axpy(out, top_weight[a], dy.data + n * cols, cols);  // (the bits of 0 + w dy, as before)
        dtop_weight[a] = cpu::dot(dy.data + n * cols, ys.data + p * cols, cols);
      }
  });
}

void CpuBackend::moe_balance_loss(double* out, const float* expert_fractions, ConstMatrix probs,
                                  float aux_weight) {
  const int64_t rows = probs.rows, experts = probs.cols;
  double sum = 0.0;
  for (int64_t e = 0; e < experts; ++e) {
    float mean = 0.0f;  // P_e: the rows in order
    for (int64_t n = 0; n < rows; ++n) mean += probs.data[n * experts + e];
    mean = rows > 0 ? mean / float(rows) : 0.0f;
    sum += double(expert_fractions[e]) * double(mean);
  }
  out[0] = double(aux_weight) * double(experts) * sum;
}

namespace {

// Calls product(e, begin, count) for each expert e with rows [begin, begin + count), in expert order.
template <class Product>
void for_each_expert(ExpertRows rows, Product product) {
  for (int e = 0; e < rows.experts; ++e) {
    const int64_t begin = rows.offsets[e], count = rows.offsets[e + 1] - begin;
    if (count > 0) product(e, begin, count);
  }
}

// Rows [begin, begin + count) of a view.
template <class T>
MatrixView<T> row_range(MatrixView<T> m, int64_t begin, int64_t count) {
  return {m.data + begin * m.cols, count, m.cols};
}

// Expert e's matrix of a stack that starts with `first`.
template <class T>
MatrixView<T> expert_matrix(MatrixView<T> first, int e) {
  return {first.data + e * first.rows * first.cols, first.rows, first.cols};
}

}  // namespace

void CpuBackend::grouped_matmul(Matrix y, ConstMatrix x, ConstMatrix w, ExpertRows rows, bool accumulate) {
  for_each_expert(rows, [&](int e, int64_t begin, int64_t count) {
    matmul(row_range(y, begin, count), row_range(x, begin, count), expert_matrix(w, e), accumulate);
  });
}

void CpuBackend::grouped_matmul_backward_input(Matrix dx, ConstMatrix dy, ConstMatrix w, ExpertRows rows,
                                               bool accumulate) {
  for_each_expert(rows, [&](int e, int64_t begin, int64_t count) {
    matmul_backward_input(row_range(dx, begin, count), row_range(dy, begin, count), expert_matrix(w, e),
                          accumulate);
  });
}

void CpuBackend::grouped_matmul_backward_weight(Matrix dw, ConstMatrix dy, ConstMatrix x, ExpertRows rows) {
  for_each_expert(rows, [&](int e, int64_t begin, int64_t count) {
    matmul_backward_weight(expert_matrix(dw, e), row_range(dy, begin, count), row_range(x, begin, count));
  });
}

}  // namespace livs::evaluator
