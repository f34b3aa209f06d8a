// Matrix × several tokens (prompt processing), x86 SIMD; included after kernels_x86_impl.h by
// kernels_avx2.cpp and kernels_avx512.cpp, whose helpers it uses, and which it completes with the
// KernelSet table.
//
// Register tile: one weight row × T ≤ 8 tokens. Each weight vector is loaded and decoded once and
// multiplied with the T tokens' activations (one accumulator per token), so decoding is amortized
// over the tile and the activation loads fold into VPMADDUBSW/VPDPBUSD memory operands.
// Cache tile: kTileRows rows × one token tile × one chunk of columns, so that the chunk's
// activations (≤ 16 KiB) stay in L1 while the tile's rows stream past them.
//
// Exactness (AVX2): VPMADDUBSW pairs with valid codes u ≤ 2 lie in [−512, 508]; an I2_S chunk adds
// 16 blocks × 4 planes = 64 of them per int16 lane (range [−32768, 32512], no wrap) before
// VPMADDWD widens to int32; a TQ block adds 8. Invalid codes (3) may wrap but are reported, and the
// caller then discards the result. With VNNI, VPDPBUSD accumulates in int32 directly.
// The float steps per (row, token) are the row kernels' (and the reference's): I2_S
// ((float)S − (float)Q) / s · α; TQ acc += d_b·(float)isum_b in block order, then / s.
#include <algorithm>
#include <type_traits>

namespace bitnet::kernels {
namespace {

constexpr int kTileTokens = 8;
constexpr int64_t kTileRows = 64;
constexpr int64_t kChunkI2s = 16;  // 128-element blocks per chunk (the int16 window above)
constexpr int64_t kChunkTq = 8;    // 256-element blocks per chunk

TGT __m256i mac(__m256i acc, __m256i c, __m256i q) {
#if BITNET_DPBUSD
  return dpbusd256(acc, c, q);
#else
  return _mm256_add_epi16(acc, _mm256_maddubs_epi16(c, q));
#endif
}
TGT __m256i widen(__m256i acc) {
#if BITNET_DPBUSD
  return acc;
#else
  return _mm256_madd_epi16(acc, _mm256_set1_epi16(1));
#endif
}

// T per-token sums (widened accumulators) into S[0..T).
template <int T>
TGT void add_sums(const __m256i* a, int32_t* S) {
  if constexpr (T == 8) {
    __m256i* s = reinterpret_cast<__m256i*>(S);
    _mm256_store_si256(s, _mm256_add_epi32(_mm256_load_si256(s), hsum8(a)));
  } else {
    for (int t = 0; t < T; ++t) S[t] += hsum_i32(a[t]);
  }
}

// ---- I2_S ----

// S[t] += Σ u·q over nb 128-blocks of one row (w) and T tokens (q, stride K). kPrefetch: the row's
// stream is prefetched kI2sPrefetchBytes ahead (rows streamed from memory, as the row kernels do).
//
// Up to 4 tokens: the accumulators are named variables. As an array, GCC kept them on the stack
// (a load, add and store per plane and token: the store-to-load latency then bound the loop, and
// AVX2 2-4 token steps cost as much as 2-4 one-token steps).
template <int T, bool kPrefetch>
TGT void i2s_chunk_named(const uint8_t* w, const int8_t* q, int64_t K, int64_t nb, int32_t* S) {
  static_assert(T >= 1 && T <= 4);
  const __m256i m3 = _mm256_set1_epi8(3);
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  for (int64_t b = 0; b < nb; ++b, w += 32, q += 128) {
    if (kPrefetch && b % 2 == 0) prefetch_weights(w + kI2sPrefetchBytes);
    const __m256i v = load256(w);
#pragma GCC unroll 4
    for (int p = 0; p < 4; ++p) {
      const __m256i c = _mm256_and_si256(_mm256_srli_epi16(v, 6 - 2 * p), m3);
      a0 = mac(a0, c, load256(q + 32 * p));
      if constexpr (T > 1) a1 = mac(a1, c, load256(q + K + 32 * p));
      if constexpr (T > 2) a2 = mac(a2, c, load256(q + 2 * K + 32 * p));
      if constexpr (T > 3) a3 = mac(a3, c, load256(q + 3 * K + 32 * p));
      __asm__("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3));
    }
  }
  S[0] += hsum_i32(widen(a0));
  if constexpr (T > 1) S[1] += hsum_i32(widen(a1));
  if constexpr (T > 2) S[2] += hsum_i32(widen(a2));
  if constexpr (T > 3) S[3] += hsum_i32(widen(a3));
}

template <int T, bool kPrefetch = false>
TGT void i2s_chunk(const uint8_t* w, const int8_t* q, int64_t K, int64_t nb, int32_t* S) {
  if constexpr (T <= 4) return i2s_chunk_named<T, kPrefetch>(w, q, K, nb, S);
  const __m256i m3 = _mm256_set1_epi8(3);
  __m256i a[T];
  for (auto& x : a) x = _mm256_setzero_si256();
  for (int64_t b = 0; b < nb; ++b, w += 32, q += 128) {
    if (kPrefetch && b % 2 == 0) prefetch_weights(w + kI2sPrefetchBytes);
    const __m256i v = load256(w);
    // One plane at a time keeps the live registers at T accumulators + 3. The empty asm pins
    // each accumulator to a register, so the compiler cannot regroup the integer sums into a
    // tree over all planes (which needs more registers than AVX2 has and spills).
    for (int p = 0; p < 4; ++p) {
      const __m256i c = _mm256_and_si256(_mm256_srli_epi16(v, 6 - 2 * p), m3);
      for (int t = 0; t < T; ++t) {
        a[t] = mac(a[t], c, load256(q + t * K + 32 * p));
        __asm__("" : "+x"(a[t]));
      }
    }
  }
  for (auto& x : a) x = widen(x);
  add_sums<T>(a, S);
}

// The 8-token tile's inner loop, in assembly: with intrinsics GCC keeps most of the eight
// accumulators on the stack (a store and a reload per block each), which halved the rate.
// The activations come re-laid per chunk (interleave8): block b, plane p, token t at
// qi + 1024·b + 256·p + 32·t, so one pointer with constant offsets reaches all of them.
#if BITNET_VNNI
#define BITNET_MAC(plane, tok, acc) "vpdpbusd " plane "+" tok "(%[q]), %[c], %[" acc "]\n\t"
#elif BITNET_DPBUSD  // AVX-VNNI: the VEX encoding (a CPU without AVX-512 has no EVEX one); %{ %} are literal braces
#define BITNET_MAC(plane, tok, acc) "%{vex%} vpdpbusd " plane "+" tok "(%[q]), %[c], %[" acc "]\n\t"
#else
#define BITNET_MAC(plane, tok, acc) \
  "vpmaddubsw " plane "+" tok "(%[q]), %[c], %[p]\n\tvpaddw %[p], %[" acc "], %[" acc "]\n\t"
#endif
#define BITNET_PLANE(plane)                                                                        \
  BITNET_MAC(plane, "0", "a0") BITNET_MAC(plane, "32", "a1") BITNET_MAC(plane, "64", "a2")         \
  BITNET_MAC(plane, "96", "a3") BITNET_MAC(plane, "128", "a4") BITNET_MAC(plane, "160", "a5")      \
  BITNET_MAC(plane, "192", "a6") BITNET_MAC(plane, "224", "a7")

// a[t] += Σ u·q over one 32-byte vector of codes (8 tokens): the 2-bit fields at shifts 6, 4, 2, 0
// multiply the activations at qi + 0, 256, 512, 768 (token t at + 32·t).
TGT void codes32_times8(const uint8_t* w, const int8_t* qi, __m256i* a) {
  const __m256i m3 = _mm256_set1_epi8(3);
  __m256i v, c, p;
  // Shift, then mask each byte to its code.
  __asm__(
      "vmovdqu (%[w]), %[v]\n\t"
      "vpsrlw $6, %[v], %[c]\n\tvpand %[m3], %[c], %[c]\n\t" BITNET_PLANE("0")
      "vpsrlw $4, %[v], %[c]\n\tvpand %[m3], %[c], %[c]\n\t" BITNET_PLANE("256")
      "vpsrlw $2, %[v], %[c]\n\tvpand %[m3], %[c], %[c]\n\t" BITNET_PLANE("512")
      "vpand %[m3], %[v], %[c]\n\t" BITNET_PLANE("768")
      : [a0] "+x"(a[0]), [a1] "+x"(a[1]), [a2] "+x"(a[2]), [a3] "+x"(a[3]), [a4] "+x"(a[4]),
        [a5] "+x"(a[5]), [a6] "+x"(a[6]), [a7] "+x"(a[7]), [v] "=&x"(v), [c] "=&x"(c), [p] "=&x"(p)
      : [w] "r"(w), [q] "r"(qi), [m3] "x"(m3)
      : "memory");
  (void)p;
}

// S[t] += Σ u·q over nb ≤ kChunkI2s 128-blocks of one row (w) and 8 tokens (qi, interleaved: an
// I2_S byte holds planes 0 … 3 at shifts 6 … 0).
TGT void i2s_chunk8(const uint8_t* w, const int8_t* qi, int64_t nb, int32_t* S) {
  __m256i a[8];
  for (auto& x : a) x = _mm256_setzero_si256();
  for (int64_t b = 0; b < nb; ++b, w += 32, qi += 1024) codes32_times8(w, qi, a);
  for (auto& x : a) x = widen(x);
  add_sums<8>(a, S);
}
#undef BITNET_PLANE
#undef BITNET_MAC

// The layout codes32_times8 reads: n 128-element blocks of 8 tokens' activations (token t at
// q + t·K), block b's plane p at qi + 1024·b + 256·p, or at + 256·(3 − p) with reverse_planes (for
// TQ2_0, whose bytes hold planes 0 … 3 at shifts 0 … 6, the opposite of I2_S).
TGT void interleave8(const int8_t* q, int64_t K, int64_t n, bool reverse_planes, int8_t* qi) {
  for (int64_t b = 0; b < n; ++b)
    for (int pl = 0; pl < 4; ++pl)
      for (int t = 0; t < 8; ++t)
        _mm256_store_si256(reinterpret_cast<__m256i*>(qi + 1024 * b + 256 * (reverse_planes ? 3 - pl : pl) + 32 * t),
                           load256(q + t * K + 128 * b + 32 * pl));
}

// Several streams decoding together (≤ kStreamMaxTokens tokens): a step is bound by reading the
// weights from memory, so rows are streamed front to back with prefetches, as the one-token row
// kernel does, instead of the prompt tiles' 64-row × column-chunk order (which made a 2-token
// step cost 1.9× a one-token step on 2B-4T with AVX-512, 2.0× with AVX2). Each token tile's
// activations are laid out once for the whole row; rows go in blocks of kStreamRows, whose
// weights stay in L1 while every token tile passes over them.
// AVX2 / AVX-VNNI stream up to 4 tokens: from 5 on the prompt tiles' 8-token assembly kernel was
// faster on the Intel Xeon VM (B = 8: 42.7-47.3 vs 35.6-40.8 t/s, `BITNET_ISA=avx2`).
#if BITNET_VNNI
constexpr int64_t kStreamMaxTokens = 16;
#else
constexpr int64_t kStreamMaxTokens = 4;
#endif
constexpr int64_t kStreamRows = 16;
// AVX-512: tokens pass over a row block in groups of up to 4, each group 4 rows × 4 tokens per call
// (16 accumulators): 1.2-1.4× the 8-token tile's rate (2 rows × 8) on the Intel Xeon VM
// (bench_kernels, 2B-4T shapes, one thread), which stays for the prompt tiles.
constexpr int64_t kStreamGroup = 4;

#if BITNET_VNNI
// AVX-512: a T-token tile (1 ≤ T ≤ 4) over pairs of 128-blocks, one zmm of codes (64 weight bytes)
// per pair. Activations re-laid per chunk so that pair k, plane p, token t is one zmm at
// qi + 64·(T·(4k + p) + t) (block 2k's 32 bytes, then block 2k+1's). VPDPBUSD accumulates in
// int32, so no int16 window limits the chunk.
template <int T>
TGT void interleave_pairs(const int8_t* q, int64_t K, int64_t pairs, int8_t* qi) {
  for (int64_t k = 0; k < pairs; ++k)
    for (int pl = 0; pl < 4; ++pl)
      for (int t = 0; t < T; ++t) {
        const int8_t* src = q + t * K + 256 * k + 32 * pl;
        int8_t* dst = qi + 64 * (T * (4 * k + pl) + t);
        _mm256_store_si256(reinterpret_cast<__m256i*>(dst), load256(src));
        _mm256_store_si256(reinterpret_cast<__m256i*>(dst + 32), load256(src + 128));
      }
}

// R rows × T tokens: each activation vector loaded once feeds R VPDPBUSD (one per row), and each
// row's codes, decoded once, feed T (R·T accumulators, 4R code vectors).
// kPrefetch: each row's stream is prefetched ahead (rows streamed from memory, as the row kernels do).
template <int R, int T, bool kPrefetch = false>
TGT void i2s_pairs_rows(const uint8_t* const* w, const int8_t* qi, int64_t pairs, int32_t* const* S) {
  const __m512i m3 = _mm512_set1_epi8(3);
  __m512i a[R][T];
  for (int i = 0; i < R; ++i)
    for (int t = 0; t < T; ++t) a[i][t] = _mm512_setzero_si512();
  for (int64_t k = 0; k < pairs; ++k, qi += 256 * T) {
    __m512i v[R];
    if constexpr (kPrefetch)
      for (int i = 0; i < R; ++i)
        prefetch_weights(w[i] + kI2sPrefetchBytes + 64 * k);
    for (int i = 0; i < R; ++i) v[i] = _mm512_loadu_si512(w[i] + 64 * k);
    for (int p = 0; p < 4; ++p) {
      __m512i c[R];
      for (int i = 0; i < R; ++i) c[i] = _mm512_and_si512(_mm512_srli_epi16(v[i], 6 - 2 * p), m3);
      for (int t = 0; t < T; ++t) {
        const __m512i x = _mm512_load_si512(qi + 64 * (T * p + t));
        for (int i = 0; i < R; ++i) a[i][t] = _mm512_dpbusd_epi32(a[i][t], c[i], x);
      }
    }
  }
  for (int i = 0; i < R; ++i)
    for (int t = 0; t < T; ++t) S[i][t] += _mm512_reduce_add_epi32(a[i][t]);
}

// Rows per call: each activation load serves 4 rows; with ≤ 4 tokens the 16 accumulators, 4 code
// vectors, the weights and the mask fit the 32 zmm registers. (Two accumulator sets per token
// with one shift per 64 weight bytes instead of three — the row kernel's decoding — left GCC
// copying or spilling every accumulator each iteration: 0.7× this rate.)
constexpr int kPairRows = 4;

// N rows from r × the T tokens from t0 (activations laid out in qi as interleave_pairs<T> does for
// the whole row).
template <int N, int T>
TGT void i2s_stream_group(const TernaryBatch& j, const int8_t* qi, int64_t t0, int64_t r, float* y, int64_t ld) {
  const int64_t nb = j.K / 128, row_bytes = j.K / 4;
  const int8_t* q = j.q + t0 * j.K;
  alignas(64) int32_t S[N][T] = {};
  const uint8_t* w[N];
  int32_t* s[N];
  for (int i = 0; i < N; ++i) w[i] = j.w + (r + i) * row_bytes, s[i] = S[i];
  i2s_pairs_rows<N, T, true>(w, qi, nb / 2, s);
  if (nb % 2)  // an odd last block, in ymm
    for (int i = 0; i < N; ++i) i2s_chunk<T>(w[i] + 32 * (nb - 1), q + 128 * (nb - 1), j.K, 1, S[i]);
  for (int t = 0; t < T; ++t) {
    const ActivationQuant& a = j.act[t0 + t];
    for (int i = 0; i < N; ++i) y[(t0 + t) * ld + r + i] = (float(S[i][t]) - float(a.sum)) / a.scale * j.alpha;
  }
}

// Rows [r, r_end) × the T tokens from t0.
template <int T>
TGT void i2s_stream_rows(const TernaryBatch& j, const int8_t* qi, int64_t t0, int64_t r, int64_t r_end, float* y,
                         int64_t ld) {
  constexpr int R = kPairRows;
  for (; r + R <= r_end; r += R) i2s_stream_group<R, T>(j, qi, t0, r, y, ld);
  for (; r < r_end; ++r) i2s_stream_group<1, T>(j, qi, t0, r, y, ld);
}

TGT void i2s_stream(const TernaryBatch& j, int64_t r0, int64_t r1, float* y, int64_t ld) {
  struct alignas(64) Line {
    int8_t bytes[64];
  };
  static thread_local std::vector<Line> lines;
  const int64_t pairs = j.K / 256, n = j.n_tokens;
  lines.resize(size_t(pairs * 4 * n));  // pairs × 4 planes × n tokens lines of 64 bytes
  for (int64_t t0 = 0; t0 < n; t0 += kStreamGroup) {
    int8_t* qi = reinterpret_cast<int8_t*>(lines.data()) + 256 * pairs * t0;
    const int8_t* q = j.q + t0 * j.K;
    switch (std::min<int64_t>(kStreamGroup, n - t0)) {
      case 1: interleave_pairs<1>(q, j.K, pairs, qi); break;
      case 2: interleave_pairs<2>(q, j.K, pairs, qi); break;
      case 3: interleave_pairs<3>(q, j.K, pairs, qi); break;
      default: interleave_pairs<4>(q, j.K, pairs, qi); break;
    }
  }
  for (int64_t rb = r0; rb < r1; rb += kStreamRows) {
    const int64_t re = std::min(r1, rb + kStreamRows);
    for (int64_t t0 = 0; t0 < n; t0 += kStreamGroup) {
      const int8_t* qi = reinterpret_cast<const int8_t*>(lines.data()) + 256 * pairs * t0;
      switch (std::min<int64_t>(kStreamGroup, n - t0)) {
        case 1: i2s_stream_rows<1>(j, qi, t0, rb, re, y, ld); break;
        case 2: i2s_stream_rows<2>(j, qi, t0, rb, re, y, ld); break;
        case 3: i2s_stream_rows<3>(j, qi, t0, rb, re, y, ld); break;
        default: i2s_stream_rows<4>(j, qi, t0, rb, re, y, ld); break;
      }
    }
  }
}
#endif

#if !BITNET_VNNI
// AVX2 / AVX-VNNI: the same stream on the int16-window chunk kernel, for up to 4 tokens: every
// row in windows of kChunkI2s blocks, its stream prefetched ahead.
template <int T>
TGT void i2s_stream_rows(const TernaryBatch& j, int64_t r0, int64_t r1, float* y, int64_t ld) {
  const int64_t nb = j.K / 128, row_bytes = j.K / 4;
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* w = j.w + r * row_bytes;
    int32_t S[T] = {};
    for (int64_t c = 0; c < nb; c += kChunkI2s)
      i2s_chunk<T, true>(w + 32 * c, j.q + 128 * c, j.K, std::min(kChunkI2s, nb - c), S);
    for (int t = 0; t < T; ++t) y[t * ld + r] = (float(S[t]) - float(j.act[t].sum)) / j.act[t].scale * j.alpha;
  }
}

TGT void i2s_stream(const TernaryBatch& j, int64_t r0, int64_t r1, float* y, int64_t ld) {
  switch (j.n_tokens) {
    case 1: return i2s_stream_rows<1>(j, r0, r1, y, ld);
    case 2: return i2s_stream_rows<2>(j, r0, r1, y, ld);
    case 3: return i2s_stream_rows<3>(j, r0, r1, y, ld);
    default: return i2s_stream_rows<4>(j, r0, r1, y, ld);  // n_tokens ≤ kStreamMaxTokens = 4
  }
}
#endif


struct I2sTile {
#if BITNET_VNNI
  // Rows [r0, r1) × G tokens (G ≤ 4) over `pairs` pairs of blocks from byte w_off of each row,
  // the tokens' sums at column t_off of S.
  template <int G>
  TGT static void pairs_group(const TernaryBatch& j, const int8_t* q, int64_t w_off, int64_t pairs, int64_t r0,
                              int64_t r1, int8_t* qi, int32_t (*S)[kTileTokens], int t_off) {
    constexpr int R = kPairRows;
    const int64_t row_bytes = j.K / 4;
    interleave_pairs<G>(q, j.K, pairs, qi);
    int64_t r = r0;
    for (; r + R <= r1; r += R) {
      const uint8_t* w[R];
      int32_t* s[R];
      for (int i = 0; i < R; ++i) w[i] = j.w + (r + i) * row_bytes + w_off, s[i] = S[r + i - r0] + t_off;
      i2s_pairs_rows<R, G>(w, qi, pairs, s);
    }
    for (; r < r1; ++r) {
      const uint8_t* w[1] = {j.w + r * row_bytes + w_off};
      int32_t* s[1] = {S[r - r0] + t_off};
      i2s_pairs_rows<1, G>(w, qi, pairs, s);
    }
  }
#endif

  template <int T>
  TGT static void run(const TernaryBatch& j, int64_t r0, int64_t r1, int64_t t0, float* y,
                      int64_t ld) {
    alignas(64) int32_t S[kTileRows][kTileTokens] = {};
    const int64_t nb = j.K / 128, row_bytes = j.K / 4;
    const int8_t* q = j.q + t0 * j.K;
#if BITNET_VNNI
    constexpr bool kPairs = T >= 2;
#else
    constexpr bool kPairs = false;
#endif
    alignas(64) int8_t qi[kPairs || T == 8 ? kChunkI2s * 128 * T : 32];
    for (int64_t c = 0; c < nb; c += kChunkI2s) {
      const int64_t n = std::min(kChunkI2s, nb - c);
      if constexpr (kPairs) {
#if BITNET_VNNI
        // Pairs of blocks in zmm, tokens in groups of up to 4 (see kStreamGroup); an odd last
        // block through the ymm tile after them.
        pairs_group<(T < 4 ? T : 4)>(j, q + 128 * c, 32 * c, n / 2, r0, r1, qi, S, 0);
        if constexpr (T > 4) pairs_group<T - 4>(j, q + 4 * j.K + 128 * c, 32 * c, n / 2, r0, r1, qi, S, 4);
        if (n % 2)
          for (int64_t rr = r0; rr < r1; ++rr)
            i2s_chunk<T>(j.w + rr * row_bytes + 32 * (c + n - 1), q + 128 * (c + n - 1), j.K, 1, S[rr - r0]);
#endif
      } else if constexpr (T == 8) {
        interleave8(q + 128 * c, j.K, n, false, qi);
        for (int64_t r = r0; r < r1; ++r) i2s_chunk8(j.w + r * row_bytes + 32 * c, qi, n, S[r - r0]);
      } else {
        for (int64_t r = r0; r < r1; ++r)
          i2s_chunk<T>(j.w + r * row_bytes + 32 * c, q + 128 * c, j.K, n, S[r - r0]);
      }
    }
    for (int t = 0; t < T; ++t) {
      const ActivationQuant& a = j.act[t0 + t];
      for (int64_t r = r0; r < r1; ++r)
        y[(t0 + t) * ld + r] = (float(S[r - r0][t]) - float(a.sum)) / a.scale * j.alpha;
    }
  }
};

// ---- TQ2_0 / TQ1_0: Σ u·q of one 256-block for T tokens into a[0..T) ----

struct Tq2Block {
  static constexpr int64_t kBytes = kTq2Bytes, kScale = 64;
  template <int T>
  TGT static void dot(const uint8_t* blk, const int8_t* q, int64_t K, __m256i* a) {
    const __m256i m3 = _mm256_set1_epi8(3);
    for (int h = 0; h < 2; ++h) {
      const __m256i v = load256(blk + 32 * h);
      for (int p = 0; p < 4; ++p) {
        const __m256i c = _mm256_and_si256(_mm256_srli_epi16(v, 2 * p), m3);
        for (int t = 0; t < T; ++t) {
          a[t] = mac(a[t], c, load256(q + t * K + 128 * h + 32 * p));
          __asm__("" : "+x"(a[t]));  // as in i2s_chunk
        }
      }
    }
  }
};

struct Tq1Block {
  static constexpr int64_t kBytes = kTq1Bytes, kScale = 52;
  template <int T>
  TGT static void dot(const uint8_t* blk, const int8_t* q, int64_t K, __m256i* a) {
    __m256i c[8];
    tq1_codes(blk, c);
    for (int k = 0; k < 8; ++k)
      for (int t = 0; t < T; ++t) a[t] = mac(a[t], c[k], load256(q + t * K + 32 * k));
  }
};

// acc[t] += d·(float)(Σu·q − Σq) for T tokens, product and sum rounded separately.
template <int T>
TGT void tq_accumulate_tile(__m256i* a, const int32_t* qsum, const uint8_t* d16, float* acc) {
  for (int t = 0; t < T; ++t) a[t] = widen(a[t]);
  if constexpr (T == 8) {
    const __m256i s = _mm256_sub_epi32(hsum8(a), load256(qsum));
    __m256 p = _mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(load_u16(d16))), _mm256_cvtepi32_ps(s));
    __asm__("" : "+x"(p));  // an opaque value: the product cannot be fused into an FMA
    _mm256_store_ps(acc, _mm256_add_ps(_mm256_load_ps(acc), p));
  } else {
    for (int t = 0; t < T; ++t) tq_accumulate(acc[t], d16, hsum_i32(a[t]) - qsum[t]);
  }
}

template <class Block>
struct TqTile {
  template <int T>
  TGT static void run(const TernaryBatch& j, int64_t r0, int64_t r1, int64_t t0, float* y,
                      int64_t ld) {
    alignas(32) float acc[kTileRows][kTileTokens] = {};
    constexpr bool kAsm = T == 8 && std::is_same_v<Block, Tq2Block>;
    alignas(32) int8_t qi[kAsm ? kChunkTq * 2048 : 32];
    const int64_t nb = j.K / 256, row_bytes = nb * Block::kBytes;
    const int8_t* q = j.q + t0 * j.K;
    for (int64_t c = 0; c < nb; c += kChunkTq) {
      const int64_t end = std::min(nb, c + kChunkTq);
      if constexpr (kAsm) {
        interleave8(q + 256 * c, j.K, 2 * (end - c), true, qi);  // a 256-block is two 128-halves
        for (int64_t r = r0; r < r1; ++r)
          for (int64_t b = c; b < end; ++b) {
            const uint8_t* blk = j.w + r * row_bytes + b * Block::kBytes;
            __m256i a[8];
            for (auto& x : a) x = _mm256_setzero_si256();
            codes32_times8(blk, qi + 2048 * (b - c), a);
            codes32_times8(blk + 32, qi + 2048 * (b - c) + 1024, a);
            tq_accumulate_tile<8>(a, j.block_qsum + b * j.n_tokens + t0, blk + Block::kScale, acc[r - r0]);
          }
        continue;
      }
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t b = c; b < end; ++b) {
          const uint8_t* blk = j.w + r * row_bytes + b * Block::kBytes;
          __m256i a[T];
          for (auto& x : a) x = _mm256_setzero_si256();
          Block::template dot<T>(blk, q + 256 * b, j.K, a);
          tq_accumulate_tile<T>(a, j.block_qsum + b * j.n_tokens + t0, blk + Block::kScale, acc[r - r0]);
        }
    }
    for (int t = 0; t < T; ++t)
      for (int64_t r = r0; r < r1; ++r) y[(t0 + t) * ld + r] = acc[r - r0][t] / j.act[t0 + t].scale;
  }
};

// Row tiles × token tiles of 8, then the remaining tokens: in one tile of their own count where the
// tile has a body for every count (the AVX-512 I2_S pairs: 2-7 streams decoding together read each
// weight row once), else in tiles of 4, 2, 1.
template <class Tile>
BITNET_TGT void mat_rows(const TernaryBatch& j, int64_t r0, int64_t r1, float* y, int64_t ld) {
#if BITNET_VNNI
  constexpr bool kAnyCount = std::is_same_v<Tile, I2sTile>;
#else
  constexpr bool kAnyCount = false;
#endif
  if constexpr (std::is_same_v<Tile, I2sTile>)
    if (j.n_tokens <= kStreamMaxTokens) return i2s_stream(j, r0, r1, y, ld);
  for (int64_t a = r0; a < r1; a += kTileRows) {
    const int64_t b = std::min(r1, a + kTileRows);
    int64_t t = 0;
    for (; t + 8 <= j.n_tokens; t += 8) Tile::template run<8>(j, a, b, t, y, ld);
    if constexpr (kAnyCount) {
      switch (j.n_tokens - t) {
        case 7: Tile::template run<7>(j, a, b, t, y, ld); continue;
        case 6: Tile::template run<6>(j, a, b, t, y, ld); continue;
        case 5: Tile::template run<5>(j, a, b, t, y, ld); continue;
        case 4: Tile::template run<4>(j, a, b, t, y, ld); continue;
        case 3: Tile::template run<3>(j, a, b, t, y, ld); continue;
        case 2: Tile::template run<2>(j, a, b, t, y, ld); continue;
        default: break;
      }
    }
    if (t + 4 <= j.n_tokens) Tile::template run<4>(j, a, b, t, y, ld), t += 4;
    if (t + 2 <= j.n_tokens) Tile::template run<2>(j, a, b, t, y, ld), t += 2;
    if (t < j.n_tokens) Tile::template run<1>(j, a, b, t, y, ld);
  }
}

// ---- float-storage weights × several tokens ----

// One row × T tokens with float_group's per-(row, token) order: two kLanes-lane FMA chains over
// 2·kLanes-element steps, one kLanes-step, the fixed horizontal sum, the scalar tail.
template <class L, int T>
TGT void float_row_tokens(const uint8_t* row, int64_t K, const float* x, float* y, int64_t ld) {
  fvec a0[T], a1[T];
  for (int t = 0; t < T; ++t) a0[t] = a1[t] = fzero();
  int64_t c = 0;
  for (; c + 2 * kLanes <= K; c += 2 * kLanes) {
    const fvec w0 = L::vec(row + c * L::kBytes), w1 = L::vec(row + (c + kLanes) * L::kBytes);
    for (int t = 0; t < T; ++t) {
      a0[t] = ffma(w0, fload(x + t * K + c), a0[t]);
      a1[t] = ffma(w1, fload(x + t * K + c + kLanes), a1[t]);
    }
  }
  if (c + kLanes <= K) {
    const fvec w0 = L::vec(row + c * L::kBytes);
    for (int t = 0; t < T; ++t) a0[t] = ffma(w0, fload(x + t * K + c), a0[t]);
    c += kLanes;
  }
  for (int t = 0; t < T; ++t) {
    float s = fsum2(a0[t], a1[t]);
    for (int64_t e = c; e < K; ++e) s = std::fma(L::one(row + e * L::kBytes), x[t * K + e], s);
    y[t * ld] = s;
  }
}

// Row tiles small enough to stay in L2 while every group of four tokens passes over them.
template <class L>
BITNET_TGT void float_mm(const uint8_t* w, int64_t K, const float* x, int64_t n_tokens, int64_t r0,
                         int64_t r1, float* y, int64_t ld) {
  const int64_t tile = std::max<int64_t>(1, (128 << 10) / (K * L::kBytes));
  for (int64_t a = r0; a < r1; a += tile) {
    const int64_t b = std::min(r1, a + tile);
    int64_t t = 0;
    for (; t + 4 <= n_tokens; t += 4)
      for (int64_t r = a; r < b; ++r) float_row_tokens<L, 4>(w + r * K * L::kBytes, K, x + t * K, y + t * ld + r, ld);
    for (; t < n_tokens; ++t)
      for (int64_t r = a; r < b; ++r) float_row_tokens<L, 1>(w + r * K * L::kBytes, K, x + t * K, y + t * ld + r, ld);
  }
}

const KernelSet kSet{.isa = BITNET_ISA_ENUM,
                     .i2s = i2s_rows,
                     .tq1 = tq1_rows,
                     .tq2 = tq2_rows,
                     .i2s_mm = mat_rows<I2sTile>,
                     .tq1_mm = mat_rows<TqTile<Tq1Block>>,
                     .tq2_mm = mat_rows<TqTile<Tq2Block>>,
                     .f32 = float_rows<LoadF32>,
                     .f16 = float_rows<LoadF16>,
                     .bf16 = float_rows<LoadBF16>,
                     .q8_0 = q8_0_rows,
                     .q6_k = q6_k_rows,
                     .q8_0_mm = q8_0_mm,
                     .q6_k_mm = q6_k_mm,
                     .f32_mm = float_mm<LoadF32>,
                     .f16_mm = float_mm<LoadF16>,
                     .bf16_mm = float_mm<LoadBF16>};

}  // namespace
}  // namespace bitnet::kernels

#undef TGT
