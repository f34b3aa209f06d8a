#include "model/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "formats/half.h"
#include "model/kv_cache.h"
#include "model/kv_convert.h"

#if defined(__x86_64__)
#include <immintrin.h>
// GCC 12 reports the _mm512_undefined_*() placeholders inside its own 512-bit insert intrinsics
// as "may be used uninitialized" (a false positive in avx512fintrin.h).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace bitnet {
namespace {

constexpr int64_t kBlock = KvCache::kKeyBlock;  // positions per key block (= f32 lanes of AVX2)
// Positions are visited in chunks of kChunkBlocks key blocks (64 positions): a chunk's keys or
// values, converted to f32, stay in L1 while every query of the call uses them.
constexpr int64_t kChunkBlocks = 8;
constexpr int kScoreRows = 4;  // queries per score micro-kernel call
// Up to this many queries read the f16 cache directly (where the level can); more share one f32
// copy of each chunk. A decode step of a grouped-query model brings one query per head of the
// group (4 on 2B-4T): converting its whole cache to f32 cost more than it saved (decode at 4000
// positions: 8.5 → 9.8 t/s).
constexpr int64_t kDirectF16MaxQueries = 16;


// Generic level: plain loops (multiply, then add). Reads f32 keys/values only.
struct GenericKernels {
  static constexpr bool kReadsF16 = false;
  static constexpr int kSumRows = 2;  // queries per weighted-sum call

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

  // row[p] ← exp(scale·row[p] − max) for p < n; *max_out = max; returns Σ in double, 4 partial
  // sums by p mod 4.
  static double softmax(float* row, int64_t n, float scale, float* max_out) {
    float max_score = -INFINITY;
    for (int64_t p = 0; p < n; ++p) max_score = std::max(max_score, row[p] *= scale);
    double part[4] = {0, 0, 0, 0};
    int64_t p = 0;
    for (; p + 4 <= n; p += 4)
      for (int j = 0; j < 4; ++j) part[j] += row[p + j] = std::exp(row[p + j] - max_score);
    for (int j = 0; p < n; ++p, ++j) part[j] += row[p] = std::exp(row[p] - max_score);
    *max_out = max_score;
    return (part[0] + part[1]) + (part[2] + part[3]);
  }

  // acc[i][d] += Σ_{p < count} w[i][p]·v[p·stride + d], in order of p.
  static void weighted_sum(int rows, const float* const* w, const float* v, int64_t stride,
                           int64_t count, int64_t hd, float* const* acc) {
    for (int i = 0; i < rows; ++i)
      for (int64_t p = 0; p < count; ++p)
        for (int64_t d = 0; d < hd; ++d) acc[i][d] += w[i][p] * v[p * stride + d];
  }
};

// A range of the cache that the SIMD tiles prefetch a little of in each step of their loops (two
// 64-byte lines a step), so that the next chunk arrives while this one is computed — rather than
// in one burst of prefetches, which stalls once the L1 miss buffers are full.
struct PrefetchCursor {
  const char* p = nullptr;
  const char* end = nullptr;
};
PrefetchCursor& prefetch_cursor() {
  static thread_local PrefetchCursor c;
  return c;
}
// A tile's steps through the cursor, kept in registers and written back when the tile is done.
struct PrefetchSteps {
  PrefetchCursor& cursor = prefetch_cursor();
  const char* p = cursor.p;
  const char* const end = cursor.end;
  ~PrefetchSteps() { cursor.p = p; }
  void step() {
    if (p >= end) return;
    __builtin_prefetch(p, 0, 3);
    __builtin_prefetch(p + 64, 0, 3);
    p += 128;
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
  PrefetchSteps ahead;
  for (int64_t d = 0; d < hd; ++d) {
    ahead.step();
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
  PrefetchSteps ahead;
  for (int64_t p = 0; p < count; ++p) {
    ahead.step();
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
  static constexpr int kSumRows = 2;

  // As GenericKernels::softmax, 8 positions at a time: the sum has 8 partial sums by p mod 8.
  BITNET_ATTN_AVX2 static double softmax(float* row, int64_t n_kv, float scale, float* max_out) {
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
    *max_out = max_score;
    return ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
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

#define BITNET_ATTN_AVX512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl")))

// AVX-512: AVX2's arithmetic with 16 lanes. A score register holds the 8 positions of two key
// blocks at one dimension (each lane still one sequential fma chain over d); a weighted-sum
// register 16 dimensions (each lane one fma chain over positions). The numbers equal AVX2's.
BITNET_ATTN_AVX512 inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
BITNET_ATTN_AVX512 inline __m512 load16(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
BITNET_ATTN_AVX512 inline __m512 load_pair(const float* a, const float* b) {
  return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(_mm256_loadu_ps(a))),
                                             _mm256_castps_pd(_mm256_loadu_ps(b)), 1));
}
BITNET_ATTN_AVX512 inline __m512 load_pair(const uint16_t* a, const uint16_t* b) {
  const __m256i h = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a))),
                                            _mm_loadu_si128(reinterpret_cast<const __m128i*>(b)), 1);
  return _mm512_cvtph_ps(h);
}

// R queries × 2B key blocks (B registers).
template <int R, int B, class K>
BITNET_ATTN_AVX512 void score_tile512(const float* const* q, int64_t hd, const K* k, int64_t stride,
                                      float* const* s, int64_t s_offset) {
  __m512 acc[R][B];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < B; ++j) acc[i][j] = _mm512_setzero_ps();
  PrefetchSteps ahead;
  for (int64_t d = 0; d < hd; ++d) {
    ahead.step();
    __m512 kv[B];
#pragma GCC unroll 8
    for (int j = 0; j < B; ++j) kv[j] = load_pair(k + 2 * j * stride + d * kBlock, k + (2 * j + 1) * stride + d * kBlock);
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      const __m512 qd = _mm512_set1_ps(q[i][d]);
#pragma GCC unroll 8
      for (int j = 0; j < B; ++j) acc[i][j] = _mm512_fmadd_ps(qd, kv[j], acc[i][j]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < B; ++j) _mm512_storeu_ps(s[i] + s_offset + j * 2 * kBlock, acc[i][j]);
}

// The last `regs` (< B) pairs of blocks from block b0.
template <int R, int B, class K>
BITNET_ATTN_AVX512 void score_rest512(int regs, const float* const* q, int64_t hd, const K* k, int64_t stride,
                                      float* const* s, int64_t b0) {
  if constexpr (B > 1) {
    if (regs == B - 1) return score_tile512<R, B - 1>(q, hd, k + b0 * stride, stride, s, b0 * kBlock);
    score_rest512<R, B - 1>(regs, q, hd, k, stride, s, b0);
  }
}

template <int R, int B, class K>
BITNET_ATTN_AVX512 void score_rows512(const float* const* q, int64_t hd, const K* k, int64_t stride,
                                      int64_t n_blocks, float* const* s) {
  int64_t b = 0;
  for (; b + 2 * B <= n_blocks; b += 2 * B) score_tile512<R, B>(q, hd, k + b * stride, stride, s, b * kBlock);
  if (const int regs = int((n_blocks - b) / 2); regs > 0) {
    score_rest512<R, B>(regs, q, hd, k, stride, s, b);
    b += 2 * regs;
  }
  if (b < n_blocks) score_tile<R, 1>(q, hd, k + b * stride, stride, s, b * kBlock);  // an odd last block
}

// R queries × V registers of 16 dimensions.
template <int R, int V, class T>
BITNET_ATTN_AVX512 void sum_tile512(const float* const* w, const T* v, int64_t stride, int64_t count,
                                    float* const* acc, int64_t d0) {
  __m512 a[R][V];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < V; ++j) a[i][j] = _mm512_loadu_ps(acc[i] + d0 + j * 16);
  PrefetchSteps ahead;
  for (int64_t p = 0; p < count; ++p) {
    ahead.step();
    __m512 vv[V];
#pragma GCC unroll 8
    for (int j = 0; j < V; ++j) vv[j] = load16(v + p * stride + d0 + j * 16);
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      const __m512 wp = _mm512_set1_ps(w[i][p]);
#pragma GCC unroll 8
      for (int j = 0; j < V; ++j) a[i][j] = _mm512_fmadd_ps(wp, vv[j], a[i][j]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < V; ++j) _mm512_storeu_ps(acc[i] + d0 + j * 16, a[i][j]);
}

template <int R, int V, class T>
BITNET_ATTN_AVX512 void sum_rest512(int regs, const float* const* w, const T* v, int64_t stride,
                                    int64_t count, float* const* acc, int64_t d0) {
  if constexpr (V > 1) {
    if (regs == V - 1) return sum_tile512<R, V - 1>(w, v, stride, count, acc, d0);
    sum_rest512<R, V - 1>(regs, w, v, stride, count, acc, d0);
  }
}

template <int R, int V, class T>
BITNET_ATTN_AVX512 void sum_rows512(const float* const* w, const T* v, int64_t stride, int64_t count,
                                    int64_t hd, float* const* acc) {
  int64_t d = 0;
  for (; d + V * 16 <= hd; d += V * 16) sum_tile512<R, V>(w, v, stride, count, acc, d);
  if (const int regs = int((hd - d) / 16); regs > 0) {
    sum_rest512<R, V>(regs, w, v, stride, count, acc, d);
    d += 16 * regs;
  }
  if (d < hd) {  // fewer than 16 dimensions left: AVX2's body on them (the same fma per element)
    float* rest[R];
    for (int i = 0; i < R; ++i) rest[i] = acc[i] + d;
    sum_rows<R, 1>(w, v + d, stride, count, hd - d, rest);
  }
}

// exp8 with 16 lanes (the same operations on each lane).
BITNET_ATTN_AVX512 inline __m512 exp16(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.33654f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  x = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  x = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), x);
  __m512 y = _mm512_set1_ps(1.9875691500e-4f);
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.3981999507e-3f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(8.3334519073e-3f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(4.1665795894e-2f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.6666665459e-1f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(5.0000001201e-1f));
  y = _mm512_fmadd_ps(y, _mm512_mul_ps(x, x), _mm512_add_ps(x, _mm512_set1_ps(1.0f)));
  const __m512i pow2n = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(y, _mm512_castsi512_ps(pow2n));
}

struct Avx512Kernels {
  static constexpr bool kReadsF16 = true;
  static constexpr int kSumRows = 4;

  // Avx2Kernels::softmax 16 positions at a time, the same bits: exp16 is exp8's polynomial lane
  // by lane, and lanes 0-7 then 8-15 of a register go into the 8 partial sums by p mod 8 in
  // AVX2's order (a lane past n adds +0, which changes no sum).
  BITNET_ATTN_AVX512 static double softmax(float* row, int64_t n, float scale, float* max_out) {
    const __m512 vscale = _mm512_set1_ps(scale);
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    int64_t p = 0;
    for (; p + 16 <= n; p += 16) {
      const __m512 x = _mm512_mul_ps(_mm512_loadu_ps(row + p), vscale);
      _mm512_storeu_ps(row + p, x);
      vmax = _mm512_max_ps(vmax, x);
    }
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, vmax);
    float max_score = -INFINITY;
    for (float x : lanes) max_score = std::max(max_score, x);
    for (; p < n; ++p) max_score = std::max(max_score, row[p] *= scale);

    const __m512 vmax_score = _mm512_set1_ps(max_score);
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __m512d part = _mm512_setzero_pd();
    for (p = 0; p < n; p += 16) {
      __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(row + p), vmax_score));
      if (n - p < 16)  // lanes past n (stale scratch) count as 0
        e = _mm512_maskz_mov_ps(_mm512_cmpgt_epi32_mask(_mm512_set1_epi32(int(n - p)), lane), e);
      _mm512_storeu_ps(row + p, e);
      part = _mm512_add_pd(part, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
      part = _mm512_add_pd(part, _mm512_cvtps_pd(_mm512_castps512_ps256(_mm512_shuffle_f32x4(e, e, _MM_SHUFFLE(3, 2, 3, 2)))));
    }
    alignas(64) double s[8];
    _mm512_store_pd(s, part);
    *max_out = max_score;
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
  }
  static void convert(const uint16_t* src, float* dst, int64_t n) { Avx2Kernels::convert(src, dst, n); }

  // A call covers at most kChunkBlocks = 8 blocks: 2·B ≤ 8.
  template <class K>
  BITNET_ATTN_AVX512 static void scores(int rows, const float* const* q, int64_t hd, const K* k,
                                        int64_t stride, int64_t n_blocks, float* const* s) {
    switch (rows) {
      case 1: return score_rows512<1, 4>(q, hd, k, stride, n_blocks, s);
      case 2: return score_rows512<2, 4>(q, hd, k, stride, n_blocks, s);
      case 3: return score_rows512<3, 4>(q, hd, k, stride, n_blocks, s);
      default: return score_rows512<4, 4>(q, hd, k, stride, n_blocks, s);
    }
  }

  template <class T>
  BITNET_ATTN_AVX512 static void weighted_sum(int rows, const float* const* w, const T* v, int64_t stride,
                                              int64_t count, int64_t hd, float* const* acc) {
    switch (rows) {
      case 1: return sum_rows512<1, 8>(w, v, stride, count, hd, acc);
      case 2: return sum_rows512<2, 8>(w, v, stride, count, hd, acc);
      case 3: return sum_rows512<3, 4>(w, v, stride, count, hd, acc);
      default: return sum_rows512<4, 4>(w, v, stride, count, hd, acc);
    }
  }
};
#endif

// The merge of attention.h, one span after another; `a` holds head_dim doubles.
struct Fold {
  double* a;
  int64_t hd;
  float m = -INFINITY;
  double t = 0;

  void add(const SpanPartial& p) {
    if (p.max == -INFINITY) return;  // no position of the query in this span
    if (t == 0) {
      m = p.max;
      t = p.sum;
      for (int64_t d = 0; d < hd; ++d) a[d] = double(p.acc[d]);
    } else if (p.max > m) {
      const double c = std::exp(double(m) - double(p.max));
      t = t * c + p.sum;
      for (int64_t d = 0; d < hd; ++d) a[d] = a[d] * c + double(p.acc[d]);
      m = p.max;
    } else {
      const double c = std::exp(double(p.max) - double(m));
      t = t + c * p.sum;
      for (int64_t d = 0; d < hd; ++d) a[d] = a[d] + c * double(p.acc[d]);
    }
  }
  void finish(float* out) const {
    const double inv = 1.0 / t;
    for (int64_t d = 0; d < hd; ++d) out[d] = float(a[d] * inv);
  }
};

// Asks for `halves` f16 values of the cache from p on to be brought into L1, all at once. A span
// prefetches its first key chunk so when it starts, then each next chunk — keys, then values —
// while it computes the current one (next_chunk in span_with; docs/kernels.md has the measurements).
inline void prefetch(const uint16_t* p, int64_t halves) {
  const char* bytes = reinterpret_cast<const char*>(p);
  for (int64_t off = 0; off < halves * int64_t(sizeof(uint16_t)); off += 64) __builtin_prefetch(bytes + off, 0, 3);
}

struct Scratch {
  std::vector<float> keys, values, scores;  // f32 copies of a chunk; a span's scores per query
  std::vector<size_t> active;               // the queries with positions in the span
  std::vector<float> acc;                   // attend(): one span's Σ e·v per query
  std::vector<SpanPartial> partials;
  std::vector<double> fold;                 // the merge's running Σ e·v per query
  std::vector<Fold> folds;
};
Scratch& scratch() {
  static thread_local Scratch s;
  return s;
}

// One span for every query (attention.h): scores chunk by chunk, softmax per query, weighted sum
// chunk by chunk. Few queries read the f16 cache directly (where the level can); more share one
// f32 copy of each chunk. Both give the same floats, since f16 → f32 is exact. A q8_0 side
// (KvHead::key_codes / value_codes) is always converted (model/kv_convert.h; exact too).
template <class Kernels>
void span_with(kernels::Isa isa, const KvHead& kv, std::span<const AttentionQuery> queries, float scale, int64_t span,
               std::span<SpanPartial> partials) {
  Scratch& s = scratch();
  const int64_t hd = kv.head_dim, p0 = span * kAttentionSpan, p_cap = p0 + kAttentionSpan;
  // count(i): the positions of query i in this span, from p0.
  auto count = [&](size_t i) { return std::min(queries[i].n_kv, p_cap) - p0; };
  s.active.clear();
  int64_t n_pos = 0;  // positions any query needs, from p0
  for (size_t i = 0; i < queries.size(); ++i) {
    partials[i].max = -INFINITY;
    partials[i].sum = 0;
    if (count(i) <= 0 || queries[i].kv_begin >= p0 + count(i)) continue;
    s.active.push_back(i);
    n_pos = std::max(n_pos, count(i));
  }
  const int64_t n = int64_t(s.active.size());
  if (n == 0) return;
  const int64_t n_blocks = (n_pos + kBlock - 1) / kBlock;
  const bool use_f32 = !Kernels::kReadsF16 || n > kDirectF16MaxQueries;
  const bool keys_f32 = use_f32 || kv.key_codes, values_f32 = use_f32 || kv.value_codes;
  const int64_t b_span = p0 / kBlock;  // the span's first key block
  const uint16_t* keys = kv.keys ? kv.keys + b_span * kv.key_block_stride : nullptr;
  const uint16_t* values = kv.values ? kv.values + p0 * kv.value_stride : nullptr;
  // The next chunk of an f16 side (null: none): prefetched two lines per step of the SIMD tiles'
  // loops where this phase's tiles read the f16 cache directly (`stepwise`), else all at once. A
  // burst of prefetches stalls once the L1 miss buffers are full.
  auto next_chunk = [&](const uint16_t* p, int64_t halves, bool stepwise) {
    PrefetchCursor& c = prefetch_cursor();
    c.p = c.end = nullptr;
    if (!p || halves <= 0) return;
    if (!stepwise) return prefetch(p, halves);
    c.p = reinterpret_cast<const char*>(p);
    c.end = c.p + halves * int64_t(sizeof(uint16_t));
  };
  s.scores.resize(size_t(n * kAttentionSpan));
  if (keys_f32) s.keys.resize(size_t(kChunkBlocks * kBlock * hd));
  if (values_f32) s.values.resize(size_t(kChunkBlocks * kBlock * hd));
  auto query = [&](int64_t r) -> const AttentionQuery& { return queries[s.active[size_t(r)]]; };
  auto row = [&](int64_t r) { return &s.scores[size_t(r * kAttentionSpan)]; };

  // Scores, 64 positions at a time; a group of queries stops at the last block any of them needs.
  const float* q[kScoreRows];
  float* rows_out[kScoreRows];
  for (int64_t c0 = 0; c0 < n_blocks; c0 += kChunkBlocks) {
    const int64_t c1 = std::min(n_blocks, c0 + kChunkBlocks);
    // (f16 sides only: a q8_0 side relies on the hardware prefetchers.)
    if (keys && c0 == 0) prefetch(keys, (c1 - c0) * kv.key_block_stride);
    if (c1 < n_blocks)
      next_chunk(keys ? keys + c1 * kv.key_block_stride : nullptr,
                 (std::min(n_blocks, c1 + kChunkBlocks) - c1) * kv.key_block_stride, !keys_f32);
    else
      next_chunk(values, std::min(n_pos, kChunkBlocks * kBlock) * kv.value_stride, !keys_f32);
    if (keys_f32)
      for (int64_t b = c0; b < c1; ++b) {
        float* dst = &s.keys[size_t((b - c0) * kBlock * hd)];
        if (kv.key_codes)
          q8_key_block_to_f32(isa, kv.key_codes + (b_span + b) * kv.key_block_stride,
                              kv.key_scales + (b_span + b) * (hd / kKvQ8Block) * kBlock, hd, dst);
        else
          Kernels::convert(keys + b * kv.key_block_stride, dst, kBlock * hd);
      }
    for (int64_t r0 = 0; r0 < n; r0 += kScoreRows) {
      const int rows = int(std::min<int64_t>(kScoreRows, n - r0));
      int64_t need = 0;
      for (int i = 0; i < rows; ++i) {
        q[i] = query(r0 + i).q;
        rows_out[i] = row(r0 + i) + c0 * kBlock;
        need = std::max(need, (count(s.active[size_t(r0 + i)]) + kBlock - 1) / kBlock);
      }
      const int64_t blocks = std::min(c1, need) - c0;
      if (blocks <= 0) continue;
      if (keys_f32)
        Kernels::scores(rows, q, hd, s.keys.data(), kBlock * hd, blocks, rows_out);
      else if constexpr (Kernels::kReadsF16)
        Kernels::scores(rows, q, hd, keys + c0 * kv.key_block_stride, kv.key_block_stride, blocks, rows_out);
    }
  }

  // Softmax numerators in place (a row has room up to the next multiple of 8). A window's excluded
  // positions enter as −∞ (no effect on the max; e ≤ FLT_MIN, lost in a sum ≥ 1) and leave as
  // exact zeros for the weighted sum.
  for (int64_t r = 0; r < n; ++r) {
    SpanPartial& part = partials[s.active[size_t(r)]];
    const int64_t len = count(s.active[size_t(r)]);
    const int64_t begin = std::clamp<int64_t>(query(r).kv_begin - p0, 0, len);
    std::fill(row(r), row(r) + begin, -INFINITY);
    part.sum = Kernels::softmax(row(r), len, scale, &part.max);
    std::fill(row(r), row(r) + begin, 0.0f);
    std::fill(part.acc, part.acc + hd, 0.0f);
  }

  // Weighted sum of values, 64 positions at a time. A group of queries shares the positions all
  // of them attend to; a longer one finishes its own tail alone (same order of operations).
  const float* w[Kernels::kSumRows];
  float* acc[Kernels::kSumRows];
  for (int64_t c0 = 0; c0 < n_blocks; c0 += kChunkBlocks) {
    const int64_t x0 = c0 * kBlock, x1 = std::min(n_pos, (c0 + kChunkBlocks) * kBlock);
    if (x1 < n_pos)
      next_chunk(values ? values + x1 * kv.value_stride : nullptr,
                 (std::min(n_pos, x1 + kChunkBlocks * kBlock) - x1) * kv.value_stride, !values_f32);
    else
      next_chunk(nullptr, 0, false);
    if (kv.value_codes)
      q8_values_to_f32(isa, kv.value_codes + (p0 + x0) * hd, kv.value_scales + (p0 + x0) * (hd / kKvQ8Block), hd,
                       x1 - x0, s.values.data());
    else if (values_f32)
      for (int64_t x = x0; x < x1; ++x)
        Kernels::convert(values + x * kv.value_stride, &s.values[size_t((x - x0) * hd)], hd);
    auto sum = [&](int rows, const float* const* weights, int64_t from, int64_t to, float* const* into) {
      if (values_f32)
        Kernels::weighted_sum(rows, weights, &s.values[size_t((from - x0) * hd)], hd, to - from, hd, into);
      else if constexpr (Kernels::kReadsF16)
        Kernels::weighted_sum(rows, weights, values + from * kv.value_stride, kv.value_stride, to - from, hd, into);
    };
    for (int64_t r0 = 0; r0 < n; r0 += Kernels::kSumRows) {
      const int rows = int(std::min<int64_t>(Kernels::kSumRows, n - r0));
      int64_t common = x1;
      for (int i = 0; i < rows; ++i) {
        w[i] = row(r0 + i) + x0;
        acc[i] = partials[s.active[size_t(r0 + i)]].acc;
        common = std::min(common, count(s.active[size_t(r0 + i)]));
      }
      if (common > x0) sum(rows, w, x0, common, acc);
      for (int i = 0; i < rows; ++i) {
        const int64_t from = std::max(common, x0), to = std::min(x1, count(s.active[size_t(r0 + i)]));
        if (to <= from) continue;
        const float* wi = w[i] + (from - x0);
        sum(1, &wi, from, to, &acc[i]);
      }
    }
  }
}

// Every span of every query, merged as it comes.
template <class Kernels>
void attend_with(kernels::Isa isa, const KvHead& kv, std::span<const AttentionQuery> queries, float scale) {
  Scratch& s = scratch();
  const size_t n = queries.size();
  const int64_t hd = kv.head_dim;
  int64_t n_spans = 0;
  for (const AttentionQuery& query : queries) n_spans = std::max(n_spans, attention_spans(query.n_kv));
  s.acc.resize(n * size_t(hd));
  s.fold.resize(n * size_t(hd));
  s.partials.resize(n);
  std::vector<Fold>& folds = s.folds;
  folds.clear();
  for (size_t i = 0; i < n; ++i) {
    s.partials[i].acc = &s.acc[i * size_t(hd)];
    folds.push_back({&s.fold[i * size_t(hd)], hd});
  }
  for (int64_t j = 0; j < n_spans; ++j) {
    span_with<Kernels>(isa, kv, queries, scale, j, s.partials);
    for (size_t i = 0; i < n; ++i) folds[i].add(s.partials[i]);
  }
  for (size_t i = 0; i < n; ++i) folds[i].finish(queries[i].out);
}

// fn.template operator()<Kernels>() with the kernels of a level.
template <class Fn>
void with_kernels(kernels::Isa isa, const Fn& fn) {
#if defined(__x86_64__)
  if (isa == kernels::Isa::Avx512Vnni) return fn.template operator()<Avx512Kernels>();
  if (isa == kernels::Isa::Avx2 || isa == kernels::Isa::AvxVnni) return fn.template operator()<Avx2Kernels>();
#endif
  (void)isa;
  fn.template operator()<GenericKernels>();
}

}  // namespace

void attend(kernels::Isa isa, const KvHead& kv, std::span<const AttentionQuery> queries, float scale) {
  if (queries.empty()) return;
  with_kernels(isa, [&]<class K>() { attend_with<K>(isa, kv, queries, scale); });
}

void attend_span(kernels::Isa isa, const KvHead& kv, std::span<const AttentionQuery> queries, float scale,
                 int64_t span, std::span<SpanPartial> partials) {
  with_kernels(isa, [&]<class K>() { span_with<K>(isa, kv, queries, scale, span, partials); });
}

void merge_spans(std::span<const SpanPartial> spans, int64_t head_dim, float* out) {
  std::vector<double>& a = scratch().fold;
  a.resize(size_t(head_dim));
  Fold fold{a.data(), head_dim};
  for (const SpanPartial& p : spans) fold.add(p);
  fold.finish(out);
}

void SpanWork::clear(kernels::Isa isa, float scale, int64_t head_dim) {
  isa_ = isa;
  scale_ = scale;
  head_dim_ = head_dim;
  groups_.clear();
  queries_.clear();
}

int64_t SpanWork::add(const KvHead& kv, std::span<const AttentionQuery> queries) {
  groups_.push_back({kv, int64_t(queries_.size()), int64_t(queries.size())});
  queries_.insert(queries_.end(), queries.begin(), queries.end());
  return int64_t(groups_.size()) - 1;
}

int64_t SpanWork::plan() {
  int64_t items = 0, partials = 0;
  item_group_.clear();
  for (size_t g = 0; g < groups_.size(); ++g) {
    Group& group = groups_[g];
    group.n_spans = 0;
    for (int64_t i = 0; i < group.n_queries; ++i)
      group.n_spans = std::max(group.n_spans, attention_spans(queries_[size_t(group.first_query + i)].n_kv));
    group.first_item = items;
    group.first_partial = partials;
    items += group.n_spans;
    partials += group.n_spans * group.n_queries;
    item_group_.insert(item_group_.end(), size_t(group.n_spans), int64_t(g));
  }
  acc_.resize(size_t(partials * head_dim_));
  partials_.resize(size_t(partials));
  for (int64_t i = 0; i < partials; ++i) partials_[size_t(i)].acc = &acc_[size_t(i * head_dim_)];
  if (done_size_ < groups_.size()) {
    done_ = std::make_unique<std::atomic<int64_t>[]>(groups_.size());
    done_size_ = groups_.size();
  }
  for (size_t g = 0; g < groups_.size(); ++g) done_[g].store(0, std::memory_order_relaxed);
  return items;
}

int64_t SpanWork::first_item(int64_t group) const {
  return group == int64_t(groups_.size()) ? n_items() : groups_[size_t(group)].first_item;
}

void SpanWork::set_kv(int64_t group, const KvHead& kv) {
  groups_[size_t(group)].kv = kv;
  done_[size_t(group)].store(0, std::memory_order_relaxed);
}

void SpanWork::run(int64_t item) {
  const int64_t g = item_group_[size_t(item)];
  const Group& group = groups_[size_t(g)];
  const int64_t span = item - group.first_item, nq = group.n_queries;
  const std::span<const AttentionQuery> queries(&queries_[size_t(group.first_query)], size_t(nq));
  SpanPartial* partials = &partials_[size_t(group.first_partial)];
  attend_span(isa_, group.kv, queries, scale_, span, std::span(partials + span * nq, size_t(nq)));
  // Release this span's partials; the last one acquires them all.
  if (done_[size_t(g)].fetch_add(1, std::memory_order_acq_rel) + 1 < group.n_spans) return;
  static thread_local std::vector<SpanPartial> spans;
  for (int64_t i = 0; i < nq; ++i) {
    spans.clear();
    for (int64_t j = 0; j < attention_spans(queries[size_t(i)].n_kv); ++j) spans.push_back(partials[j * nq + i]);
    merge_spans(spans, head_dim_, queries[size_t(i)].out);
  }
}

kernels::Isa attention_isa() {
  return kernels::reference_kernels() ? kernels::Isa::Generic : kernels::active_isa();
}

}  // namespace bitnet
