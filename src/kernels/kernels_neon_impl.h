// The NEON ternary row loops, shared by kernels_neon.cpp (plain NEON) and
// kernels_neon_dotprod.cpp (compiled for ARMv8.2 dot product). The including file defines
// `dot16(acc, codes, q)` (acc += Σ code·q over 16 lanes, as int32x4) in the same namespace first.
// Codes 0/1/2 are multiplied as int8 and the activation sum subtracted afterwards, exactly like the
// reference, so results are bit-identical to dot_ternary_ref.

#if defined(__aarch64__)
#include <arm_neon.h>

#include "kernels/kernels.h"

namespace bitnet::kernels::BITNET_NEON_NAMESPACE {

constexpr int64_t kTq2Bytes = 66;

// I2_S: block of 128 elements in 32 bytes; byte j holds elements j, 32+j, 64+j, 96+j at bit
// shifts 6, 4, 2, 0 (ternary-formats.md §2.2).
inline void i2s_rows(const TernaryJob& j, int64_t r0, int64_t r1, float* y) {
  const int64_t row_bytes = j.K / 4;
  const uint8x16_t three = vdupq_n_u8(3);
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* w = j.w + r * row_bytes;
    int32x4_t acc = vdupq_n_s32(0);
    for (int64_t b = 0; b < j.K / 128; ++b) {
      const int8_t* qb = j.q + 128 * b;
      for (int half = 0; half < 2; ++half) {
        const uint8x16_t v = vld1q_u8(w + 32 * b + 16 * half);
        const int8_t* qh = qb + 16 * half;
        acc = dot16(acc, vshrq_n_u8(v, 6), vld1q_s8(qh));
        acc = dot16(acc, vandq_u8(vshrq_n_u8(v, 4), three), vld1q_s8(qh + 32));
        acc = dot16(acc, vandq_u8(vshrq_n_u8(v, 2), three), vld1q_s8(qh + 64));
        acc = dot16(acc, vandq_u8(v, three), vld1q_s8(qh + 96));
      }
    }
    const int32_t S = vaddvq_s32(acc);
    y[r] = (float(S) - float(j.act.sum)) / j.act.scale * j.alpha;
  }
}

// I2_S × several tokens: one row's block is decoded once per plane and multiplied with a tile of
// T tokens' activations (one accumulator per token); the per-token result is the row kernel's.
template <int P>
inline uint8x16_t i2s_plane(uint8x16_t v) {
  if constexpr (P == 0) return vshrq_n_u8(v, 6);
  else if constexpr (P == 3) return vandq_u8(v, vdupq_n_u8(3));
  else return vandq_u8(vshrq_n_u8(v, 6 - 2 * P), vdupq_n_u8(3));
}

template <int P, int T>
inline void i2s_plane_tokens(uint8x16_t v0, uint8x16_t v1, const int8_t* q, int64_t K, int32x4_t* acc) {
  const uint8x16_t c0 = i2s_plane<P>(v0), c1 = i2s_plane<P>(v1);
  for (int t = 0; t < T; ++t) {
    acc[t] = dot16(acc[t], c0, vld1q_s8(q + t * K + 32 * P));
    acc[t] = dot16(acc[t], c1, vld1q_s8(q + t * K + 32 * P + 16));
  }
}

template <int T>
inline void i2s_row_tokens(const TernaryBatch& j, int64_t r, int64_t t0, float* y, int64_t ld) {
  const uint8_t* w = j.w + r * (j.K / 4);
  const int8_t* q = j.q + t0 * j.K;
  int32x4_t acc[T];
  for (auto& a : acc) a = vdupq_n_s32(0);
  for (int64_t b = 0; b < j.K / 128; ++b, w += 32, q += 128) {
    const uint8x16_t v0 = vld1q_u8(w), v1 = vld1q_u8(w + 16);
    i2s_plane_tokens<0, T>(v0, v1, q, j.K, acc);
    i2s_plane_tokens<1, T>(v0, v1, q, j.K, acc);
    i2s_plane_tokens<2, T>(v0, v1, q, j.K, acc);
    i2s_plane_tokens<3, T>(v0, v1, q, j.K, acc);
  }
  for (int t = 0; t < T; ++t) {
    const ActivationQuant& a = j.act[t0 + t];
    y[(t0 + t) * ld + r] = (float(vaddvq_s32(acc[t])) - float(a.sum)) / a.scale * j.alpha;
  }
}

// Token tiles of 8, then 4, 2, 1; the rows of [r0, r1) (one work chunk) stay in cache across them.
inline void i2s_mm(const TernaryBatch& j, int64_t r0, int64_t r1, float* y, int64_t ld) {
  int64_t t = 0;
  for (; t + 8 <= j.n_tokens; t += 8)
    for (int64_t r = r0; r < r1; ++r) i2s_row_tokens<8>(j, r, t, y, ld);
  if (t + 4 <= j.n_tokens) {
    for (int64_t r = r0; r < r1; ++r) i2s_row_tokens<4>(j, r, t, y, ld);
    t += 4;
  }
  if (t + 2 <= j.n_tokens) {
    for (int64_t r = r0; r < r1; ++r) i2s_row_tokens<2>(j, r, t, y, ld);
    t += 2;
  }
  if (t < j.n_tokens)
    for (int64_t r = r0; r < r1; ++r) i2s_row_tokens<1>(j, r, t, y, ld);
}

// TQ2_0: 256 elements in 64 code bytes + f16 d; element 128h + 32p + m is in byte 32h + m at
// bits 2p (low bits first). isum = Σ code·q − Σ q.
inline void tq2_rows(const TernaryJob& j, int64_t r0, int64_t r1, float* y) {
  const int64_t nb = j.K / 256;
  const uint8x16_t three = vdupq_n_u8(3);
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* w = j.w + r * nb * kTq2Bytes;
    float acc = 0;
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* blk = w + b * kTq2Bytes;
      const int8_t* qb = j.q + 256 * b;
      int32x4_t dot = vdupq_n_s32(0);
      int16x8_t qsum = vdupq_n_s16(0);
      for (int h = 0; h < 2; ++h)
        for (int half = 0; half < 2; ++half) {
          const uint8x16_t v = vld1q_u8(blk + 32 * h + 16 * half);
          for (int p = 0; p < 4; ++p) {
            const int8x16_t q = vld1q_s8(qb + 128 * h + 32 * p + 16 * half);
            const uint8x16_t code = vandq_u8(vshlq_u8(v, vdupq_n_s8(int8_t(-2 * p))), three);
            dot = dot16(dot, code, q);
            qsum = vpadalq_s8(qsum, q);  // ≤ 16 · 2 · 128 per lane: fits int16
          }
        }
      const int32_t isum = vaddvq_s32(dot) - vaddlvq_s16(qsum);
      const float prod = fp16_to_fp32(load_u16(blk + 64)) * float(isum);
      acc += prod;  // separate statement: never contracted into an FMA (block order as reference)
    }
    y[r] = acc / j.act.scale;
  }
}

}  // namespace bitnet::kernels::BITNET_NEON_NAMESPACE
#endif  // __aarch64__
