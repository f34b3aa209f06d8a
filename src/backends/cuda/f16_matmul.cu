// F16 weights × f32 activations (the output head, or a tied embedding matrix used as the head).
// One warp per row: lane l reads 8 halves (16 bytes) at a time, a warp 512 contiguous bytes; the
// products are accumulated in f32 (FMA) and reduced with shuffles. With several tokens each row is
// read once per tile of 8 tokens.
#include <climits>

#include "backends/cuda/common.cuh"
#include "backends/cuda/kernels.h"

namespace bitnet::cuda {
namespace {

constexpr int kRowsPerThreadBlock = 4;
constexpr int kTileTokens = 8;

template <int kTokens>
__global__ void __launch_bounds__(kRowsPerThreadBlock * detail::kWarpSize)
    f16_matmul_kernel(const __half* __restrict__ w, int rows, int cols, const float* __restrict__ x, int n_tokens,
                      float* __restrict__ y) {
  const int lane = threadIdx.x % detail::kWarpSize;
  const int row = blockIdx.x * kRowsPerThreadBlock + threadIdx.x / detail::kWarpSize;
  if (row >= rows) return;  // whole warp
  const int token0 = blockIdx.y * kTokens;
  const int n = min(kTokens, n_tokens - token0);
  const __half* w_row = w + size_t(row) * cols;
  float acc[kTokens];
#pragma unroll
  for (int t = 0; t < kTokens; ++t) acc[t] = 0.0f;

  if (cols % 8 == 0) {  // rows start 16-byte aligned: vector loads
    const uint4* w8 = reinterpret_cast<const uint4*>(w_row);
    for (int c8 = lane; c8 < cols / 8; c8 += detail::kWarpSize) {
      const uint4 raw = __ldg(w8 + c8);
      const __half2* h = reinterpret_cast<const __half2*>(&raw);
      float wf[8];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float2 f = __half22float2(h[i]);
        wf[2 * i] = f.x;
        wf[2 * i + 1] = f.y;
      }
#pragma unroll
      for (int t = 0; t < kTokens; ++t) {
        if (t < n) {
          const float4* xp = reinterpret_cast<const float4*>(x + size_t(token0 + t) * cols + size_t(c8) * 8);
          const float4 a = __ldg(xp), b = __ldg(xp + 1);
          float s = acc[t];
          s = fmaf(wf[0], a.x, s);
          s = fmaf(wf[1], a.y, s);
          s = fmaf(wf[2], a.z, s);
          s = fmaf(wf[3], a.w, s);
          s = fmaf(wf[4], b.x, s);
          s = fmaf(wf[5], b.y, s);
          s = fmaf(wf[6], b.z, s);
          s = fmaf(wf[7], b.w, s);
          acc[t] = s;
        }
      }
    }
  } else {
    for (int c = lane; c < cols; c += detail::kWarpSize) {
      const float wf = __half2float(w_row[c]);
#pragma unroll
      for (int t = 0; t < kTokens; ++t)
        if (t < n) acc[t] = fmaf(wf, x[size_t(token0 + t) * cols + c], acc[t]);
    }
  }

#pragma unroll
  for (int t = 0; t < kTokens; ++t) {
    if (t < n) {
      const float total = detail::warp_sum(acc[t]);
      if (lane == 0) y[size_t(token0 + t) * rows + row] = total;
    }
  }
}

template <int kTokens>
void launch(const uint16_t* w, int64_t rows, int64_t cols, const float* x, int64_t n_tokens, float* y, Stream stream) {
  const int64_t tiles = (n_tokens + kTokens - 1) / kTokens;
  if (tiles > 65535) throw Error("f16_matmul: too many tokens in one call");
  const dim3 grid(unsigned((rows + kRowsPerThreadBlock - 1) / kRowsPerThreadBlock), unsigned(tiles));
  f16_matmul_kernel<kTokens><<<grid, kRowsPerThreadBlock * detail::kWarpSize, 0, detail::native(stream)>>>(
      reinterpret_cast<const __half*>(w), int(rows), int(cols), x, int(n_tokens), y);
  detail::check_launch("f16_matmul");
}

}  // namespace

void f16_matmul(const uint16_t* w, int64_t rows, int64_t cols, const float* x, int64_t n_tokens, float* y,
                Stream stream) {
  if (rows <= 0 || rows > INT_MAX || cols <= 0 || cols > INT_MAX || n_tokens < 0)
    throw Error("f16_matmul: bad shape " + std::to_string(rows) + "x" + std::to_string(cols));
  if (cols % 8 == 0 && (reinterpret_cast<uintptr_t>(w) % 16 != 0 || reinterpret_cast<uintptr_t>(x) % 16 != 0))
    throw Error("f16_matmul: weights and activations must be 16-byte aligned");
  if (n_tokens == 0) return;
  if (n_tokens == 1)
    launch<1>(w, rows, cols, x, n_tokens, y, stream);
  else
    launch<kTileTokens>(w, rows, cols, x, n_tokens, y, stream);
}

}  // namespace bitnet::cuda
