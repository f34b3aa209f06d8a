// The element-wise steps of a transformer layer on the GPU (offload.cpp): projection scales, the
// residual add, the gated FFN activation, and the row gather before the head. One thread per
// element; every float step is an __f*_rn intrinsic where the CPU rounds each operation, so nvcc
// cannot contract them into FMAs and the results match the CPU's bit for bit (SiLU excepted: expf).
#include <climits>

#include "backends/cuda/common.cuh"
#include "backends/cuda/kernels.h"

namespace bitnet::cuda {
namespace {

constexpr int kThreads = 256;

unsigned grid_for(int64_t n) { return unsigned((n + kThreads - 1) / kThreads); }

void check_count(const char* what, int64_t n) {
  if (n < 0 || n > int64_t(INT_MAX) * 64) throw Error(std::string(what) + ": bad element count");
}

__global__ void scale_kernel(float* __restrict__ y, long long n, float s) {
  const long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  if (i < n) y[i] = __fmul_rn(y[i], s);
}

__global__ void add_scaled_kernel(float* __restrict__ x, const float* __restrict__ y, long long n, float s) {
  const long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  if (i < n) x[i] = __fadd_rn(x[i], __fmul_rn(y[i], s));
}

__global__ void relu_squared_mul_kernel(float* __restrict__ g, const float* __restrict__ u, long long n) {
  const long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  if (i < n) {
    const float z = g[i];
    g[i] = __fmul_rn(z > 0.0f ? __fmul_rn(z, z) : 0.0f, u[i]);
  }
}

__global__ void silu_mul_kernel(float* __restrict__ g, const float* __restrict__ u, long long n) {
  const long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  if (i < n) {
    const float z = g[i];
    g[i] = __fmul_rn(__fdiv_rn(z, __fadd_rn(1.0f, expf(-z))), u[i]);
  }
}

__global__ void gather_rows_kernel(const float* __restrict__ src, const int* __restrict__ rows, int width,
                                   float* __restrict__ dst) {
  const int r = blockIdx.x;
  const float* from = src + size_t(rows[r]) * width;
  float* to = dst + size_t(r) * width;
  for (int c = threadIdx.x; c < width; c += blockDim.x) to[c] = from[c];
}

}  // namespace

void scale_in_place(float* y, int64_t n, float s, Stream stream) {
  check_count("scale_in_place", n);
  if (n == 0) return;
  scale_kernel<<<grid_for(n), kThreads, 0, detail::native(stream)>>>(y, n, s);
  detail::check_launch("scale_in_place");
}

void add_scaled(float* x, const float* y, int64_t n, float s, Stream stream) {
  check_count("add_scaled", n);
  if (n == 0) return;
  add_scaled_kernel<<<grid_for(n), kThreads, 0, detail::native(stream)>>>(x, y, n, s);
  detail::check_launch("add_scaled");
}

void relu_squared_mul(float* g, const float* u, int64_t n, Stream stream) {
  check_count("relu_squared_mul", n);
  if (n == 0) return;
  relu_squared_mul_kernel<<<grid_for(n), kThreads, 0, detail::native(stream)>>>(g, u, n);
  detail::check_launch("relu_squared_mul");
}

void silu_mul(float* g, const float* u, int64_t n, Stream stream) {
  check_count("silu_mul", n);
  if (n == 0) return;
  silu_mul_kernel<<<grid_for(n), kThreads, 0, detail::native(stream)>>>(g, u, n);
  detail::check_launch("silu_mul");
}

void gather_rows(const float* src, const int32_t* rows, int64_t n_rows, int64_t width, float* dst, Stream stream) {
  if (n_rows < 0 || n_rows > INT_MAX || width <= 0 || width > INT_MAX) throw Error("gather_rows: bad shape");
  if (n_rows == 0) return;
  gather_rows_kernel<<<unsigned(n_rows), kThreads, 0, detail::native(stream)>>>(src, rows, int(width), dst);
  detail::check_launch("gather_rows");
}

}  // namespace bitnet::cuda
