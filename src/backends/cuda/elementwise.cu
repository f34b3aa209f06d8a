// Per-token kernels: activation quantization, RMSNorm (alone or fused with the quantization),
// RoPE and the f16 KV-cache store. Float steps use __f*_rn intrinsics where the CPU reference
// rounds every operation, so nvcc cannot contract them into FMAs.
#include <climits>
#include <cmath>

#include "backends/cuda/common.cuh"
#include "backends/cuda/kernels.h"

namespace bitnet::cuda {
namespace {

using detail::block_reduce;
using detail::MaxOp;
using detail::SumOp;

constexpr int kNormThreads = 256;

// One thread block per token. kNorm: the value of column c is g_c·(x_c·r) (ops::rms_norm), else
// x_c; it is recomputed identically wherever it is needed instead of being stored.
// normed (optional) receives the values; q == nullptr skips the quantization.
template <bool kNorm>
__global__ void __launch_bounds__(kNormThreads)
    norm_quantize_kernel(const float* __restrict__ x, const float* __restrict__ gain, int cols, float eps,
                         float* __restrict__ normed, int8_t* __restrict__ q, float* __restrict__ scale_out,
                         int* __restrict__ sum_out, int* __restrict__ block_sums_out, int padded_cols) {
  __shared__ double scratch_double[32];
  __shared__ float scratch_float[32];
  __shared__ int scratch_int[32];
  const int token = blockIdx.x;
  const float* xt = x + size_t(token) * cols;

  float norm_scale = 1.0f;
  if constexpr (kNorm) {
    double sum_squares = 0;  // each square is exact in double; only the order differs from the CPU
    for (int c = threadIdx.x; c < cols; c += blockDim.x) sum_squares += double(xt[c]) * double(xt[c]);
    sum_squares = block_reduce(sum_squares, scratch_double, SumOp<double>{});
    norm_scale = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(float(sum_squares / double(cols)), eps)));
  }
  auto value = [&](int c) -> float {
    if constexpr (kNorm)
      return __fmul_rn(gain[c], __fmul_rn(xt[c], norm_scale));
    else
      return xt[c];
  };

  if (normed)
    for (int c = threadIdx.x; c < cols; c += blockDim.x) normed[size_t(token) * cols + c] = value(c);
  if (!q) return;

  float abs_max = 0.0f;  // |x| is exact, so the max does not depend on the order
  for (int c = threadIdx.x; c < cols; c += blockDim.x) abs_max = fmaxf(abs_max, fabsf(value(c)));
  abs_max = block_reduce(abs_max, scratch_float, MaxOp{});
  const float scale = float(127.0 / fmax(double(abs_max), 1e-5));  // in double, as the CPU

  // Warp w quantizes blocks w, w + n_warps, …: lane l the 8 columns 256b + 8l … 256b + 8l + 7.
  const int lane = threadIdx.x % detail::kWarpSize, warp = threadIdx.x / detail::kWarpSize;
  const int n_warps = blockDim.x / detail::kWarpSize, n_blocks = padded_cols / int(kGpuBlock);
  int8_t* qt = q + size_t(token) * padded_cols;
  int token_sum = 0;
  for (int b = warp; b < n_blocks; b += n_warps) {
    const int c0 = b * int(kGpuBlock) + lane * 8;
    uint32_t packed[2] = {0, 0};
    int lane_sum = 0;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      int code = 0;  // the padding columns are 0
      if (c0 + i < cols) {
        const float rounded = rintf(__fmul_rn(value(c0 + i), scale));  // half to even, like the CPU's 1.5·2^23 trick
        code = int(fminf(fmaxf(rounded, -128.0f), 127.0f));
      }
      lane_sum += code;
      packed[i / 4] |= uint32_t(code & 0xff) << (8 * (i % 4));
    }
    *reinterpret_cast<uint2*>(qt + c0) = make_uint2(packed[0], packed[1]);
    const int block_sum = detail::warp_sum(lane_sum);
    if (lane == 0) block_sums_out[size_t(token) * n_blocks + b] = block_sum;
    token_sum += block_sum;  // the same in every lane of the warp
  }
  token_sum = block_reduce(lane == 0 ? token_sum : 0, scratch_int, SumOp<int>{});
  if (threadIdx.x == 0) {
    scale_out[token] = scale;
    sum_out[token] = token_sum;
  }
}

void check_quantize_shape(const char* name, int64_t n_tokens, int64_t cols, const DeviceActivations& out) {
  if (cols <= 0 || cols > out.padded_cols || out.padded_cols % kGpuBlock != 0 || out.padded_cols > INT_MAX)
    throw Error(std::string(name) + ": " + std::to_string(cols) + " columns do not fit " +
                std::to_string(out.padded_cols) + " padded columns (a multiple of 256)");
  if (n_tokens < 0 || n_tokens > INT_MAX) throw Error(std::string(name) + ": bad token count");
  if (reinterpret_cast<uintptr_t>(out.q) % 8 != 0) throw Error(std::string(name) + ": codes must be 8-byte aligned");
}

__global__ void rope_kernel(float* __restrict__ x, int n_heads, int head_dim, int n_rot,
                            const int* __restrict__ positions, float freq_scale, float theta_scale, bool neox) {
  const int token = blockIdx.x, head = blockIdx.y, j = threadIdx.x;
  // θ_j by j multiplications, the sequence of ops::rope_angles (not pow per pair).
  float theta = __fmul_rn(float(positions[token]), freq_scale);
  for (int i = 0; i < j; ++i) theta = __fmul_rn(theta, theta_scale);
  float sin_theta, cos_theta;
  sincosf(theta, &sin_theta, &cos_theta);
  float* h = x + (size_t(token) * n_heads + head) * head_dim;
  const int half = n_rot / 2;
  const int iu = neox ? j : 2 * j, iv = neox ? j + half : 2 * j + 1;
  const float a = h[iu], b = h[iv];
  h[iu] = __fsub_rn(__fmul_rn(a, cos_theta), __fmul_rn(b, sin_theta));
  h[iv] = __fadd_rn(__fmul_rn(a, sin_theta), __fmul_rn(b, cos_theta));
}

__global__ void store_kv_kernel(const float* __restrict__ k, const float* __restrict__ v,
                                const int* __restrict__ positions, __half* __restrict__ keys,
                                __half* __restrict__ values, int n_kv_heads, int head_dim, long long capacity,
                                const int* __restrict__ seq_ids, long long seq_stride) {
  const int token = blockIdx.x, head = blockIdx.y;
  const int pos = positions[token];
  if (pos < 0 || pos >= capacity) return;  // the caller checks positions; never write out of bounds
  const size_t src = (size_t(token) * n_kv_heads + head) * head_dim;
  const size_t seq_base = seq_ids ? size_t(seq_ids[token]) * size_t(seq_stride) : 0;
  const size_t dst = seq_base + (size_t(head) * capacity + pos) * head_dim;
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
    keys[dst + d] = __float2half_rn(k[src + d]);
    values[dst + d] = __float2half_rn(v[src + d]);
  }
}

}  // namespace

void quantize_activations(const float* x, int64_t n_tokens, int64_t cols, const DeviceActivations& out,
                          Stream stream) {
  check_quantize_shape("quantize_activations", n_tokens, cols, out);
  if (n_tokens == 0) return;
  norm_quantize_kernel<false><<<unsigned(n_tokens), kNormThreads, 0, detail::native(stream)>>>(
      x, nullptr, int(cols), 0.0f, nullptr, out.q, out.scale, out.sum, out.block_sums, int(out.padded_cols));
  detail::check_launch("quantize_activations");
}

void rms_norm(const float* x, const float* gain, int64_t n_tokens, int64_t cols, float eps, float* out,
              Stream stream) {
  if (cols <= 0 || cols > INT_MAX || n_tokens < 0 || n_tokens > INT_MAX) throw Error("rms_norm: bad shape");
  if (n_tokens == 0) return;
  norm_quantize_kernel<true><<<unsigned(n_tokens), kNormThreads, 0, detail::native(stream)>>>(
      x, gain, int(cols), eps, out, nullptr, nullptr, nullptr, nullptr, 0);
  detail::check_launch("rms_norm");
}

void rms_norm_quantize(const float* x, const float* gain, int64_t n_tokens, int64_t cols, float eps,
                       const DeviceActivations& out, float* normed, Stream stream) {
  check_quantize_shape("rms_norm_quantize", n_tokens, cols, out);
  if (n_tokens == 0) return;
  norm_quantize_kernel<true><<<unsigned(n_tokens), kNormThreads, 0, detail::native(stream)>>>(
      x, gain, int(cols), eps, normed, out.q, out.scale, out.sum, out.block_sums, int(out.padded_cols));
  detail::check_launch("rms_norm_quantize");
}

void rope(float* x, int64_t n_tokens, int n_heads, int head_dim, int n_rot, const int32_t* positions,
          float base, float freq_scale, RopePairing pairing, Stream stream) {
  if (n_rot <= 0 || n_rot % 2 != 0 || n_rot > head_dim || n_heads <= 0 || n_heads > 65535)
    throw Error("rope: bad shape (n_rot " + std::to_string(n_rot) + ", head_dim " + std::to_string(head_dim) +
                ", heads " + std::to_string(n_heads) + ")");
  if (n_tokens < 0 || n_tokens > INT_MAX) throw Error("rope: bad token count");
  if (n_tokens == 0) return;
  // The host's powf, as ops::rope_angles computes it, so every θ_j is the CPU's to the bit.
  const float theta_scale = std::pow(base, -2.0f / float(n_rot));
  rope_kernel<<<dim3(unsigned(n_tokens), unsigned(n_heads)), unsigned(n_rot / 2), 0, detail::native(stream)>>>(
      x, n_heads, head_dim, n_rot, positions, freq_scale, theta_scale, pairing == RopePairing::Neox);
  detail::check_launch("rope");
}

void store_kv(const float* k, const float* v, int64_t n_tokens, const int32_t* positions,
              const DeviceKvCache& cache, Stream stream) {
  if (cache.n_kv_heads <= 0 || cache.n_kv_heads > 65535 || cache.head_dim <= 0 || cache.capacity <= 0)
    throw Error("store_kv: bad cache shape");
  if (n_tokens < 0 || n_tokens > INT_MAX) throw Error("store_kv: bad token count");
  if (n_tokens == 0) return;
  const unsigned threads = unsigned(cache.head_dim < 256 ? cache.head_dim : 256);
  store_kv_kernel<<<dim3(unsigned(n_tokens), unsigned(cache.n_kv_heads)), threads, 0, detail::native(stream)>>>(
      k, v, positions, reinterpret_cast<__half*>(cache.keys), reinterpret_cast<__half*>(cache.values),
      cache.n_kv_heads, cache.head_dim, cache.capacity, cache.seq_ids, cache.seq_stride);
  detail::check_launch("store_kv");
}

}  // namespace bitnet::cuda
