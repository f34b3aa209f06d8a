// Attention of one query token per (head, token) over the f16 KV cache (the decode step; a batch of
// tokens of one sequence works too, each with its own n_kv).
//
// One thread block per (query head, token). Keys are taken in chunks of kChunk positions:
//   1. scores: warp w takes positions w, w + n_warps, …; its lanes split the head's dim pairs
//      (half2 loads, a warp reads a key row contiguously) and reduce with shuffles;
//   2. softmax over the chunk with a running max and sum (the previous chunks' output and sum are
//      rescaled by exp(old max − new max)), so any context length needs only kChunk floats of
//      shared memory;
//   3. values: thread i owns dim pair i % pairs and positions ≡ i / pairs (mod groups), so a group
//      of threads reads each value row contiguously; the groups' partial sums are added at the end.
// Not yet tuned (few blocks for long contexts: a split over positions would add parallelism).
#include <climits>

#include "backends/cuda/common.cuh"
#include "backends/cuda/kernels.h"

namespace bitnet::cuda {
namespace {

using detail::block_reduce;
using detail::MaxOp;
using detail::SumOp;

constexpr int kThreads = 256;
constexpr int kChunk = 1024;
constexpr int kMaxHeadDim = 256;
constexpr int kPairsPerLane = kMaxHeadDim / 2 / detail::kWarpSize;  // 4

__global__ void __launch_bounds__(kThreads)
    attention_decode_kernel(const float* __restrict__ q, int n_heads, int group_size, int head_dim,
                            const __half* __restrict__ keys, const __half* __restrict__ values, long long capacity,
                            const int* __restrict__ n_kv_per_token, float scale, float* __restrict__ out,
                            const int* __restrict__ seq_ids, long long seq_stride) {
  __shared__ float probs[kChunk];
  __shared__ float scratch[32];
  __shared__ float2 partial[kThreads];
  const int head = blockIdx.x, token = blockIdx.y;
  const int lane = threadIdx.x % detail::kWarpSize, warp = threadIdx.x / detail::kWarpSize;
  const int n_warps = blockDim.x / detail::kWarpSize;
  const int pairs = head_dim / 2;
  const int kv_head = head / group_size;
  const long long n_kv_requested = n_kv_per_token[token];
  const int n_kv = int(n_kv_requested < capacity ? n_kv_requested : capacity);
  float* out_head = out + (size_t(token) * n_heads + head) * head_dim;
  if (n_kv <= 0) {
    for (int d = threadIdx.x; d < head_dim; d += blockDim.x) out_head[d] = 0.0f;
    return;
  }
  const float* q_head = q + (size_t(token) * n_heads + head) * head_dim;
  const size_t seq_base = seq_ids ? size_t(seq_ids[token]) * size_t(seq_stride) : 0;
  const __half2* k_head =
      reinterpret_cast<const __half2*>(keys + seq_base + size_t(kv_head) * capacity * head_dim);
  const __half2* v_head =
      reinterpret_cast<const __half2*>(values + seq_base + size_t(kv_head) * capacity * head_dim);

  float2 q_pair[kPairsPerLane];
#pragma unroll
  for (int i = 0; i < kPairsPerLane; ++i) {
    const int pair = lane + detail::kWarpSize * i;
    q_pair[i] = pair < pairs ? make_float2(q_head[2 * pair], q_head[2 * pair + 1]) : make_float2(0.0f, 0.0f);
  }
  const int groups = blockDim.x / pairs;
  const int my_pair = threadIdx.x % pairs, my_group = threadIdx.x / pairs;
  const bool owns_values = my_group < groups;

  float2 o = make_float2(0.0f, 0.0f);
  float running_max = -INFINITY, running_sum = 0.0f;
  for (int chunk0 = 0; chunk0 < n_kv; chunk0 += kChunk) {
    const int n = min(kChunk, n_kv - chunk0);
    for (int p = warp; p < n; p += n_warps) {
      const __half2* k_row = k_head + size_t(chunk0 + p) * pairs;
      float dot = 0.0f;
#pragma unroll
      for (int i = 0; i < kPairsPerLane; ++i) {
        const int pair = lane + detail::kWarpSize * i;
        if (pair < pairs) {
          const float2 k = __half22float2(k_row[pair]);
          dot = fmaf(q_pair[i].x, k.x, dot);
          dot = fmaf(q_pair[i].y, k.y, dot);
        }
      }
      dot = detail::warp_sum(dot);
      if (lane == 0) probs[p] = dot * scale;
    }
    __syncthreads();

    float chunk_max = -INFINITY;
    for (int i = threadIdx.x; i < n; i += blockDim.x) chunk_max = fmaxf(chunk_max, probs[i]);
    chunk_max = block_reduce(chunk_max, scratch, MaxOp{});
    const float new_max = fmaxf(running_max, chunk_max);
    const float correction = expf(running_max - new_max);  // 0 for the first chunk (exp(−∞))
    float chunk_sum = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
      const float e = expf(probs[i] - new_max);
      probs[i] = e;
      chunk_sum += e;
    }
    chunk_sum = block_reduce(chunk_sum, scratch, SumOp<float>{});  // its barrier publishes probs
    running_sum = running_sum * correction + chunk_sum;
    running_max = new_max;

    o.x *= correction;
    o.y *= correction;
    if (owns_values) {
      for (int p = my_group; p < n; p += groups) {
        const float2 v = __half22float2(v_head[size_t(chunk0 + p) * pairs + my_pair]);
        o.x = fmaf(probs[p], v.x, o.x);
        o.y = fmaf(probs[p], v.y, o.y);
      }
    }
    __syncthreads();  // the next chunk overwrites probs
  }

  partial[threadIdx.x] = owns_values ? o : make_float2(0.0f, 0.0f);
  __syncthreads();
  const float inv_sum = 1.0f / running_sum;
  for (int pair = threadIdx.x; pair < pairs; pair += blockDim.x) {
    float2 total = make_float2(0.0f, 0.0f);
    for (int g = 0; g < groups; ++g) {
      total.x += partial[g * pairs + pair].x;
      total.y += partial[g * pairs + pair].y;
    }
    out_head[2 * pair] = total.x * inv_sum;
    out_head[2 * pair + 1] = total.y * inv_sum;
  }
}

}  // namespace

void attention_decode(const float* q, int64_t n_tokens, int n_heads, const DeviceKvCache& cache,
                      const int32_t* n_kv, float scale, float* out, Stream stream) {
  if (cache.head_dim <= 0 || cache.head_dim % 2 != 0 || cache.head_dim > kMaxHeadDim)
    throw Error("attention_decode: head_dim " + std::to_string(cache.head_dim) + " must be even and at most 256");
  if (cache.n_kv_heads <= 0 || n_heads <= 0 || n_heads % cache.n_kv_heads != 0)
    throw Error("attention_decode: " + std::to_string(n_heads) + " query heads do not group over " +
                std::to_string(cache.n_kv_heads) + " kv heads");
  if (cache.capacity <= 0 || n_tokens < 0 || n_tokens > 65535) throw Error("attention_decode: bad shape");
  if (n_tokens == 0) return;
  attention_decode_kernel<<<dim3(unsigned(n_heads), unsigned(n_tokens)), kThreads, 0, detail::native(stream)>>>(
      q, n_heads, n_heads / cache.n_kv_heads, cache.head_dim, reinterpret_cast<const __half*>(cache.keys),
      reinterpret_cast<const __half*>(cache.values), cache.capacity, n_kv, scale, out, cache.seq_ids,
      cache.seq_stride);
  detail::check_launch("attention_decode");
}

}  // namespace bitnet::cuda
