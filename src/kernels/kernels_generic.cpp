// Portable kernels (any CPU): byte decoding with shifts in short fixed-length inner loops that
// the compiler can vectorize, exact int32 sums, no allocation. Also the per-ISA table lookup.
#include <algorithm>
#include <bit>
#include <cstring>

#include "formats/half.h"
#include "kernels/kernels.h"

namespace bitnet::kernels {
namespace {

constexpr int64_t kTqBytes1 = 54, kTqBytes2 = 66, kQ8Bytes = 34, kQ6Bytes = 210;

void i2s_rows(const TernaryJob& j, int64_t r0, int64_t r1, float* y) {
  const int64_t row_bytes = j.K / 4;
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* w = j.w + r * row_bytes;
    int32_t S = 0;
    for (int64_t b = 0; b < j.K / 128; ++b) {
      const uint8_t* wb = w + 32 * b;
      const int8_t* qb = j.q + 128 * b;
      int32_t s = 0;
      for (int i = 0; i < 32; ++i) {
        const unsigned v = wb[i];
        s += int32_t(v >> 6) * qb[i] + int32_t((v >> 4) & 3) * qb[32 + i] +
             int32_t((v >> 2) & 3) * qb[64 + i] + int32_t(v & 3) * qb[96 + i];
      }
      S += s;
    }
    y[r] = (float(S) - float(j.act.sum)) / j.act.scale * j.alpha;
  }
}

// Σ_b d_b·(float)isum_b in block order (two statements: never contracted to an FMA), then / s.
inline void tq_accumulate(float& acc, float d, int32_t isum) {
  const float p = d * float(isum);
  acc += p;
}

void tq2_rows(const TernaryJob& j, int64_t r0, int64_t r1, float* y) {
  const int64_t nb = j.K / 256;
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* w = j.w + r * nb * kTqBytes2;
    float acc = 0;
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* blk = w + b * kTqBytes2;
      const int8_t* qb = j.q + 256 * b;
      int32_t isum = 0;
      for (int h = 0; h < 2; ++h)
        for (int m = 0; m < 32; ++m) {
          const int v = blk[32 * h + m];
          const int8_t* qh = qb + 128 * h + m;
          isum += ((v & 3) - 1) * qh[0] + (((v >> 2) & 3) - 1) * qh[32] +
                  (((v >> 4) & 3) - 1) * qh[64] + ((v >> 6) - 1) * qh[96];
        }
      tq_accumulate(acc, fp16_to_fp32(load_u16(blk + 64)), isum);
    }
    y[r] = acc / j.act.scale;
  }
}

// Trit p of byte B: ((B·3^p mod 256)·3) >> 8, as u − 1.
// Exact binary16 -> binary32 without branches (vectorizable): scale the shifted bits by 2^112
// (normal and subnormal halves alike), then restore Inf/NaN and the sign.
inline float half_to_float(uint16_t h) {
  const uint32_t a = uint32_t(h & 0x7fff) << 13;
  uint32_t b = std::bit_cast<uint32_t>(std::bit_cast<float>(a) * 0x1p112f);
  if ((h & 0x7c00) == 0x7c00) b = a | 0x7f800000u;
  return std::bit_cast<float>(b | uint32_t(h & 0x8000) << 16);
}

inline int trit(uint8_t bp) { return ((int(bp) * 3) >> 8) - 1; }

void tq1_rows(const TernaryJob& j, int64_t r0, int64_t r1, float* y) {
  const int64_t nb = j.K / 256;
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* w = j.w + r * nb * kTqBytes1;
    float acc = 0;
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* blk = w + b * kTqBytes1;
      const int8_t* qb = j.q + 256 * b;
      int32_t isum = 0;
      uint8_t mul = 1;
      for (int p = 0; p < 5; ++p, mul = uint8_t(mul * 3)) {
        for (int m = 0; m < 32; ++m) isum += trit(uint8_t(blk[m] * mul)) * qb[32 * p + m];
        for (int m = 0; m < 16; ++m) isum += trit(uint8_t(blk[32 + m] * mul)) * qb[160 + 16 * p + m];
        if (p < 4)
          for (int m = 0; m < 4; ++m) isum += trit(uint8_t(blk[48 + m] * mul)) * qb[240 + 4 * p + m];
      }
      tq_accumulate(acc, fp16_to_fp32(load_u16(blk + 52)), isum);
    }
    y[r] = acc / j.act.scale;
  }
}

// ---- matrix × several tokens: each weight block is decoded once into trits t = u − 1 (or codes u)
// and reused for a tile of tokens; the integer sums are exact, the float steps the row kernels' ----

constexpr int kTileTokens = 8;

// The 128 codes u of one I2_S block (element order).
inline void decode_i2s_block(const uint8_t* wb, uint8_t* u) {
  for (int i = 0; i < 32; ++i) {
    const unsigned v = wb[i];
    u[i] = uint8_t(v >> 6);
    u[32 + i] = uint8_t((v >> 4) & 3);
    u[64 + i] = uint8_t((v >> 2) & 3);
    u[96 + i] = uint8_t(v & 3);
  }
}

void i2s_mm(const TernaryBatch& j, int64_t r0, int64_t r1, float* y, int64_t ld) {
  uint8_t u[128];
  for (int64_t t0 = 0; t0 < j.n_tokens; t0 += kTileTokens) {
    const int nt = int(std::min<int64_t>(kTileTokens, j.n_tokens - t0));
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* w = j.w + r * (j.K / 4);
      int32_t S[kTileTokens] = {};
      for (int64_t b = 0; b < j.K / 128; ++b) {
        decode_i2s_block(w + 32 * b, u);
        for (int t = 0; t < nt; ++t) {
          const int8_t* q = j.q + (t0 + t) * j.K + 128 * b;
          int32_t s = 0;
          for (int i = 0; i < 128; ++i) s += int32_t(u[i]) * q[i];
          S[t] += s;
        }
      }
      for (int t = 0; t < nt; ++t) {
        const ActivationQuant& a = j.act[t0 + t];
        y[(t0 + t) * ld + r] = (float(S[t]) - float(a.sum)) / a.scale * j.alpha;
      }
    }
  }
}

// The 256 trits of one TQ2_0 block.
inline void decode_tq2_block(const uint8_t* blk, int8_t* t) {
  for (int h = 0; h < 2; ++h)
    for (int m = 0; m < 32; ++m) {
      const unsigned v = blk[32 * h + m];
      for (int p = 0; p < 4; ++p) t[128 * h + 32 * p + m] = int8_t(int((v >> (2 * p)) & 3) - 1);
    }
}

// The 256 trits of one TQ1_0 block.
inline void decode_tq1_block(const uint8_t* blk, int8_t* t) {
  uint8_t mul = 1;
  for (int p = 0; p < 5; ++p, mul = uint8_t(mul * 3)) {
    for (int m = 0; m < 32; ++m) t[32 * p + m] = int8_t(trit(uint8_t(blk[m] * mul)));
    for (int m = 0; m < 16; ++m) t[160 + 16 * p + m] = int8_t(trit(uint8_t(blk[32 + m] * mul)));
    if (p < 4)
      for (int m = 0; m < 4; ++m) t[240 + 4 * p + m] = int8_t(trit(uint8_t(blk[48 + m] * mul)));
  }
}

template <int64_t kBytes, int64_t kScale, void (*Decode)(const uint8_t*, int8_t*)>
void tq_mm(const TernaryBatch& j, int64_t r0, int64_t r1, float* y, int64_t ld) {
  const int64_t nb = j.K / 256;
  int8_t tr[256];
  for (int64_t t0 = 0; t0 < j.n_tokens; t0 += kTileTokens) {
    const int nt = int(std::min<int64_t>(kTileTokens, j.n_tokens - t0));
    for (int64_t r = r0; r < r1; ++r) {
      float acc[kTileTokens] = {};
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* blk = j.w + (r * nb + b) * kBytes;
        Decode(blk, tr);
        const float d = fp16_to_fp32(load_u16(blk + kScale));
        for (int t = 0; t < nt; ++t) {
          const int8_t* q = j.q + (t0 + t) * j.K + 256 * b;
          int32_t isum = 0;
          for (int i = 0; i < 256; ++i) isum += int32_t(tr[i]) * q[i];
          tq_accumulate(acc[t], d, isum);
        }
      }
      for (int t = 0; t < nt; ++t) y[(t0 + t) * ld + r] = acc[t] / j.act[t0 + t].scale;
    }
  }
}

// ---- float-storage weights: 8 f32 lanes per row, combined pairwise, then the scalar tail ----

inline float lanes_sum(const float* a) {
  return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
}

template <class Load>
void float_rows(const uint8_t* w, int64_t K, const float* x, int64_t r0, int64_t r1, float* y,
                int64_t row_bytes, Load load) {
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = w + r * row_bytes;
    float a[8] = {};
    int64_t i = 0;
    for (; i + 8 <= K; i += 8)
      for (int l = 0; l < 8; ++l) a[l] += load(row, i + l) * x[i + l];
    float s = lanes_sum(a);
    for (; i < K; ++i) s += load(row, i) * x[i];
    y[r] = s;
  }
}

void f32_rows(const uint8_t* w, int64_t K, const float* x, int64_t r0, int64_t r1, float* y) {
  float_rows(w, K, x, r0, r1, y, K * 4, [](const uint8_t* p, int64_t i) { return load_f32(p + 4 * i); });
}
void f16_rows(const uint8_t* w, int64_t K, const float* x, int64_t r0, int64_t r1, float* y) {
  float_rows(w, K, x, r0, r1, y, K * 2,
             [](const uint8_t* p, int64_t i) { return half_to_float(load_u16(p + 2 * i)); });
}
void bf16_rows(const uint8_t* w, int64_t K, const float* x, int64_t r0, int64_t r1, float* y) {
  float_rows(w, K, x, r0, r1, y, K * 2,
             [](const uint8_t* p, int64_t i) { return bf16_to_fp32(load_u16(p + 2 * i)); });
}

// acc += (d_b·d_x,b)·isum_b per block, in block order (one f32 lane).
template <int64_t kBlock, int64_t kBytes, int64_t kScale, int32_t (*BlockIsum)(const uint8_t*, const int8_t*)>
void quant_rows(const uint8_t* w, int64_t K, const Q8Input& x, int64_t r0, int64_t r1, float* y) {
  const int64_t nb = K / kBlock;
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = w + r * nb * kBytes;
    float acc = 0;
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* blk = row + b * kBytes;
      acc += fp16_to_fp32(load_u16(blk + kScale)) * x.d[b] * float(BlockIsum(blk, x.q + b * kBlock));
    }
    y[r] = acc;
  }
}

}  // namespace

void block_qsums(const int8_t* q, int64_t K, int64_t n_tokens, int32_t* out) {
  const int64_t nb = K / 256;
  for (int64_t t = 0; t < n_tokens; ++t)
    for (int64_t b = 0; b < nb; ++b) {
      const int8_t* qb = q + t * K + 256 * b;
      int32_t s = 0;
      for (int i = 0; i < 256; ++i) s += qb[i];
      out[b * n_tokens + t] = s;
    }
}

const KernelSet& generic_kernels() {
  static const KernelSet set{.isa = Isa::Generic,
                             .i2s = i2s_rows,
                             .tq1 = tq1_rows,
                             .tq2 = tq2_rows,
                             .i2s_mm = i2s_mm,
                             .tq1_mm = tq_mm<kTqBytes1, 52, decode_tq1_block>,
                             .tq2_mm = tq_mm<kTqBytes2, 64, decode_tq2_block>,
                             .f32 = f32_rows,
                             .f16 = f16_rows,
                             .bf16 = bf16_rows,
                             .q8_0 = quant_rows<32, kQ8Bytes, 0, q8_0_block_isum>,
                             .q6_k = quant_rows<256, kQ6Bytes, 208, q6_k_block_isum>};
  return set;
}

const KernelSet& kernel_set(Isa isa) {
#if defined(__x86_64__)
  if (isa == Isa::Avx512Vnni) return avx512_kernels();
  if (isa == Isa::AvxVnni) return avxvnni_kernels();
  if (isa == Isa::Avx2) return avx2_kernels();
#elif defined(__aarch64__)
  if (isa == Isa::NeonDotprod) return neon_dotprod_kernels();
  if (isa == Isa::Neon) return neon_kernels();
#else
  (void)isa;
#endif
  return generic_kernels();
}

}  // namespace bitnet::kernels
