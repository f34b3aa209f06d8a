// Ternary × int8 products over the GPU layout of gpu_layout.h, with __dp4a.
//
// Each warp computes kRows rows (for kTokens tokens). A step of the warp covers 8 GPU blocks (2048
// columns): lane l reads the 16-byte chunk l % 4 of block l / 4 of each of its rows (one coalesced
// uint4 load per row: 512 contiguous bytes per warp), and for each of its 4 words the 16 activation
// bytes of that word's group (one int4 per token, reused by all kRows rows), so the four lanes of a
// block read 64 contiguous activation bytes per word. Each word is 4 dp4a: plane p =
// (word >> 2p) & 0x03030303 against the int32 of activations p.
//
// Exactness: the dp4a sums are exact int32 (|Σ u·q| ≤ 2·128 per column). The float steps are the
// reference's (gpu_ternary_dot_reference, bitnet::dot_ternary_ref) written with __f*_rn intrinsics
// so that nvcc cannot contract them into FMAs:
//   per-tensor α:  ((float)S − (float)Q) / s · α
//   per-block d:   acc = acc + d_b·(float)isum_b in block order, then acc / s; each step's 8 block
//                  products are formed by the blocks' lanes, then added in order via shuffles.
#include <climits>

#include "backends/cuda/common.cuh"
#include "backends/cuda/kernels.h"

namespace bitnet::cuda {
namespace {

using detail::kFullMask;

constexpr int kWarpsPerThreadBlock = 4;
constexpr int kBlocksPerStep = 8;  // 32 lanes × 16 bytes = 8 GPU blocks of 64 bytes
// Shapes of the two entry points (rows per warp × tokens per tile). Not tuned on a GPU yet.
constexpr int kGemvRowsPerWarp = 4;
constexpr int kGemmRowsPerWarp = 2, kGemmTokens = 8;

// Σ u·q of one word's 16 codes against its 16 activation bytes.
__device__ __forceinline__ int dot_word(uint32_t word, int4 act, int acc) {
  acc = __dp4a(int(word & 0x03030303u), act.x, acc);
  acc = __dp4a(int((word >> 2) & 0x03030303u), act.y, acc);
  acc = __dp4a(int((word >> 4) & 0x03030303u), act.z, acc);
  acc = __dp4a(int((word >> 6) & 0x03030303u), act.w, acc);
  return acc;
}

template <int kRows, int kTokens, bool kPerBlockScale>
__global__ void __launch_bounds__(kWarpsPerThreadBlock * detail::kWarpSize)
    ternary_matmul_kernel(const uint4* __restrict__ codes, const __half* __restrict__ block_scales,
                          float tensor_scale, int rows, int blocks_per_row, const int8_t* __restrict__ q,
                          const float* __restrict__ act_scale, const int* __restrict__ act_sum,
                          const int* __restrict__ act_block_sums, int n_tokens, float* __restrict__ y) {
  const int lane = threadIdx.x % detail::kWarpSize;
  const int row0 = (blockIdx.x * kWarpsPerThreadBlock + threadIdx.x / detail::kWarpSize) * kRows;
  if (row0 >= rows) return;  // the whole warp leaves together: no shuffle below misses a lane
  const int token0 = blockIdx.y * kTokens;
  const int n = min(kTokens, n_tokens - token0);  // the same in the whole warp, like row0
  const size_t padded_cols = size_t(blocks_per_row) * kGpuBlock;
  const int block_in_step = lane / 4, chunk = lane % 4;
  const size_t row_stride = size_t(blocks_per_row) * kGpuBlockLanes;  // in uint4

  int code_sum[kRows][kTokens];  // per-tensor scale: this lane's Σ u·q
  float acc[kRows][kTokens];     // per-block scales: the ordered float sum, identical in every lane
#pragma unroll
  for (int r = 0; r < kRows; ++r)
#pragma unroll
    for (int t = 0; t < kTokens; ++t) {
      code_sum[r][t] = 0;
      acc[r][t] = 0.0f;
    }

  for (int step = 0; step < blocks_per_row; step += kBlocksPerStep) {
    const int block = step + block_in_step;
    const bool active = block < blocks_per_row;
    int part[kRows][kTokens];
#pragma unroll
    for (int r = 0; r < kRows; ++r)
#pragma unroll
      for (int t = 0; t < kTokens; ++t) part[r][t] = 0;
    if (active) {
      uint4 c[kRows];
#pragma unroll
      for (int r = 0; r < kRows; ++r)  // all rows' loads first: more bytes in flight
        c[r] = row0 + r < rows ? __ldg(codes + size_t(row0 + r) * row_stride + size_t(block) * kGpuBlockLanes + chunk)
                               : make_uint4(kGpuZeroWord, kGpuZeroWord, kGpuZeroWord, kGpuZeroWord);
#pragma unroll
      for (int t = 0; t < kTokens; ++t) {
        if (t < n) {
          // Word j holds the group 4j + chunk: activation bytes 64j + 16·chunk of the block.
          const int4* a = reinterpret_cast<const int4*>(q + size_t(token0 + t) * padded_cols +
                                                        size_t(block) * kGpuBlock + 16 * chunk);
          const int4 a0 = __ldg(a + 0), a1 = __ldg(a + 4), a2 = __ldg(a + 8), a3 = __ldg(a + 12);
#pragma unroll
          for (int r = 0; r < kRows; ++r) {
            int s = dot_word(c[r].x, a0, 0);
            s = dot_word(c[r].y, a1, s);
            s = dot_word(c[r].z, a2, s);
            part[r][t] = dot_word(c[r].w, a3, s);
          }
        }
      }
    }
    if constexpr (kPerBlockScale) {
      const int blocks_here = min(kBlocksPerStep, blocks_per_row - step);
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        const int row = min(row0 + r, rows - 1);  // a missing row computes garbage it never writes
#pragma unroll
        for (int t = 0; t < kTokens; ++t) {
          if (t < n) {
            int block_code_sum = part[r][t];
            block_code_sum += __shfl_xor_sync(kFullMask, block_code_sum, 1);
            block_code_sum += __shfl_xor_sync(kFullMask, block_code_sum, 2);
            float product = 0.0f;
            if (active) {
              const int isum = block_code_sum - act_block_sums[size_t(token0 + t) * blocks_per_row + block];
              product = __fmul_rn(__half2float(block_scales[size_t(row) * blocks_per_row + block]),
                                  __int2float_rn(isum));
            }
            for (int i = 0; i < blocks_here; ++i)
              acc[r][t] = __fadd_rn(acc[r][t], __shfl_sync(kFullMask, product, 4 * i));
          }
        }
      }
    } else {
#pragma unroll
      for (int r = 0; r < kRows; ++r)
#pragma unroll
        for (int t = 0; t < kTokens; ++t) code_sum[r][t] += part[r][t];
    }
  }

#pragma unroll
  for (int r = 0; r < kRows; ++r) {
#pragma unroll
    for (int t = 0; t < kTokens; ++t) {
      if (t < n) {
        const int token = token0 + t;
        float result;
        if constexpr (kPerBlockScale) {
          result = __fdiv_rn(acc[r][t], act_scale[token]);
        } else {
          const int S = detail::warp_sum(code_sum[r][t]);
          result = __fmul_rn(
              __fdiv_rn(__fsub_rn(__int2float_rn(S), __int2float_rn(act_sum[token])), act_scale[token]),
              tensor_scale);
        }
        if (lane == 0 && row0 + r < rows) y[size_t(token) * rows + row0 + r] = result;
      }
    }
  }
}

template <int kRows, int kTokens>
void launch(const DeviceTernaryMatrix& w, const DeviceActivations& act, int64_t n_tokens, float* y,
            Stream stream, const char* name) {
  if (w.padded_cols != act.padded_cols)
    throw Error(std::string(name) + ": activations have " + std::to_string(act.padded_cols) +
                " padded columns, the matrix " + std::to_string(w.padded_cols));
  if (w.rows <= 0 || w.rows > INT_MAX / 2 || w.padded_cols <= 0 || w.padded_cols % kGpuBlock != 0 ||
      w.padded_cols > INT_MAX)
    throw Error(std::string(name) + ": bad matrix shape " + std::to_string(w.rows) + "x" +
                std::to_string(w.padded_cols));
  if (reinterpret_cast<uintptr_t>(act.q) % 16 != 0)
    throw Error(std::string(name) + ": activation codes must be 16-byte aligned");
  if (n_tokens <= 0) return;
  const int64_t token_tiles = (n_tokens + kTokens - 1) / kTokens;
  if (token_tiles > 65535) throw Error(std::string(name) + ": too many tokens in one call");
  const int64_t rows_per_thread_block = int64_t(kWarpsPerThreadBlock) * kRows;
  const dim3 grid(unsigned((w.rows + rows_per_thread_block - 1) / rows_per_thread_block), unsigned(token_tiles));
  const dim3 block(kWarpsPerThreadBlock * detail::kWarpSize);
  const auto* codes = w.codes.as<const uint4>();
  const auto* scales = w.block_scales.as<const __half>();
  const int bpr = int(w.blocks_per_row());
  if (w.scale_kind == GpuScaleKind::PerBlock)
    ternary_matmul_kernel<kRows, kTokens, true><<<grid, block, 0, detail::native(stream)>>>(
        codes, scales, w.tensor_scale, int(w.rows), bpr, act.q, act.scale, act.sum, act.block_sums, int(n_tokens), y);
  else
    ternary_matmul_kernel<kRows, kTokens, false><<<grid, block, 0, detail::native(stream)>>>(
        codes, scales, w.tensor_scale, int(w.rows), bpr, act.q, act.scale, act.sum, act.block_sums, int(n_tokens), y);
  detail::check_launch(name);
}

}  // namespace

void ternary_gemv(const DeviceTernaryMatrix& w, const DeviceActivations& act, float* y, Stream stream) {
  launch<kGemvRowsPerWarp, 1>(w, act, 1, y, stream, "ternary_gemv");
}

void ternary_gemm(const DeviceTernaryMatrix& w, const DeviceActivations& act, int64_t n_tokens, float* y,
                  Stream stream) {
  launch<kGemmRowsPerWarp, kGemmTokens>(w, act, n_tokens, y, stream, "ternary_gemm");
}

void ternary_matmul(const DeviceTernaryMatrix& w, const DeviceActivations& act, int64_t n_tokens, float* y,
                    Stream stream) {
  if (n_tokens == 1)
    ternary_gemv(w, act, y, stream);
  else
    ternary_gemm(w, act, n_tokens, y, stream);
}

}  // namespace bitnet::cuda
