#include "model/attention.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "formats/half.h"
#include "model/kv_cache.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace bitnet {
namespace {

constexpr int64_t kBlock = KvCache::kKeyBlock;  // positions per key block (= f32 lanes of AVX2)
// Positions are visited in chunks of kChunkBlocks key blocks (64 positions): a chunk's keys or
// values, converted to f32, stay in L1 while every query of the call uses them.
constexpr int64_t kChunkBlocks = 8;
constexpr int kScoreRows = 4;  // queries per score micro-kernel call
constexpr int kSumRows = 2;    // queries per weighted-sum micro-kernel call
// Up to this many queries read the f16 cache directly (where the level can); more share one f32
// copy of each chunk. A decode step of a grouped-query model brings one query per head of the
// group (4 on 2B-4T): converting its whole cache to f32 cost more than it saved (decode at 4000
// positions: 8.5 → 9.8 t/s).
constexpr int64_t kDirectF16MaxQueries = 16;

struct Scratch {
  std::vector<float> keys, values, scores, acc, inv_sum;
};

// Generic level: plain loops (multiply, then add). Reads f32 keys/values only.
struct GenericKernels {
  static constexpr bool kReadsF16 = false;

  static void convert(const uint16_t* src, float* dst, int64_t n) {
    for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(src[i]);
  }

  // s[i][b·8 + l] = Σ_d q[i][d]·k[b·stride + d·8 + l] for blocks b < n_blocks.
  static void scores(int rows, const float* const* q, int64_t hd, const float* k, int64_t stride,
                     int64_t n_blocks, float* const* s) {
    for (int i = 0; i < rows; ++i)
      for (int64_t b = 0; b < n_blocks; ++b) {
        float acc[kBlock] = {};
        const float* kb = k + b * stride;
        for (int64_t d = 0; d < hd; ++d)
          for (int64_t l = 0; l < kBlock; ++l) acc[l] += q[i][d] * kb[d * kBlock + l];
        std::copy(acc, acc + kBlock, s[i] + b * kBlock);
      }
  }

  // row[p] ← exp(scale·row[p] − max) for p < n_kv; returns 1 / Σ in double, 4 partial sums by p mod 4.
  static float softmax(float* row, int64_t n_kv, float scale) {
    float max_score = -INFINITY;
    for (int64_t p = 0; p < n_kv; ++p) max_score = std::max(max_score, row[p] *= scale);
    double part[4] = {0, 0, 0, 0};
    int64_t p = 0;
    for (; p + 4 <= n_kv; p += 4)
      for (int j = 0; j < 4; ++j) part[j] += row[p + j] = std::exp(row[p + j] - max_score);
    for (int j = 0; p < n_kv; ++p, ++j) part[j] += row[p] = std::exp(row[p] - max_score);
    return float(1.0 / ((part[0] + part[1]) + (part[2] + part[3])));
  }

  // acc[i][d] += Σ_{p < count} w[i][p]·v[p·stride + d], in order of p.
  static void weighted_sum(int rows, const float* const* w, const float* v, int64_t stride,
                           int64_t count, int64_t hd, float* const* acc) {
    for (int i = 0; i < rows; ++i)
      for (int64_t p = 0; p < count; ++p)
        for (int64_t d = 0; d < hd; ++d) acc[i][d] += w[i][p] * v[p * stride + d];
  }
};

#if defined(__x86_64__)
#define BITNET_ATTN_AVX2 __attribute__((target("avx2,fma,f16c")))

BITNET_ATTN_AVX2 inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
BITNET_ATTN_AVX2 inline __m256 load8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// R queries × B key blocks: R·B independent fma chains over d, 8 positions per register.
template <int R, int B, class K>
BITNET_ATTN_AVX2 void score_tile(const float* const* q, int64_t hd, const K* k, int64_t stride,
                                 float* const* s, int64_t s_offset) {
  __m256 acc[R][B];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < B; ++j) acc[i][j] = _mm256_setzero_ps();
  for (int64_t d = 0; d < hd; ++d) {
    __m256 kv[B];
#pragma GCC unroll 8
    for (int j = 0; j < B; ++j) kv[j] = load8(k + j * stride + d * kBlock);
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      const __m256 qd = _mm256_broadcast_ss(q[i] + d);
#pragma GCC unroll 8
      for (int j = 0; j < B; ++j) acc[i][j] = _mm256_fmadd_ps(qd, kv[j], acc[i][j]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < B; ++j) _mm256_storeu_ps(s[i] + s_offset + j * kBlock, acc[i][j]);
}

// The last `blocks` (< B) key blocks from block b0 in one tile: their chains run side by side
// instead of one block after another (each chain is head_dim fma latencies long).
template <int R, int B, class K>
BITNET_ATTN_AVX2 void score_rest(int blocks, const float* const* q, int64_t hd, const K* k, int64_t stride,
                                 float* const* s, int64_t b0) {
  if constexpr (B > 1) {
    if (blocks == B - 1) return score_tile<R, B - 1>(q, hd, k + b0 * stride, stride, s, b0 * kBlock);
    score_rest<R, B - 1>(blocks, q, hd, k, stride, s, b0);
  }
}

template <int R, int B, class K>
BITNET_ATTN_AVX2 void score_rows(const float* const* q, int64_t hd, const K* k, int64_t stride,
                                 int64_t n_blocks, float* const* s) {
  int64_t b = 0;
  for (; b + B <= n_blocks; b += B) score_tile<R, B>(q, hd, k + b * stride, stride, s, b * kBlock);
  if (b < n_blocks) score_rest<R, B>(int(n_blocks - b), q, hd, k, stride, s, b);
}

// R queries × V registers of dimensions: R·V independent fma chains over positions.
template <int R, int V, class T>
BITNET_ATTN_AVX2 void sum_tile(const float* const* w, const T* v, int64_t stride, int64_t count,
                               float* const* acc, int64_t d0) {
  __m256 a[R][V];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < V; ++j) a[i][j] = _mm256_loadu_ps(acc[i] + d0 + j * 8);
  for (int64_t p = 0; p < count; ++p) {
    __m256 vv[V];
#pragma GCC unroll 8
    for (int j = 0; j < V; ++j) vv[j] = load8(v + p * stride + d0 + j * 8);
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      const __m256 wp = _mm256_broadcast_ss(w[i] + p);
#pragma GCC unroll 8
      for (int j = 0; j < V; ++j) a[i][j] = _mm256_fmadd_ps(wp, vv[j], a[i][j]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < V; ++j) _mm256_storeu_ps(acc[i] + d0 + j * 8, a[i][j]);
}

// The last `regs` (< V) registers of dimensions from d0.
template <int R, int V, class T>
BITNET_ATTN_AVX2 void sum_rest(int regs, const float* const* w, const T* v, int64_t stride,
                               int64_t count, float* const* acc, int64_t d0) {
  if constexpr (V > 1) {
    if (regs == V - 1) return sum_tile<R, V - 1>(w, v, stride, count, acc, d0);
    sum_rest<R, V - 1>(regs, w, v, stride, count, acc, d0);
  }
}

BITNET_ATTN_AVX2 inline __m128 load4(const float* p) { return _mm_loadu_ps(p); }
BITNET_ATTN_AVX2 inline __m128 load4(const uint16_t* p) {
  return _mm_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}

inline float to_f32(float x) { return x; }
inline float to_f32(uint16_t h) { return fp16_to_fp32(h); }

template <int R, int V, class T>
BITNET_ATTN_AVX2 void sum_rows(const float* const* w, const T* v, int64_t stride, int64_t count,
                               int64_t hd, float* const* acc) {
  int64_t d = 0;
  for (; d + V * 8 <= hd; d += V * 8) sum_tile<R, V>(w, v, stride, count, acc, d);
  if (d + 8 <= hd) sum_rest<R, V>(int((hd - d) / 8), w, v, stride, count, acc, d);
  // Head sizes that are not a multiple of 8 (100 on bitnet_b1_58-3B): four more dimensions in one
  // 128-bit register, then the last ones one at a time, all with the same fused multiply-add per
  // position as the vector lanes (so the same floats).
  d = hd / 8 * 8;
  if (d + 4 <= hd) {
    for (int i = 0; i < R; ++i) {
      __m128 a = _mm_loadu_ps(acc[i] + d);
      for (int64_t p = 0; p < count; ++p) a = _mm_fmadd_ps(_mm_set1_ps(w[i][p]), load4(v + p * stride + d), a);
      _mm_storeu_ps(acc[i] + d, a);
    }
    d += 4;
  }
  for (; d < hd; ++d)
    for (int i = 0; i < R; ++i) {
      float a = acc[i][d];
      for (int64_t p = 0; p < count; ++p) a = std::fma(w[i][p], to_f32(v[p * stride + d]), a);
      acc[i][d] = a;
    }
}

// e^x for x ≤ 0 (Cephes expf: 2^n · polynomial, within 2 ulp); below ln(FLT_MIN) it returns
// about FLT_MIN instead of a subnormal or zero, far below the softmax's largest term of 1.
BITNET_ATTN_AVX2 inline __m256 exp8(__m256 x) {
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.33654f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  x = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  x = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), x);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
  const __m256i pow2n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(pow2n));
}

struct Avx2Kernels {
  static constexpr bool kReadsF16 = true;

  // As GenericKernels::softmax, 8 positions at a time: the sum has 8 partial sums by p mod 8.
  BITNET_ATTN_AVX2 static float softmax(float* row, int64_t n_kv, float scale) {
    const __m256 vscale = _mm256_set1_ps(scale);
    __m256 vmax = _mm256_set1_ps(-INFINITY);
    int64_t p = 0;
    for (; p + 8 <= n_kv; p += 8) {
      const __m256 x = _mm256_mul_ps(_mm256_loadu_ps(row + p), vscale);
      _mm256_storeu_ps(row + p, x);
      vmax = _mm256_max_ps(vmax, x);
    }
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, vmax);
    float max_score = -INFINITY;
    for (float x : lanes) max_score = std::max(max_score, x);
    for (; p < n_kv; ++p) max_score = std::max(max_score, row[p] *= scale);

    const __m256 vmax_score = _mm256_set1_ps(max_score);
    __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
    for (p = 0; p < n_kv; p += 8) {
      __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(row + p), vmax_score));
      if (n_kv - p < 8) {  // lanes past n_kv (stale scratch) count as 0
        const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        e = _mm256_and_ps(e, _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(int(n_kv - p)), lane)));
      }
      _mm256_storeu_ps(row + p, e);
      lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
      hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    alignas(32) double part[8];
    _mm256_store_pd(part, lo);
    _mm256_store_pd(part + 4, hi);
    const double sum = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
    return float(1.0 / sum);
  }

  BITNET_ATTN_AVX2 static void convert(const uint16_t* src, float* dst, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load8(src + i));
    for (; i < n; ++i) dst[i] = fp16_to_fp32(src[i]);
  }

  // Each row count gets enough independent chains (8 or 6) to hide the fma latency.
  template <class K>
  BITNET_ATTN_AVX2 static void scores(int rows, const float* const* q, int64_t hd, const K* k,
                                      int64_t stride, int64_t n_blocks, float* const* s) {
    switch (rows) {
      case 1: return score_rows<1, 8>(q, hd, k, stride, n_blocks, s);
      case 2: return score_rows<2, 4>(q, hd, k, stride, n_blocks, s);
      case 3: return score_rows<3, 2>(q, hd, k, stride, n_blocks, s);
      default: return score_rows<4, 2>(q, hd, k, stride, n_blocks, s);
    }
  }

  template <class T>
  BITNET_ATTN_AVX2 static void weighted_sum(int rows, const float* const* w, const T* v,
                                            int64_t stride, int64_t count, int64_t hd,
                                            float* const* acc) {
    if (rows == 1) return sum_rows<1, 8>(w, v, stride, count, hd, acc);
    sum_rows<2, 4>(w, v, stride, count, hd, acc);
  }
};
#endif

// The shared driver: scores chunk by chunk, softmax per query, weighted sum chunk by chunk.
// Few queries read the f16 cache directly (where the level can); more share one f32 copy of each
// chunk. Both give the same floats, since f16 → f32 is exact.
template <class Kernels>
void attend_with(const KvHead& kv, std::span<const AttentionQuery> queries, float scale) {
  static thread_local Scratch scratch;
  Scratch& s = scratch;
  const int64_t n = int64_t(queries.size()), hd = kv.head_dim;
  if (n == 0) return;
  int64_t n_kv_max = 0;
  for (const AttentionQuery& query : queries) n_kv_max = std::max(n_kv_max, query.n_kv);
  const int64_t n_blocks = (n_kv_max + kBlock - 1) / kBlock, ld = n_blocks * kBlock;
  const bool use_f32 = !Kernels::kReadsF16 || n > kDirectF16MaxQueries;
  s.scores.resize(size_t(n * ld));
  s.acc.assign(size_t(n * hd), 0.0f);
  s.inv_sum.resize(size_t(n));
  if (use_f32) {
    s.keys.resize(size_t(kChunkBlocks * kBlock * hd));
    s.values.resize(size_t(kChunkBlocks * kBlock * hd));
  }
  const float* q[kScoreRows];
  float* rows_out[kScoreRows];

  // Scores, 64 positions at a time; a group of queries stops at the last block any of them needs.
  for (int64_t c0 = 0; c0 < n_blocks; c0 += kChunkBlocks) {
    const int64_t c1 = std::min(n_blocks, c0 + kChunkBlocks);
    if (use_f32)
      for (int64_t b = c0; b < c1; ++b)
        Kernels::convert(kv.keys + b * kv.key_block_stride, &s.keys[size_t((b - c0) * kBlock * hd)],
                         kBlock * hd);
    for (int64_t r0 = 0; r0 < n; r0 += kScoreRows) {
      const int rows = int(std::min<int64_t>(kScoreRows, n - r0));
      int64_t need = 0;
      for (int i = 0; i < rows; ++i) {
        q[i] = queries[size_t(r0 + i)].q;
        rows_out[i] = &s.scores[size_t((r0 + i) * ld + c0 * kBlock)];
        need = std::max(need, (queries[size_t(r0 + i)].n_kv + kBlock - 1) / kBlock);
      }
      const int64_t blocks = std::min(c1, need) - c0;
      if (blocks <= 0) continue;
      if (use_f32)
        Kernels::scores(rows, q, hd, s.keys.data(), kBlock * hd, blocks, rows_out);
      else if constexpr (Kernels::kReadsF16)
        Kernels::scores(rows, q, hd, kv.keys + c0 * kv.key_block_stride, kv.key_block_stride,
                        blocks, rows_out);
    }
  }

  // Softmax numerators in place (a row has room up to the next multiple of 8); 1/sum per query.
  // A window's excluded positions enter the softmax as −∞ (no effect on the max; e ≤ FLT_MIN,
  // lost in a sum ≥ 1) and leave it as exact zeros for the weighted sum.
  for (int64_t r = 0; r < n; ++r) {
    float* row = &s.scores[size_t(r * ld)];
    const int64_t begin = std::min(queries[size_t(r)].kv_begin, queries[size_t(r)].n_kv);
    std::fill(row, row + begin, -INFINITY);
    s.inv_sum[size_t(r)] = Kernels::softmax(row, queries[size_t(r)].n_kv, scale);
    std::fill(row, row + begin, 0.0f);
  }

  // Weighted sum of values, 64 positions at a time. A pair of queries shares the positions both
  // attend to; the longer one finishes its own tail alone (same order of operations either way).
  const float* w[kSumRows];
  float* acc[kSumRows];
  for (int64_t c0 = 0; c0 < n_blocks; c0 += kChunkBlocks) {
    const int64_t p0 = c0 * kBlock, p1 = std::min(n_kv_max, (c0 + kChunkBlocks) * kBlock);
    if (use_f32)
      for (int64_t p = p0; p < p1; ++p)
        Kernels::convert(kv.values + p * kv.value_stride, &s.values[size_t((p - p0) * hd)], hd);
    auto sum = [&](int rows, const float* const* weights, int64_t from, int64_t to, float* const* into) {
      if (use_f32)
        Kernels::weighted_sum(rows, weights, &s.values[size_t((from - p0) * hd)], hd, to - from, hd,
                              into);
      else if constexpr (Kernels::kReadsF16)
        Kernels::weighted_sum(rows, weights, kv.values + from * kv.value_stride, kv.value_stride,
                              to - from, hd, into);
    };
    for (int64_t r0 = 0; r0 < n; r0 += kSumRows) {
      const int rows = int(std::min<int64_t>(kSumRows, n - r0));
      int64_t common = p1;
      for (int i = 0; i < rows; ++i) {
        w[i] = &s.scores[size_t((r0 + i) * ld + p0)];
        acc[i] = &s.acc[size_t((r0 + i) * hd)];
        common = std::min(common, queries[size_t(r0 + i)].n_kv);
      }
      if (common > p0) sum(rows, w, p0, common, acc);
      for (int i = 0; i < rows; ++i) {
        const int64_t from = std::max(common, p0), to = std::min(p1, queries[size_t(r0 + i)].n_kv);
        if (to <= from) continue;
        const float* wi = w[i] + (from - p0);
        sum(1, &wi, from, to, &acc[i]);
      }
    }
  }

  for (int64_t r = 0; r < n; ++r) {
    const float* a = &s.acc[size_t(r * hd)];
    float* out = queries[size_t(r)].out;
    for (int64_t d = 0; d < hd; ++d) out[d] = a[d] * s.inv_sum[size_t(r)];
  }
}

}  // namespace

void attend(kernels::Isa isa, const KvHead& kv, std::span<const AttentionQuery> queries, float scale) {
#if defined(__x86_64__)
  if (isa == kernels::Isa::Avx2 || isa == kernels::Isa::AvxVnni || isa == kernels::Isa::Avx512Vnni)
    return attend_with<Avx2Kernels>(kv, queries, scale);
#endif
  (void)isa;
  attend_with<GenericKernels>(kv, queries, scale);
}

kernels::Isa attention_isa() {
  return kernels::reference_kernels() ? kernels::Isa::Generic : kernels::active_isa();
}

}  // namespace bitnet
