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
