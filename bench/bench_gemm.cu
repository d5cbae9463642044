// bench/bench_gemm: the linear layers of the MFU shape (transformer, d 512,
// T 1024, batch 16, vocab 50304) through cuBLAS, three ways, to choose how
// the CUDA backend feeds its tensor cores:
//   fast16bf   fp32 inputs, CUBLAS_COMPUTE_32F_FAST_16BF (cuBLAS rounds in the kernel)
//   convert    fp32 inputs converted to bf16 copies first (conversion timed in), bf16 GEMM
//   bf16       inputs already bf16 (what bf16 activation storage would give)
//   tf32       fp32 inputs, CUBLAS_COMPUTE_32F_FAST_TF32 (no copies; tf32 keeps
//              10 mantissa bits to bf16's 7, at half bf16's peak rate)
//   bf16 out   bf16 inputs and a bf16 output (the LM head's logits)
// Output fp32 except in the last column. ms is the median of 20 runs after 5 warm-ups,
// timed with CUDA events.
//
//   bench_gemm
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}
void check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) {
    std::fprintf(stderr, "%s: %s\n", what, cublasGetStatusString(s));
    std::exit(1);
  }
}

__global__ void to_bf16(__nv_bfloat16* dst, const float* src, long n) {
  for (long i = blockIdx.x * long(blockDim.x) + threadIdx.x; i < n; i += long(gridDim.x) * blockDim.x)
    dst[i] = __float2bfloat16_rn(src[i]);
}
__global__ void fill_pattern(float* x, long n) {
  for (long i = blockIdx.x * long(blockDim.x) + threadIdx.x; i < n; i += long(gridDim.x) * blockDim.x)
    x[i] = float((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
}

float median_ms(cudaStream_t stream, const std::function<void()>& run) {
  cudaEvent_t a, b;
  check(cudaEventCreate(&a), "event");
  check(cudaEventCreate(&b), "event");
  for (int i = 0; i < 5; ++i) run();
  std::vector<float> ms;
  for (int i = 0; i < 20; ++i) {
    check(cudaEventRecord(a, stream), "record");
    run();
    check(cudaEventRecord(b, stream), "record");
    check(cudaEventSynchronize(b), "sync");
    float t = 0;
    check(cudaEventElapsedTime(&t, a, b), "elapsed");
    ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return ms[ms.size() / 2];
}

}  // namespace

int main() {
  const long tokens = 16L * 1024, d = 512, vocab = 50304, hidden = 1368;
  struct Shape {
    const char* name;
    long m, n, k;  // C[m, n] = A[m, k] B[k, n] (row-major view of the layer)
  };
  const Shape shapes[] = {
      {"qkv      x W^T", tokens, 3 * d, d},        {"out      x W^T", tokens, d, d},
      {"mlp up   x W^T", tokens, 2 * hidden, d},   {"mlp down x W^T", tokens, d, hidden},
      {"lm head  x E^T", tokens, vocab, d},        {"lm head  dW = dy^T x", vocab, d, tokens},
      {"lm head  dx = dy E", tokens, d, vocab},    {"qkv      dx = dy W", tokens, d, 3 * d},
      {"qkv      dW = dy^T x", 3 * d, d, tokens},  {"mlp up   dW = dy^T x", 2 * hidden, d, tokens},
      {"mlp down dW = dy^T x", d, hidden, tokens},
  };
  cudaStream_t stream;
  check(cudaStreamCreate(&stream), "stream");
  cublasHandle_t handle;
  check(cublasCreate(&handle), "cublas");
  check(cublasSetStream(handle, stream), "stream");
  void* workspace = nullptr;
  check(cudaMalloc(&workspace, 64 << 20), "workspace");
  check(cublasSetWorkspace(handle, workspace, 64 << 20), "workspace");
  std::printf("%-22s %6s %6s %6s %12s %12s %12s %12s %12s   (ms; TFLOP/s)\n", "gemm", "m", "n", "k",
              "fast16bf", "convert", "bf16", "tf32", "bf16 out");
  double total[5] = {0, 0, 0, 0, 0};
  for (const Shape& s : shapes) {
    float *a, *b, *c;
    __nv_bfloat16 *a16, *b16, *c16;
    check(cudaMalloc(&a, s.m * s.k * 4), "a");
    check(cudaMalloc(&b, s.k * s.n * 4), "b");
    check(cudaMalloc(&c, s.m * s.n * 4), "c");
    check(cudaMalloc(&a16, s.m * s.k * 2), "a16");
    check(cudaMalloc(&b16, s.k * s.n * 2), "b16");
    check(cudaMalloc(&c16, s.m * s.n * 2), "c16");
    fill_pattern<<<1024, 256, 0, stream>>>(a, s.m * s.k);
    fill_pattern<<<1024, 256, 0, stream>>>(b, s.k * s.n);
    const float alpha = 1, beta = 0;
    // Row-major C = A B is column-major C^T = B^T A^T: m' = n, n' = m.
    auto gemm = [&](const void* pa, const void* pb, cudaDataType type, cublasComputeType_t compute,
                    bool bf16_out = false) {
      check(cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, int(s.n), int(s.m), int(s.k), &alpha, pb, type,
                         int(s.n), pa, type, int(s.k), &beta, bf16_out ? static_cast<void*>(c16) : c,
                         bf16_out ? CUDA_R_16BF : CUDA_R_32F, int(s.n), compute, CUBLAS_GEMM_DEFAULT),
            "gemm");
    };
    const float fast = median_ms(stream, [&] { gemm(a, b, CUDA_R_32F, CUBLAS_COMPUTE_32F_FAST_16BF); });
    const float convert = median_ms(stream, [&] {
      to_bf16<<<2048, 256, 0, stream>>>(a16, a, s.m * s.k);
      to_bf16<<<2048, 256, 0, stream>>>(b16, b, s.k * s.n);
      gemm(a16, b16, CUDA_R_16BF, CUBLAS_COMPUTE_32F);
    });
    const float bf16 = median_ms(stream, [&] { gemm(a16, b16, CUDA_R_16BF, CUBLAS_COMPUTE_32F); });
    const float tf32 = median_ms(stream, [&] { gemm(a, b, CUDA_R_32F, CUBLAS_COMPUTE_32F_FAST_TF32); });
    const float bf16_out = median_ms(stream, [&] { gemm(a16, b16, CUDA_R_16BF, CUBLAS_COMPUTE_32F, true); });
    const double flops = 2.0 * s.m * s.n * s.k;
    const float ms[5] = {fast, convert, bf16, tf32, bf16_out};
    std::printf("%-22s %6ld %6ld %6ld", s.name, s.m, s.n, s.k);
    for (int i = 0; i < 5; ++i) {
      std::printf(" %6.3f %5.0f", ms[i], flops / ms[i] * 1e-9);
      total[i] += ms[i];
    }
    std::printf("\n");
    cudaFree(a), cudaFree(b), cudaFree(c), cudaFree(a16), cudaFree(b16), cudaFree(c16);
  }
  std::printf("%-22s %20s", "sum of the rows", "");
  for (double t : total) std::printf(" %12.3f", t);
  std::printf("\n");
  return 0;
}
