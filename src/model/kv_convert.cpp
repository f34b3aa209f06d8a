#include "model/kv_convert.h"

#include "avx512_intrinsics.h"
#include "formats/half.h"
#include "model/kv_type.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace bitnet {
namespace {

constexpr int64_t kLanes = 8;  // positions per key block (KvCache::kKeyBlock)

void key_block_generic(const int8_t* codes, const uint16_t* scales, int64_t hd, float* dst) {
  for (int64_t j = 0; j < hd / kKvQ8Block; ++j) {
    float sc[kLanes];
    for (int64_t l = 0; l < kLanes; ++l) sc[l] = fp16_to_fp32(scales[j * kLanes + l]);
    for (int64_t d = j * kKvQ8Block; d < (j + 1) * kKvQ8Block; ++d)
      for (int64_t l = 0; l < kLanes; ++l) dst[d * kLanes + l] = float(codes[d * kLanes + l]) * sc[l];
  }
}

void values_generic(const int8_t* codes, const uint16_t* scales, int64_t n_blocks, float* dst) {
  for (int64_t j = 0; j < n_blocks; ++j) {
    const float sc = fp16_to_fp32(scales[j]);
    for (int64_t i = 0; i < kKvQ8Block; ++i) dst[j * kKvQ8Block + i] = float(codes[j * kKvQ8Block + i]) * sc;
  }
}

#if defined(__x86_64__)
#define BITNET_KVC_AVX2 __attribute__((target("avx2,f16c")))
#define BITNET_KVC_AVX512 __attribute__((target("avx512f,avx512bw,f16c")))

BITNET_KVC_AVX2 inline __m256 codes8(const int8_t* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}

// A dimension's 8 positions per register, times the 8 positions' scales of its 32-dimension block.
BITNET_KVC_AVX2 void key_block_avx2(const int8_t* codes, const uint16_t* scales, int64_t hd, float* dst) {
  for (int64_t j = 0; j < hd / kKvQ8Block; ++j) {
    const __m256 sc = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(scales + j * kLanes)));
    for (int64_t d = j * kKvQ8Block; d < (j + 1) * kKvQ8Block; ++d)
      _mm256_storeu_ps(dst + d * kLanes, _mm256_mul_ps(codes8(codes + d * kLanes), sc));
  }
}

BITNET_KVC_AVX2 void values_avx2(const int8_t* codes, const uint16_t* scales, int64_t n_blocks, float* dst) {
  for (int64_t j = 0; j < n_blocks; ++j) {
    const __m256 sc = _mm256_set1_ps(fp16_to_fp32(scales[j]));
    for (int64_t i = 0; i < kKvQ8Block; i += 8)
      _mm256_storeu_ps(dst + j * kKvQ8Block + i, _mm256_mul_ps(codes8(codes + j * kKvQ8Block + i), sc));
  }
}

BITNET_AVX512_INTRINSICS_BEGIN
BITNET_KVC_AVX512 inline __m512 codes16(const int8_t* p) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}

// Two dimensions (16 codes) per register; the 8 scales twice.
BITNET_KVC_AVX512 void key_block_avx512(const int8_t* codes, const uint16_t* scales, int64_t hd, float* dst) {
  for (int64_t j = 0; j < hd / kKvQ8Block; ++j) {
    const __m256 sc8 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(scales + j * kLanes)));
    const __m512 sc = _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(sc8)));
    for (int64_t d = j * kKvQ8Block; d < (j + 1) * kKvQ8Block; d += 2)
      _mm512_storeu_ps(dst + d * kLanes, _mm512_mul_ps(codes16(codes + d * kLanes), sc));
  }
}

BITNET_KVC_AVX512 void values_avx512(const int8_t* codes, const uint16_t* scales, int64_t n_blocks, float* dst) {
  for (int64_t j = 0; j < n_blocks; ++j) {
    const __m512 sc = _mm512_set1_ps(fp16_to_fp32(scales[j]));
    _mm512_storeu_ps(dst + j * kKvQ8Block, _mm512_mul_ps(codes16(codes + j * kKvQ8Block), sc));
    _mm512_storeu_ps(dst + j * kKvQ8Block + 16, _mm512_mul_ps(codes16(codes + j * kKvQ8Block + 16), sc));
  }
}
BITNET_AVX512_INTRINSICS_END
#endif

enum class Level { Generic, Avx2, Avx512 };

Level level(kernels::Isa isa) {
#if defined(__x86_64__)
  const kernels::CpuFeatures& f = kernels::cpu_features();
  if (isa == kernels::Isa::Avx512Vnni && f.avx512f && f.avx512bw && f.f16c) return Level::Avx512;
  if ((isa == kernels::Isa::Avx2 || isa == kernels::Isa::AvxVnni || isa == kernels::Isa::Avx512Vnni) && f.avx2 &&
      f.f16c)
    return Level::Avx2;
#endif
  (void)isa;
  return Level::Generic;
}

}  // namespace

void q8_key_block_to_f32(kernels::Isa isa, const int8_t* codes, const uint16_t* scales, int64_t head_dim,
                         float* dst) {
  switch (level(isa)) {
#if defined(__x86_64__)
    case Level::Avx512: return key_block_avx512(codes, scales, head_dim, dst);
    case Level::Avx2: return key_block_avx2(codes, scales, head_dim, dst);
#endif
    default: return key_block_generic(codes, scales, head_dim, dst);
  }
}

void q8_values_to_f32(kernels::Isa isa, const int8_t* codes, const uint16_t* scales, int64_t head_dim, int64_t n,
                      float* dst) {
  // Values are contiguous across positions, and so are their scales: one run of n·head_dim/32 blocks.
  const int64_t n_blocks = n * (head_dim / kKvQ8Block);
  switch (level(isa)) {
#if defined(__x86_64__)
    case Level::Avx512: return values_avx512(codes, scales, n_blocks, dst);
    case Level::Avx2: return values_avx2(codes, scales, n_blocks, dst);
#endif
    default: return values_generic(codes, scales, n_blocks, dst);
  }
}

}  // namespace bitnet
