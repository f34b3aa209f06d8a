// Shared body of the x86 SIMD kernels; included by kernels_avx2.cpp, kernels_avxvnni.cpp and
// kernels_avx512.cpp, which define BITNET_TGT (the per-function target attribute), BITNET_VNNI
// (1: the AVX-512 set, zmm bodies), BITNET_DPBUSD (1: 256-bit VPDPBUSD, EVEX with AVX-512 VL or
// VEX with AVX-VNNI) and BITNET_ISA_ENUM.
// Every function carries the target attribute, so nothing here needs global -m flags.
//
// Ternary dots multiply the unsigned 2-bit codes u ∈ {0,1,2} (t = u − 1) with the int8
// activations: VPMADDUBSW pairs (|u·q| ≤ 3·128, so a pair ≤ 768; four planes summed in int16
// ≤ 3072: no wrap) widened at once with VPMADDWD, or VPDPBUSD (u8·i8 straight into int32).
// For TQ the block's Σq is subtracted afterwards (isum_b = Σ u·q − Σ q).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "formats/half.h"
#include "kernels/kernels.h"

#define TGT BITNET_TGT inline __attribute__((always_inline))

namespace bitnet::kernels {
namespace {

constexpr int64_t kTq1Bytes = 54, kTq2Bytes = 66, kQ8Bytes = 34, kQ6Bytes = 210;

TGT __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

#if BITNET_DPBUSD
// acc += Σ over each 4-byte group of a_u8·b_i8 in int32 lanes.
TGT __m256i dpbusd256(__m256i acc, __m256i a, __m256i b) {
#if BITNET_VNNI
  return _mm256_dpbusd_epi32(acc, a, b);
#else
  return _mm256_dpbusd_avx_epi32(acc, a, b);
#endif
}

// One I2_S 128-block (32 weight bytes at wb, activations at qb) into two int32 accumulators:
// planes 1 and 3 as codes into a1, planes 0 and 2 at 4× their value into a4 (a4 / 4 is exact).
TGT void i2s_block_dpbusd(const uint8_t* wb, const int8_t* qb, __m256i& a1, __m256i& a4) {
  const __m256i m3 = _mm256_set1_epi8(3), m12 = _mm256_set1_epi8(12);
  const __m256i v = load256(wb), hi = _mm256_srli_epi16(v, 4);
  a4 = dpbusd256(a4, _mm256_and_si256(hi, m12), load256(qb));
  a1 = dpbusd256(a1, _mm256_and_si256(hi, m3), load256(qb + 32));
  a4 = dpbusd256(a4, _mm256_and_si256(v, m12), load256(qb + 64));
  a1 = dpbusd256(a1, _mm256_and_si256(v, m3), load256(qb + 96));
}

#endif
// Software prefetches of weight streams go to L2 (prefetcht1), not L1: an L1 prefetch holds one
// of the core's few line-fill buffers until its line comes from DRAM, so with compute between
// the loads too few lines were in flight (Intel Xeon VM, AVX-512, 2B-4T: 2-stream decode steps
// ran at 44 t/s with prefetcht0, 70 with prefetcht1). The loads then find the lines in L2.
TGT void prefetch_weights(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T1); }

// How far ahead of its position a one-row-at-a-time I2_S row kernel prefetches (into L2, and
// into L1 from there: kI2sNearPrefetchBytes).
inline constexpr int64_t kI2sPrefetchBytes = 8192, kI2sNearPrefetchBytes = 1024;

// acc += Σ over each 4-byte group of c_u8·q_i8, for two / four (code, activation) planes.
TGT __m256i dot2(__m256i acc, __m256i c0, __m256i q0, __m256i c1, __m256i q1) {
#if BITNET_DPBUSD
  return dpbusd256(dpbusd256(acc, c0, q0), c1, q1);
#else
  const __m256i s = _mm256_add_epi16(_mm256_maddubs_epi16(c0, q0), _mm256_maddubs_epi16(c1, q1));
  return _mm256_add_epi32(acc, _mm256_madd_epi16(s, _mm256_set1_epi16(1)));
#endif
}
TGT __m256i dot4(__m256i acc, __m256i c0, __m256i q0, __m256i c1, __m256i q1, __m256i c2,
                 __m256i q2, __m256i c3, __m256i q3) {
#if BITNET_DPBUSD
  return dot2(dot2(acc, c0, q0, c1, q1), c2, q2, c3, q3);
#else
  const __m256i s = _mm256_add_epi16(
      _mm256_add_epi16(_mm256_maddubs_epi16(c0, q0), _mm256_maddubs_epi16(c1, q1)),
      _mm256_add_epi16(_mm256_maddubs_epi16(c2, q2), _mm256_maddubs_epi16(c3, q3)));
  return _mm256_add_epi32(acc, _mm256_madd_epi16(s, _mm256_set1_epi16(1)));
#endif
}

TGT int32_t hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

// Lane t = Σ of the int32 lanes of a[t], for eight accumulators.
TGT __m256i hsum8(const __m256i* a) {
  const __m256i h0 = _mm256_hadd_epi32(_mm256_hadd_epi32(a[0], a[1]), _mm256_hadd_epi32(a[2], a[3]));
  const __m256i h1 = _mm256_hadd_epi32(_mm256_hadd_epi32(a[4], a[5]), _mm256_hadd_epi32(a[6], a[7]));
  return _mm256_add_epi32(_mm256_permute2x128_si256(h0, h1, 0x20),
                          _mm256_permute2x128_si256(h0, h1, 0x31));
}

// Integer lane sums of R accumulators (exact in any order).
template <int R>
TGT void hsum_rows(const __m256i* acc, int32_t* out) {
  if constexpr (R == 4) {
    const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(acc[0], acc[1]),
                                        _mm256_hadd_epi32(acc[2], acc[3]));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out),
                     _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1)));
  } else {
    for (int i = 0; i < R; ++i) out[i] = hsum_i32(acc[i]);
  }
}

// ---- I2_S: per 128-block 32 bytes; byte j holds elements j, 32+j, 64+j, 96+j at bits 7-6..1-0 ----

// Planes 1 and 3 are decoded as codes (v & 3, (v >> 4) & 3); planes 0 and 2 are left at 4× their
// value ((v >> 4) & 12, v & 12), which saves two shifts per 32 bytes: their two products are summed
// and divided by 4 with one arithmetic shift (exact: every term is a multiple of 4, ≤ 4096 in
// magnitude). A block then adds ≤ 2048 to an int16 lane, so kI2sRowBlocks = 16 blocks fit in int16
// (≤ 32768 with −128 activations only; valid codes never wrap) before the lanes are widened.
#if !BITNET_DPBUSD
constexpr int64_t kI2sRowBlocks = 16;

template <int R>
TGT void i2s_group(const TernaryJob& j, int64_t r, float* y) {
  const __m256i m3 = _mm256_set1_epi8(3), m12 = _mm256_set1_epi8(12);
  const int64_t nb = j.K / 128;
  const uint8_t* w[R];
  alignas(32) int32_t wide[R][8] = {};  // touched once per kI2sRowBlocks: keeps registers free
  for (int i = 0; i < R; ++i) w[i] = j.w + (r + i) * (j.K / 4);
  for (int64_t b0 = 0; b0 < nb; b0 += kI2sRowBlocks) {
    const int64_t b1 = std::min(nb, b0 + kI2sRowBlocks);
    __m256i x[R];
    for (int i = 0; i < R; ++i) x[i] = _mm256_setzero_si256();
    for (int64_t b = b0; b < b1; ++b) {
      const int8_t* qb = j.q + 128 * b;
      for (int i = 0; i < R; ++i) {
        // The same bytes of the next group's row: the continuation of this contiguous group.
        if (b % 2 == 0) prefetch_weights(w[i] + R * (j.K / 4) + 32 * b);
        const __m256i v = load256(w[i] + 32 * b);
        const __m256i hi = _mm256_srli_epi16(v, 4);
        const __m256i p4 = _mm256_add_epi16(_mm256_maddubs_epi16(_mm256_and_si256(hi, m12), load256(qb)),
                                            _mm256_maddubs_epi16(_mm256_and_si256(v, m12), load256(qb + 64)));
        const __m256i p1 = _mm256_add_epi16(_mm256_maddubs_epi16(_mm256_and_si256(hi, m3), load256(qb + 32)),
                                            _mm256_maddubs_epi16(_mm256_and_si256(v, m3), load256(qb + 96)));
        x[i] = _mm256_add_epi16(x[i], _mm256_add_epi16(p1, _mm256_srai_epi16(p4, 2)));
      }
    }
    for (int i = 0; i < R; ++i) {
      __m256i* d = reinterpret_cast<__m256i*>(wide[i]);
      _mm256_store_si256(d, _mm256_add_epi32(_mm256_load_si256(d),
                                             _mm256_madd_epi16(x[i], _mm256_set1_epi16(1))));
    }
  }
  __m256i acc[R];
  for (int i = 0; i < R; ++i) acc[i] = _mm256_load_si256(reinterpret_cast<const __m256i*>(wide[i]));
  int32_t S[R];
  hsum_rows<R>(acc, S);
  for (int i = 0; i < R; ++i) y[r + i] = (float(S[i]) - float(j.act.sum)) / j.act.scale * j.alpha;
}

BITNET_TGT void i2s_rows(const TernaryJob& j, int64_t r0, int64_t r1, float* y) {
  int64_t r = r0;
  for (; r + 4 <= r1; r += 4) i2s_group<4>(j, r, y);
  for (; r < r1; ++r) i2s_group<1>(j, r, y);
}
#elif !BITNET_VNNI
// AVX-VNNI: one row at a time (a single sequential weight stream, as in the AVX-512 body below),
// each 128-block's four planes straight from the activations as VPDPBUSD operands into int32.
// Planes 1 and 3 as codes, planes 0 and 2 at 4×, divided by 4 at the end (exact, see above).
BITNET_TGT void i2s_rows(const TernaryJob& j, int64_t r0, int64_t r1, float* y) {
  const int64_t nb = j.K / 128, row_bytes = j.K / 4;
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* w = j.w + r * row_bytes;
    __m256i a1 = _mm256_setzero_si256(), a4 = _mm256_setzero_si256();
    for (int64_t b = 0; b < nb; ++b) {
      const int8_t* qb = j.q + 128 * b;
      if (b % 2 == 0) prefetch_weights(w + kI2sPrefetchBytes + 32 * b);
      i2s_block_dpbusd(w + 32 * b, qb, a1, a4);
    }
    const int32_t S = hsum_i32(_mm256_add_epi32(a1, _mm256_srai_epi32(a4, 2)));
    y[r] = (float(S) - float(j.act.sum)) / j.act.scale * j.alpha;
  }
}
#else
// AVX-512: two 128-blocks (64 weight bytes) per zmm and VPDPBUSD straight into int32, so no int16
// window. Planes 1 and 3 as codes, planes 0 and 2 at 4× (one shift per 64 bytes); their sums are
// kept apart and the 4× one divided by 4 at the end (exact: every term is a multiple of 4).
// One row at a time, so the weights are read as one sequential stream: groups of four rows read
// four streams a quarter row apart, which the prefetchers follow worse (tg128 `large` +6-10% in
// alternating runs, and fewer operations per byte). The activations are laid out once per call
// as each pair's four planes (two 32-byte halves each), so every plane is one 64-byte operand.
TGT __m512i pair_plane(const int8_t* qb, int p) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(load256(qb + 32 * p)), load256(qb + 128 + 32 * p), 1);
}

BITNET_TGT void i2s_rows(const TernaryJob& j, int64_t r0, int64_t r1, float* y) {
  const int64_t nb = j.K / 128, np = nb / 2, row_bytes = j.K / 4;
  struct alignas(64) Plane {
    int8_t bytes[64];
  };
  static thread_local std::vector<Plane> planes;
  if (planes.size() < size_t(4 * np)) planes.resize(size_t(4 * np));
  for (int64_t p = 0; p < np; ++p)
    for (int k = 0; k < 4; ++k) _mm512_store_si512(planes[size_t(4 * p + k)].bytes, pair_plane(j.q + 256 * p, k));
  const __m512i m3 = _mm512_set1_epi8(3), m12 = _mm512_set1_epi8(12);
  const __m512i* qp = reinterpret_cast<const __m512i*>(planes.data());
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* w = j.w + r * row_bytes;
    __m512i a1 = _mm512_setzero_si512(), a4 = _mm512_setzero_si512();
    for (int64_t p = 0; p < np; ++p) {
      prefetch_weights(w + kI2sPrefetchBytes + 64 * p);
      // ... and from L2 into L1 a little ahead: with only the L2 prefetch, rows of 800 bytes
      // (3B's 3200 columns) decoded 0.87x as fast as with the old L1 prefetch (tg128 25.6 vs 29.3).
      _mm_prefetch(reinterpret_cast<const char*>(w + kI2sNearPrefetchBytes + 64 * p), _MM_HINT_T0);
      const __m512i v = _mm512_loadu_si512(w + 64 * p);
      const __m512i hi = _mm512_srli_epi16(v, 4);
      a4 = _mm512_dpbusd_epi32(a4, _mm512_and_si512(hi, m12), qp[4 * p]);
      a1 = _mm512_dpbusd_epi32(a1, _mm512_and_si512(hi, m3), qp[4 * p + 1]);
      a4 = _mm512_dpbusd_epi32(a4, _mm512_and_si512(v, m12), qp[4 * p + 2]);
      a1 = _mm512_dpbusd_epi32(a1, _mm512_and_si512(v, m3), qp[4 * p + 3]);
    }
    // Every lane of a4 is a multiple of 4, so dividing lane by lane is exact.
    int32_t S = _mm512_reduce_add_epi32(_mm512_add_epi32(a1, _mm512_srai_epi32(a4, 2)));
    if (2 * np < nb) {  // an odd last block, in ymm
      __m256i t1 = _mm256_setzero_si256(), t4 = _mm256_setzero_si256();
      i2s_block_dpbusd(w + 32 * (nb - 1), j.q + 128 * (nb - 1), t1, t4);
      S += hsum_i32(_mm256_add_epi32(t1, _mm256_srai_epi32(t4, 2)));
    }
    y[r] = (float(S) - float(j.act.sum)) / j.act.scale * j.alpha;
  }
}
#endif

// ---- TQ shared: the f32 block accumulation (Σq of each block comes from TernaryJob::block_qsum) ----

// acc += d·(float)isum as two separate roundings, in block order like the reference. The product
// goes through a volatile so that no compiler setting (-ffp-contract=fast) can fuse it into an FMA.
TGT void tq_accumulate(float& acc, const uint8_t* d16, int32_t isum) {
  volatile float p = _cvtsh_ss(load_u16(d16)) * float(isum);
  acc = acc + p;
}

// R rows of a TQ format: per block, each row's Σ u·q (BlockDot) minus the block's Σq, then the float step
// acc += d_b·(float)isum_b in block order. kBytes: block size; kScale: offset of the f16 d.
template <int R, int64_t kBytes, int64_t kScale, __m256i (*BlockDot)(const uint8_t*, const __m256i*)>
TGT void tq_group(const TernaryJob& j, int64_t r, float* y) {
  const int64_t nb = j.K / 256;
  const uint8_t* w[R];
  float acc[R];
  for (int i = 0; i < R; ++i) {
    w[i] = j.w + (r + i) * nb * kBytes;
    acc[i] = 0.0f;
  }
  for (int64_t b = 0; b < nb; ++b) {
    __m256i q8[8];
    for (int k = 0; k < 8; ++k) q8[k] = load256(j.q + 256 * b + 32 * k);
    const int32_t qsum = j.block_qsum[b * j.qsum_stride];
    __m256i a[R];
    for (int i = 0; i < R; ++i) a[i] = BlockDot(w[i] + b * kBytes, q8);
    int32_t s[R];
    hsum_rows<R>(a, s);
    for (int i = 0; i < R; ++i) tq_accumulate(acc[i], w[i] + b * kBytes + kScale, s[i] - qsum);
  }
  for (int i = 0; i < R; ++i) y[r + i] = acc[i] / j.act.scale;
}

// ---- TQ2_0: 66-byte blocks; element 128h + 32p + m at byte 32h + m, bits 2p ----

// Σ u·q over one TQ2_0 block.
TGT __m256i tq2_block_dot(const uint8_t* blk, const __m256i* q8) {
  const __m256i m3 = _mm256_set1_epi8(3);
  __m256i a = _mm256_setzero_si256();
  for (int h = 0; h < 2; ++h) {
    const __m256i v = load256(blk + 32 * h);
    a = dot4(a, _mm256_and_si256(v, m3), q8[4 * h], _mm256_and_si256(_mm256_srli_epi16(v, 2), m3), q8[4 * h + 1],
             _mm256_and_si256(_mm256_srli_epi16(v, 4), m3), q8[4 * h + 2],
             _mm256_and_si256(_mm256_srli_epi16(v, 6), m3), q8[4 * h + 3]);
  }
  return a;
}

// Eight rows at once, with each block's float step vectorized across the rows: lane i of the f32
// accumulator does row r+i's acc += d_b·(float)isum_b (product rounded first), in block order.
// Planes 0 and 2 are decoded as codes, planes 1 and 3 at 4× (as in i2s_group); a block adds
// ≤ 2·(1024 + 1024) to an int16 lane, far from wrapping.
TGT void tq2_group8(const TernaryJob& j, int64_t r, float* y) {
  const __m256i m3 = _mm256_set1_epi8(3), m12 = _mm256_set1_epi8(12), ones = _mm256_set1_epi16(1);
  const int64_t nb = j.K / 256, row_bytes = nb * kTq2Bytes;
  const uint8_t* w = j.w + r * row_bytes;
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const int8_t* qb = j.q + 256 * b;
    __m256i a[8];
    alignas(16) uint16_t d16[8];
    for (int i = 0; i < 8; ++i) {
      const uint8_t* blk = w + i * row_bytes + b * kTq2Bytes;
      // Eight interleaved row streams are more than the hardware prefetcher follows well: fetch
      // the same block of the next group's row (the next bytes of this contiguous group).
      prefetch_weights(blk + 8 * row_bytes);
      prefetch_weights(blk + 8 * row_bytes + 64);
      __m256i x = _mm256_setzero_si256();
      for (int h = 0; h < 2; ++h) {
        const __m256i v = load256(blk + 32 * h), hi = _mm256_srli_epi16(v, 4);
        const int8_t* qh = qb + 128 * h;
        const __m256i p1 = _mm256_add_epi16(_mm256_maddubs_epi16(_mm256_and_si256(v, m3), load256(qh)),
                                            _mm256_maddubs_epi16(_mm256_and_si256(hi, m3), load256(qh + 64)));
        const __m256i p4 = _mm256_add_epi16(_mm256_maddubs_epi16(_mm256_and_si256(v, m12), load256(qh + 32)),
                                            _mm256_maddubs_epi16(_mm256_and_si256(hi, m12), load256(qh + 96)));
        x = _mm256_add_epi16(x, _mm256_add_epi16(p1, _mm256_srai_epi16(p4, 2)));
      }
      a[i] = _mm256_madd_epi16(x, ones);
      d16[i] = load_u16(blk + 64);
    }
    const __m256i isum = _mm256_sub_epi32(hsum8(a), _mm256_set1_epi32(j.block_qsum[b * j.qsum_stride]));
    const __m256 d = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(d16)));
    __m256 prod = _mm256_mul_ps(d, _mm256_cvtepi32_ps(isum));
    __asm__("" : "+x"(prod));  // an opaque value: the product cannot be fused into an FMA
    acc = _mm256_add_ps(acc, prod);
  }
  _mm256_storeu_ps(y + r, _mm256_div_ps(acc, _mm256_set1_ps(j.act.scale)));
}

BITNET_TGT void tq2_rows(const TernaryJob& j, int64_t r0, int64_t r1, float* y) {
  int64_t r = r0;
  for (; r + 8 <= r1; r += 8) tq2_group8(j, r, y);
  for (; r < r1; ++r) tq_group<1, kTq2Bytes, 64, tq2_block_dot>(j, r, y);
}

// ---- TQ1_0: 54-byte blocks of base-3 trits (§4) ----

// Bytewise ·3 mod 256.
TGT __m256i times3(__m256i v) { return _mm256_add_epi8(_mm256_add_epi8(v, v), v); }
TGT __m128i times3(__m128i v) { return _mm_add_epi8(_mm_add_epi8(v, v), v); }

// u = (B·3) >> 8 ∈ {0,1,2} = [B ≥ 86] + [B ≥ 171] (unsigned compares via the sign flip).
TGT __m256i trit_code(__m256i bp) {
  const __m256i s = _mm256_xor_si256(bp, _mm256_set1_epi8(char(0x80)));
  const __m256i ge86 = _mm256_cmpgt_epi8(s, _mm256_set1_epi8(85 - 128));
  const __m256i ge171 = _mm256_cmpgt_epi8(s, _mm256_set1_epi8(170 - 128));
  return _mm256_sub_epi8(_mm256_setzero_si256(), _mm256_add_epi8(ge86, ge171));
}

// The 8 code planes of one block; plane k multiplies activations 32k … 32k+31 of the block:
// qs[0..31] carry elements 32p + m; qs[32..47] elements 160 + 16p + m (planes paired into 256-bit
// vectors [p, p+1]); qh[0..3] elements 240 + 4p + j.
TGT void tq1_codes(const uint8_t* blk, __m256i* c) {
  const __m256i a0 = load256(blk);
  const __m256i a1 = times3(a0), a2 = times3(a1), a3 = times3(a2), a4 = times3(a3);
  const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 32));
  const __m256i x01 = _mm256_set_m128i(times3(x), x);
  const __m256i x23 = times3(times3(x01));
  int32_t qh_word;
  std::memcpy(&qh_word, blk + 48, 4);
  const __m128i t0 = _mm_set1_epi32(qh_word), t1 = times3(t0), t2 = times3(t1), t3 = times3(t2);
  const __m128i y = _mm_blend_epi32(_mm_blend_epi32(t0, t1, 0x2), _mm_blend_epi32(t2, t3, 0x8), 0xC);
  const __m256i x4 = _mm256_set_m128i(y, _mm256_extracti128_si256(times3(x23), 1));
  c[0] = trit_code(a0);
  c[1] = trit_code(a1);
  c[2] = trit_code(a2);
  c[3] = trit_code(a3);
  c[4] = trit_code(a4);
  c[5] = trit_code(x01);
  c[6] = trit_code(x23);
  c[7] = trit_code(x4);
}

// Σ u·q over one block.
TGT __m256i tq1_block_dot(const uint8_t* blk, const __m256i* q8) {
  __m256i c[8];
  tq1_codes(blk, c);
  const __m256i acc = dot4(_mm256_setzero_si256(), c[0], q8[0], c[1], q8[1], c[2], q8[2], c[3], q8[3]);
  return dot4(acc, c[4], q8[4], c[5], q8[5], c[6], q8[6], c[7], q8[7]);
}

BITNET_TGT void tq1_rows(const TernaryJob& j, int64_t r0, int64_t r1, float* y) {
  int64_t r = r0;
  for (; r + 4 <= r1; r += 4) tq_group<4, kTq1Bytes, 52, tq1_block_dot>(j, r, y);
  for (; r < r1; ++r) tq_group<1, kTq1Bytes, 52, tq1_block_dot>(j, r, y);
}

// ---- float-storage weights: per row two FMA chains of kLanes lanes over 2·kLanes-element steps,
// one kLanes-step, then a fixed horizontal sum and the scalar tail — the same order whatever R.
// The AVX-512 set uses 16-lane (zmm) chains, the AVX2 set 8-lane ones: one zmm conversion and
// FMA per 16 weights instead of two ymm ones (2B-4T's F16 head, one thread, both with the
// prefetch below: 24.0 GB/s with zmm, 22.8 with ymm).

TGT float hsum_ps(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

#if BITNET_VNNI  // the AVX-512 set
using fvec = __m512;
constexpr int64_t kLanes = 16;
TGT fvec fzero() { return _mm512_setzero_ps(); }
TGT fvec fload(const float* p) { return _mm512_loadu_ps(p); }
TGT fvec ffma(fvec a, fvec b, fvec c) { return _mm512_fmadd_ps(a, b, c); }
TGT fvec fadd(fvec a, fvec b) { return _mm512_add_ps(a, b); }
TGT fvec fset1(float v) { return _mm512_set1_ps(v); }
TGT float fsum2(fvec a, fvec b) {  // (a + b), then halves added down to one lane
  const __m512 s = _mm512_add_ps(a, b);
  const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(s), 1));  // AVX512F only
  return hsum_ps(_mm256_add_ps(_mm512_castps512_ps256(s), hi));
}
#else
using fvec = __m256;
constexpr int64_t kLanes = 8;
TGT fvec fzero() { return _mm256_setzero_ps(); }
TGT fvec fload(const float* p) { return _mm256_loadu_ps(p); }
TGT fvec ffma(fvec a, fvec b, fvec c) { return _mm256_fmadd_ps(a, b, c); }
TGT fvec fadd(fvec a, fvec b) { return _mm256_add_ps(a, b); }
TGT fvec fset1(float v) { return _mm256_set1_ps(v); }
TGT float fsum2(fvec a, fvec b) { return hsum_ps(_mm256_add_ps(a, b)); }
#endif

// kLanes weights of one storage type at p, as f32.
struct LoadF32 {
  static constexpr int64_t kBytes = 4;
  TGT static fvec vec(const uint8_t* p) { return fload(reinterpret_cast<const float*>(p)); }
  TGT static float one(const uint8_t* p) { return load_f32(p); }
};
struct LoadF16 {
  static constexpr int64_t kBytes = 2;
#if BITNET_VNNI
  TGT static fvec vec(const uint8_t* p) { return _mm512_cvtph_ps(load256(p)); }
#else
  TGT static fvec vec(const uint8_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
#endif
  TGT static float one(const uint8_t* p) { return _cvtsh_ss(load_u16(p)); }
};
struct LoadBF16 {
  static constexpr int64_t kBytes = 2;
#if BITNET_VNNI
  TGT static fvec vec(const uint8_t* p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(load256(p)), 16));
  }
#else
  TGT static fvec vec(const uint8_t* p) {
    const __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(h, 16));
  }
#endif
  TGT static float one(const uint8_t* p) { return bf16_to_fp32(load_u16(p)); }
};

template <class L, int R>
TGT void float_group(const uint8_t* w, int64_t K, const float* x, int64_t r, float* y) {
  constexpr int64_t kStep = 2 * kLanes;
  const uint8_t* row[R];
  fvec a0[R], a1[R];
  for (int i = 0; i < R; ++i) {
    row[i] = w + (r + i) * K * L::kBytes;
    a0[i] = a1[i] = fzero();
  }
  // R interleaved row streams are more than the hardware prefetcher follows well: fetch the same
  // bytes of the next group's rows (the continuation of this contiguous group), one line per step
  // (an F16 32000×1536 matrix in a standalone loop, one thread: 8.5 -> 19 GB/s with ymm, 33 GB/s
  // with zmm; in bench_kernels the 2B-4T head went from 14.1 to 22.8 / 24.0 GB/s).
  const int64_t ahead = R * K * L::kBytes;
  int64_t c = 0;
  for (; c + kStep <= K; c += kStep) {
    const fvec x0 = fload(x + c), x1 = fload(x + c + kLanes);
    for (int i = 0; i < R; ++i) {
      const uint8_t* p = row[i] + c * L::kBytes;
      for (int64_t line = 0; line < kStep * L::kBytes; line += 64)
        prefetch_weights(p + ahead + line);
      a0[i] = ffma(L::vec(p), x0, a0[i]);
      a1[i] = ffma(L::vec(p + kLanes * L::kBytes), x1, a1[i]);
    }
  }
  if (c + kLanes <= K) {
    const fvec x0 = fload(x + c);
    for (int i = 0; i < R; ++i) a0[i] = ffma(L::vec(row[i] + c * L::kBytes), x0, a0[i]);
    c += kLanes;
  }
  for (int i = 0; i < R; ++i) {
    float s = fsum2(a0[i], a1[i]);
    for (int64_t t = c; t < K; ++t) s = std::fma(L::one(row[i] + t * L::kBytes), x[t], s);
    y[r + i] = s;
  }
}

template <class L>
BITNET_TGT void float_rows(const uint8_t* w, int64_t K, const float* x, int64_t r0, int64_t r1,
                           float* y) {
  int64_t r = r0;
  for (; r + 4 <= r1; r += 4) float_group<L, 4>(w, K, x, r, y);
  for (; r < r1; ++r) float_group<L, 1>(w, K, x, r, y);
}

// ---- Q8_0 / Q6_K × block-quantized int8 activations (kernels.h Q8Input) ----
// Each weight block's integer sum lands spread over the int32 lanes of one vector V (exact); the
// float step acc += cvt(V)·(d_b·d_x,b) then runs in f32 lanes, summed across lanes at the row's end.
#if BITNET_VNNI
using ivec = __m512i;
TGT fvec icvt(ivec v) { return _mm512_cvtepi32_ps(v); }
#else
using ivec = __m256i;
TGT fvec icvt(ivec v) { return _mm256_cvtepi32_ps(v); }
#endif

// Q8_0: Σ w·q as |w| (unsigned) times q carrying w's sign (|w| ≤ 128, so a VPMADDUBSW pair
// ≤ 2·128·127 never saturates). AVX-512: two blocks per zmm, 8 lanes each.
// How far ahead of the current block the Q8_0 / Q6_K kernels prefetch: one thread on the
// AVX-512 machine, Q6_K 2B-4T head (269 MB) / large head: 2 KB 15.0 / 21.6 GB/s, 8 KB 27.6 / 37.0,
// 16 KB 30.5 / 42.5, 32-64 KB no better; without prefetches 9.3 / 11.3 (the stream is latency-bound).
inline constexpr int64_t kQuantPrefetchBytes = 16384;

TGT void prefetch_ahead(const uint8_t* p, int64_t bytes) {
  for (int64_t line = 0; line < bytes; line += 64)
    prefetch_weights(p + kQuantPrefetchBytes + line);
}

// Q8_0: Σ w·q as |w| (unsigned) times q carrying w's sign (|w| ≤ 128, so a VPMADDUBSW pair
// ≤ 2·128·127 never saturates). AVX-512: two blocks per zmm, 8 lanes each. One row at a time.
BITNET_TGT void q8_0_rows(const uint8_t* w, int64_t K, const Q8Input& x, int64_t r0, int64_t r1, float* y) {
  const int64_t nb = K / 32;
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = w + r * nb * kQ8Bytes;
    fvec acc = fzero();
    int64_t b = 0;
#if BITNET_VNNI
    for (; b + 2 <= nb; b += 2) {
      const uint8_t* blk = row + b * kQ8Bytes;
      prefetch_ahead(blk, 2 * kQ8Bytes);
      const __m512i xq = _mm512_loadu_si512(x.q + 32 * b);
      const __m512i wq = _mm512_inserti64x4(_mm512_castsi256_si512(load256(blk + 2)), load256(blk + 2 + kQ8Bytes), 1);
      const __m512i xs = _mm512_mask_sub_epi8(xq, _mm512_movepi8_mask(wq), _mm512_setzero_si512(), xq);
      const __m512i v = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(wq), xs);
      const __m512 dw = _mm512_cvtph_ps(_mm256_set_m128i(_mm_set1_epi16(short(load_u16(blk + kQ8Bytes))),
                                                         _mm_set1_epi16(short(load_u16(blk)))));
      const __m512 dx = _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_set1_ps(x.d[b])),
                                                            _mm256_castps_pd(_mm256_set1_ps(x.d[b + 1])), 1));
      acc = ffma(icvt(v), _mm512_mul_ps(dw, dx), acc);
    }
#endif
    for (; b < nb; ++b) {
      const uint8_t* blk = row + b * kQ8Bytes;
      prefetch_ahead(blk, kQ8Bytes);
      const __m256i wq = load256(blk + 2);
      const __m256i p = _mm256_maddubs_epi16(_mm256_abs_epi8(wq), _mm256_sign_epi8(load256(x.q + 32 * b), wq));
      const __m256i v = _mm256_madd_epi16(p, _mm256_set1_epi16(1));
      const float ddx = _cvtsh_ss(load_u16(blk)) * x.d[b];
#if BITNET_VNNI
      // The odd last block in the low 8 lanes (the upper ones add 0·0).
      acc = ffma(_mm512_zextps256_ps512(_mm256_cvtepi32_ps(v)), _mm512_zextps256_ps512(_mm256_set1_ps(ddx)), acc);
#else
      acc = ffma(icvt(v), fset1(ddx), acc);
#endif
    }
    y[r] = fsum2(acc, fzero());
  }
}

// Q6_K: element 128h + 32k + l (l < 32) has its low 4 bits in nibble k/2 of ql[64h + 32(k%2) + l]
// and its high 2 bits at bits 2k of qh[32h + l]; the 16 elements from 16j share the int8 scale
// sc[j] (ternary-formats.md §10). The unsigned code u = low | high << 4 ∈ [0, 63] goes through
// VPMADDUBSW with the activations (a pair ≤ 2·63·127: no saturation), the pairs through VPMADDWD /
// VPDPWSSD with each pair's sub-block scale, and the −32 of every code is subtracted once per
// block as 32·Σ_j sc_j·Σq_j (from Q8Input::sum16).
#if BITNET_VNNI
// VPERMW indices: zmm c of a block (elements 64c … 64c+63) has int16 pair lane i in sub-block 4c + i/8.
struct Q6ScaleIndex {
  alignas(64) int16_t idx[4][32];
  constexpr Q6ScaleIndex() : idx() {
    for (int c = 0; c < 4; ++c)
      for (int i = 0; i < 32; ++i) idx[c][i] = int16_t(4 * c + i / 8);
  }
};
constexpr Q6ScaleIndex kQ6ScaleIndex;

// ql bytes 64h … 64h+63: the low nibbles are elements 128h … 128h+63 in order, the high nibbles
// elements 128h+64 … 128h+127; the 32 qh bytes of half h, repeated in both 256-bit halves, give their
// high bits with a per-half shift (bits 4-5 of every byte come from within the same byte).
TGT ivec q6_block(const uint8_t* blk, const int8_t* q, const int16_t* sum16) {
  const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
  const __m512i up = _mm512_set_epi64(2, 2, 2, 2, 4, 4, 4, 4), down = _mm512_set_epi64(2, 2, 2, 2, 0, 0, 0, 0);
  const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 192)));
  const __m512i sc = _mm512_castsi256_si512(sc16);  // VPERMW reads lanes 0-15 only
  __m512i acc = _mm512_setzero_si512();
  for (int h = 0; h < 2; ++h) {
    const __m512i ql = _mm512_loadu_si512(blk + 64 * h);
    const __m512i qh = _mm512_broadcast_i64x4(load256(blk + 128 + 32 * h));
    const __m512i u0 = _mm512_or_si512(_mm512_and_si512(ql, m4), _mm512_and_si512(_mm512_sllv_epi64(qh, up), m30));
    const __m512i u1 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                                       _mm512_and_si512(_mm512_srlv_epi64(qh, down), m30));
    const __m512i s0 = _mm512_permutexvar_epi16(_mm512_load_si512(kQ6ScaleIndex.idx[2 * h]), sc);
    const __m512i s1 = _mm512_permutexvar_epi16(_mm512_load_si512(kQ6ScaleIndex.idx[2 * h + 1]), sc);
    acc = _mm512_dpwssd_epi32(acc, _mm512_maddubs_epi16(u0, _mm512_loadu_si512(q + 128 * h)), s0);
    acc = _mm512_dpwssd_epi32(acc, _mm512_maddubs_epi16(u1, _mm512_loadu_si512(q + 128 * h + 64)), s1);
  }
  const __m256i off = _mm256_madd_epi16(_mm256_slli_epi16(sc16, 5), load256(sum16));
  return _mm512_sub_epi32(acc, _mm512_zextsi256_si512(off));
}
#else
// Bits 4-5 of every byte = bits 2k, 2k+1 of the qh byte (the 16-bit shifts only bring in bits
// that the mask drops).
template <int k>
TGT __m256i q6_high(__m256i qh) {
  const __m256i m = _mm256_set1_epi8(0x30);
  if constexpr (k == 0) return _mm256_and_si256(_mm256_slli_epi16(qh, 4), m);
  if constexpr (k == 1) return _mm256_and_si256(_mm256_slli_epi16(qh, 2), m);
  if constexpr (k == 2) return _mm256_and_si256(qh, m);
  return _mm256_and_si256(_mm256_srli_epi16(qh, 2), m);
}

// Plane k of half h (elements 128h + 32k …): its pairs times [sc_{8h+2k} ×8 | sc_{8h+2k+1} ×8],
// picked by VPSHUFB from the half's 8 int16 scales repeated in both 128-bit lanes.
template <int k>
TGT __m256i q6_plane(__m256i acc, __m256i ql0, __m256i ql1, __m256i qh, __m256i sc, const int8_t* q) {
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i ql = k % 2 == 0 ? ql0 : ql1;
  const __m256i u = _mm256_or_si256(_mm256_and_si256(k < 2 ? ql : _mm256_srli_epi16(ql, 4), m4), q6_high<k>(qh));
  const __m256i pick = _mm256_set_m128i(_mm_set1_epi16(short((4 * k + 3) << 8 | (4 * k + 2))),
                                        _mm_set1_epi16(short((4 * k + 1) << 8 | (4 * k))));
  const __m256i p = _mm256_maddubs_epi16(u, load256(q + 32 * k));
  return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_shuffle_epi8(sc, pick)));
}

TGT ivec q6_block(const uint8_t* blk, const int8_t* q, const int16_t* sum16) {
  __m256i acc = _mm256_setzero_si256();
  for (int h = 0; h < 2; ++h) {
    const __m256i ql0 = load256(blk + 64 * h), ql1 = load256(blk + 64 * h + 32);
    const __m256i qh = load256(blk + 128 + 32 * h);
    const __m256i sc = _mm256_broadcastsi128_si256(
        _mm_cvtepi8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk + 192 + 8 * h))));
    acc = q6_plane<0>(acc, ql0, ql1, qh, sc, q + 128 * h);
    acc = q6_plane<1>(acc, ql0, ql1, qh, sc, q + 128 * h);
    acc = q6_plane<2>(acc, ql0, ql1, qh, sc, q + 128 * h);
    acc = q6_plane<3>(acc, ql0, ql1, qh, sc, q + 128 * h);
  }
  const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 192)));
  return _mm256_sub_epi32(acc, _mm256_madd_epi16(_mm256_slli_epi16(sc16, 5), load256(sum16)));
}
#endif

// One row at a time: a single stream (with the prefetches) beat 2 and 4 interleaved rows.
BITNET_TGT void q6_k_rows(const uint8_t* w, int64_t K, const Q8Input& x, int64_t r0, int64_t r1, float* y) {
  const int64_t nb = K / 256;
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = w + r * nb * kQ6Bytes;
    fvec acc = fzero();
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* blk = row + b * kQ6Bytes;
      prefetch_ahead(blk, kQ6Bytes);
      const ivec v = q6_block(blk, x.q + 256 * b, x.sum16 + 16 * b);
      acc = ffma(icvt(v), fset1(_cvtsh_ss(load_u16(blk + 208)) * x.d[b]), acc);
    }
    y[r] = fsum2(acc, fzero());
  }
}

#if BITNET_VNNI
// acc[t] += one Q6_K row × token t, for T tokens: each block's codes and scales decoded once (as
// q6_block does), then per token the same integer sums and the same f32 steps as q6_k_rows, so every
// value equals it.
template <int T>
TGT void q6_k_row_tokens(const uint8_t* row, int64_t K, const Q8Input* xs, fvec* acc) {
  const int64_t nb = K / 256;
  const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
  const __m512i up = _mm512_set_epi64(2, 2, 2, 2, 4, 4, 4, 4), down = _mm512_set_epi64(2, 2, 2, 2, 0, 0, 0, 0);
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = row + b * kQ6Bytes;
    prefetch_ahead(blk, kQ6Bytes);
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 192)));
    const __m512i sc = _mm512_castsi256_si512(sc16);
    __m512i u[4], s[4];
    for (int h = 0; h < 2; ++h) {
      const __m512i ql = _mm512_loadu_si512(blk + 64 * h);
      const __m512i qh = _mm512_broadcast_i64x4(load256(blk + 128 + 32 * h));
      u[2 * h] = _mm512_or_si512(_mm512_and_si512(ql, m4), _mm512_and_si512(_mm512_sllv_epi64(qh, up), m30));
      u[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                                     _mm512_and_si512(_mm512_srlv_epi64(qh, down), m30));
      s[2 * h] = _mm512_permutexvar_epi16(_mm512_load_si512(kQ6ScaleIndex.idx[2 * h]), sc);
      s[2 * h + 1] = _mm512_permutexvar_epi16(_mm512_load_si512(kQ6ScaleIndex.idx[2 * h + 1]), sc);
    }
    const __m256i sc32 = _mm256_slli_epi16(sc16, 5);
    const float dw = _cvtsh_ss(load_u16(blk + 208));
    for (int t = 0; t < T; ++t) {
      const int8_t* q = xs[t].q + 256 * b;
      __m512i a = _mm512_setzero_si512();
      for (int k = 0; k < 4; ++k) a = _mm512_dpwssd_epi32(a, _mm512_maddubs_epi16(u[k], _mm512_loadu_si512(q + 64 * k)), s[k]);
      const __m256i off = _mm256_madd_epi16(sc32, load256(xs[t].sum16 + 16 * b));
      acc[t] = ffma(icvt(_mm512_sub_epi32(a, _mm512_zextsi256_si512(off))), fset1(dw * xs[t].d[b]), acc[t]);
    }
  }
}

// acc[t] += one Q8_0 row × token t, for T tokens: each pair of blocks is loaded, its |w| and sign
// mask and its two scales converted once, then per token the same integer sums and f32 steps as
// q8_0_rows (an odd last block likewise), so every value equals it.
template <int T>
TGT void q8_0_row_tokens(const uint8_t* row, int64_t K, const Q8Input* xs, fvec* acc) {
  const int64_t nb = K / 32;
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    const uint8_t* blk = row + b * kQ8Bytes;
    prefetch_ahead(blk, 2 * kQ8Bytes);
    const __m512i wq = _mm512_inserti64x4(_mm512_castsi256_si512(load256(blk + 2)), load256(blk + 2 + kQ8Bytes), 1);
    const __m512i wabs = _mm512_abs_epi8(wq);
    const __mmask64 negative = _mm512_movepi8_mask(wq);
    const __m512 dw = _mm512_cvtph_ps(_mm256_set_m128i(_mm_set1_epi16(short(load_u16(blk + kQ8Bytes))),
                                                       _mm_set1_epi16(short(load_u16(blk)))));
    for (int t = 0; t < T; ++t) {
      const __m512i xq = _mm512_loadu_si512(xs[t].q + 32 * b);
      const __m512i xsg = _mm512_mask_sub_epi8(xq, negative, _mm512_setzero_si512(), xq);
      const __m512i v = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wabs, xsg);
      const __m512 dx = _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_set1_ps(xs[t].d[b])),
                                                            _mm256_castps_pd(_mm256_set1_ps(xs[t].d[b + 1])), 1));
      acc[t] = ffma(icvt(v), _mm512_mul_ps(dw, dx), acc[t]);
    }
  }
  if (b < nb) {
    const uint8_t* blk = row + b * kQ8Bytes;
    const __m256i wq = load256(blk + 2);
    const __m256i wabs = _mm256_abs_epi8(wq);
    const float dw = _cvtsh_ss(load_u16(blk));
    for (int t = 0; t < T; ++t) {
      const __m256i p = _mm256_maddubs_epi16(wabs, _mm256_sign_epi8(load256(xs[t].q + 32 * b), wq));
      const __m256i v = _mm256_madd_epi16(p, _mm256_set1_epi16(1));
      const float ddx = dw * xs[t].d[b];
      acc[t] = ffma(_mm512_zextps256_ps512(_mm256_cvtepi32_ps(v)), _mm512_zextps256_ps512(_mm256_set1_ps(ddx)), acc[t]);
    }
  }
}

#else
// AVX2 / AVX-VNNI: T ≤ 4 tokens against one Q6_K row. Per block and half, each plane's codes and
// its pair scales are formed once (as q6_block does) and applied to every token; per token the
// same integer lane sums and the same f32 steps as q6_k_rows, so every value equals it. The
// integer sums are named variables (an array ends up on the stack: see i2s_chunk_named).
// Plane k of a half (ql: its ql0 or ql1, per q6_plane) for T tokens, activations from q + off.
template <int k, int T>
TGT void q6_plane_tokens(__m256i ql, __m256i qh, __m256i sc, const Q8Input* xs, int64_t off, __m256i& i0,
                         __m256i& i1, __m256i& i2, __m256i& i3) {
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i u = _mm256_or_si256(_mm256_and_si256(k < 2 ? ql : _mm256_srli_epi16(ql, 4), m4), q6_high<k>(qh));
  const __m256i pick = _mm256_set_m128i(_mm_set1_epi16(short((4 * k + 3) << 8 | (4 * k + 2))),
                                        _mm_set1_epi16(short((4 * k + 1) << 8 | (4 * k))));
  const __m256i scale = _mm256_shuffle_epi8(sc, pick);
  off += 32 * k;
  i0 = _mm256_add_epi32(i0, _mm256_madd_epi16(_mm256_maddubs_epi16(u, load256(xs[0].q + off)), scale));
  if constexpr (T > 1) i1 = _mm256_add_epi32(i1, _mm256_madd_epi16(_mm256_maddubs_epi16(u, load256(xs[1].q + off)), scale));
  if constexpr (T > 2) i2 = _mm256_add_epi32(i2, _mm256_madd_epi16(_mm256_maddubs_epi16(u, load256(xs[2].q + off)), scale));
  if constexpr (T > 3) i3 = _mm256_add_epi32(i3, _mm256_madd_epi16(_mm256_maddubs_epi16(u, load256(xs[3].q + off)), scale));
  __asm__("" : "+x"(i0), "+x"(i1), "+x"(i2), "+x"(i3));
}

template <int T>
TGT void q6_k_row_tokens(const uint8_t* row, int64_t K, const Q8Input* xs, fvec* acc) {
  static_assert(T >= 1 && T <= 4);
  const int64_t nb = K / 256;
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = row + b * kQ6Bytes;
    prefetch_ahead(blk, kQ6Bytes);
    __m256i i0 = _mm256_setzero_si256(), i1 = i0, i2 = i0, i3 = i0;
    for (int h = 0; h < 2; ++h) {
      const __m256i ql0 = load256(blk + 64 * h), ql1 = load256(blk + 64 * h + 32);
      const __m256i qh = load256(blk + 128 + 32 * h);
      const __m256i sc = _mm256_broadcastsi128_si256(
          _mm_cvtepi8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk + 192 + 8 * h))));
      q6_plane_tokens<0, T>(ql0, qh, sc, xs, 256 * b + 128 * h, i0, i1, i2, i3);
      q6_plane_tokens<1, T>(ql1, qh, sc, xs, 256 * b + 128 * h, i0, i1, i2, i3);
      q6_plane_tokens<2, T>(ql0, qh, sc, xs, 256 * b + 128 * h, i0, i1, i2, i3);
      q6_plane_tokens<3, T>(ql1, qh, sc, xs, 256 * b + 128 * h, i0, i1, i2, i3);
    }
    const __m256i sc32 =
        _mm256_slli_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 192))), 5);
    const float dw = _cvtsh_ss(load_u16(blk + 208));
    const __m256i sums[4] = {i0, i1, i2, i3};
    for (int t = 0; t < T; ++t) {
      const __m256i v = _mm256_sub_epi32(sums[t], _mm256_madd_epi16(sc32, load256(xs[t].sum16 + 16 * b)));
      acc[t] = ffma(icvt(v), fset1(dw * xs[t].d[b]), acc[t]);
    }
  }
}

// AVX2 / AVX-VNNI: T ≤ 4 tokens against one Q8_0 row; each block's |w| formed once, then per token
// q8_0_rows' steps (sign, VPMADDUBSW, VPMADDWD, the f32 multiply-add), so every value equals it.
template <int T>
TGT void q8_0_row_tokens(const uint8_t* row, int64_t K, const Q8Input* xs, fvec* acc) {
  const int64_t nb = K / 32;
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = row + b * kQ8Bytes;
    prefetch_ahead(blk, kQ8Bytes);
    const __m256i wq = load256(blk + 2), wabs = _mm256_abs_epi8(wq);
    const float dw = _cvtsh_ss(load_u16(blk));
    for (int t = 0; t < T; ++t) {
      const __m256i p = _mm256_maddubs_epi16(wabs, _mm256_sign_epi8(load256(xs[t].q + 32 * b), wq));
      acc[t] = ffma(icvt(_mm256_madd_epi16(p, _mm256_set1_epi16(1))), fset1(dw * xs[t].d[b]), acc[t]);
    }
  }
}
#endif

// Up to kQuantTileTokens tokens per pass over 64-row tiles (a tile's blocks stay in L2 while the
// token groups pass over them): 8 with AVX-512's 32 registers, 4 with AVX2's 16.
#if BITNET_VNNI
constexpr int kQuantTileTokens = 8;
#else
constexpr int kQuantTileTokens = 4;
#endif
// Rows [r0, r1) × T tokens: Row::add<T> sums a row against each token into f32 lanes, which are
// then added up as the row kernels do.
template <int T, class Row>
TGT void quant_rows_tokens(const uint8_t* w, int64_t K, const Q8Input* xs, int64_t r0, int64_t r1, float* y,
                           int64_t ld) {
  for (int64_t r = r0; r < r1; ++r) {
    fvec acc[T];
    for (int t = 0; t < T; ++t) acc[t] = fzero();
    Row::template add<T>(w + r * Row::bytes(K), K, xs, acc);
    for (int t = 0; t < T; ++t) y[t * ld + r] = fsum2(acc[t], fzero());
  }
}

template <class Row>
TGT void quant_mm(const uint8_t* w, int64_t K, const Q8Input* xs, int64_t n_tokens, int64_t r0, int64_t r1,
                  float* y, int64_t ld) {
  for (int64_t a = r0; a < r1; a += 64) {
    const int64_t b = std::min(r1, a + 64);
    for (int64_t t = 0; t < n_tokens; t += kQuantTileTokens) {
      const Q8Input* x = xs + t;
      float* yt = y + t * ld;
      switch (std::min<int64_t>(kQuantTileTokens, n_tokens - t)) {
        case 1: quant_rows_tokens<1, Row>(w, K, x, a, b, yt, ld); break;
        case 2: quant_rows_tokens<2, Row>(w, K, x, a, b, yt, ld); break;
        case 3: quant_rows_tokens<3, Row>(w, K, x, a, b, yt, ld); break;
#if BITNET_VNNI
        case 4: quant_rows_tokens<4, Row>(w, K, x, a, b, yt, ld); break;
        case 5: quant_rows_tokens<5, Row>(w, K, x, a, b, yt, ld); break;
        case 6: quant_rows_tokens<6, Row>(w, K, x, a, b, yt, ld); break;
        case 7: quant_rows_tokens<7, Row>(w, K, x, a, b, yt, ld); break;
        default: quant_rows_tokens<8, Row>(w, K, x, a, b, yt, ld); break;
#else
        default: quant_rows_tokens<4, Row>(w, K, x, a, b, yt, ld); break;
#endif
      }
    }
  }
}
struct Q6kRow {
  static int64_t bytes(int64_t K) { return K / 256 * kQ6Bytes; }
  template <int T>
  TGT static void add(const uint8_t* row, int64_t K, const Q8Input* xs, fvec* acc) { q6_k_row_tokens<T>(row, K, xs, acc); }
};
BITNET_TGT void q6_k_mm(const uint8_t* w, int64_t K, const Q8Input* xs, int64_t n_tokens, int64_t r0, int64_t r1,
                        float* y, int64_t ld) {
  quant_mm<Q6kRow>(w, K, xs, n_tokens, r0, r1, y, ld);
}
struct Q80Row {
  static int64_t bytes(int64_t K) { return K / 32 * kQ8Bytes; }
  template <int T>
  TGT static void add(const uint8_t* row, int64_t K, const Q8Input* xs, fvec* acc) { q8_0_row_tokens<T>(row, K, xs, acc); }
};
BITNET_TGT void q8_0_mm(const uint8_t* w, int64_t K, const Q8Input* xs, int64_t n_tokens, int64_t r0, int64_t r1,
                        float* y, int64_t ld) {
  quant_mm<Q80Row>(w, K, xs, n_tokens, r0, r1, y, ld);
}

}  // namespace
}  // namespace bitnet::kernels
