// Activation quantization of bitnet.cpp's I2_S matmul (ternary-formats.md §3) and the absmean
// weight ternarization of its converters (§1). Both round half to even: std::nearbyint under the
// default FE_TONEAREST mode, which the library never changes.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#include "tensor/quants.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include "avx512_intrinsics.h"
#endif

namespace bitnet {

namespace {

// max |x[i]| on the bit patterns: for non-negative floats they order like unsigned integers, and
// an integer max vectorizes where the float one (a serial chain of compares) does not. NaNs count
// as 0, as a float compare would skip them.
inline __attribute__((always_inline)) float max_abs(const float* x, int64_t n) {
  uint32_t m_bits = 0;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, &x[i], 4);
    bits &= 0x7fffffffu;
    bits &= 0u - uint32_t(bits <= 0x7f800000u);
    m_bits = std::max(m_bits, bits);
  }
  float m;
  std::memcpy(&m, &m_bits, 4);
  return m;
}

}  // namespace

float ternarize_absmean(float* w, int64_t n) {
  // mean|W| accumulated in double so the result does not depend on summation order in practice;
  // α itself is an f32 like the converters' torch tensor.
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::fabs(double(w[i]));
  const float mean = n > 0 ? float(sum / double(n)) : 0.0f;
  const float alpha = std::max(mean, 1e-5f);
  for (int64_t i = 0; i < n; ++i) {
    const float t = std::clamp(std::nearbyint(w[i] / alpha), -1.0f, 1.0f);
    w[i] = alpha * t;
  }
  return alpha;
}

// Called for every token of every projection (≈ 8% of prompt time when scalar), so it is written
// to vectorize: a float max (|x| is exact in f32, so this equals the double max), and rounding to
// nearest-even by adding and subtracting 1.5·2^23, which equals std::nearbyint for |v| < 2^22 (here
// |v| ≤ 127·(1 + 2^-23)) under FE_TONEAREST without a libm call per element. On x86-64 an AVX2
// clone is picked at load time (same operations, wider vectors, identical results). Built with
// -ffp-contract=off (CMakeLists.txt): x·s must be rounded before the add, never fused into an FMA.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
ActivationQuant quantize_activations_loop(const float* x, int64_t k, int8_t* q) {
  const float m = max_abs(x, k);
  const double m_eps = std::max(double(m), 1e-5);  // ε keeps an all-zero token finite (s = 127/1e-5, all q = 0)
  ActivationQuant act;
  act.scale = float(127.0 / m_eps);
  const float scale = act.scale, magic = 12582912.0f;  // 1.5·2^23
  int32_t sum = 0;
  for (int64_t i = 0; i < k; ++i) {
    const float scaled = x[i] * scale;  // the f32 product, as the kernel computes it
    float r = (scaled + magic) - magic;
    r = r < -128.0f ? -128.0f : r > 127.0f ? 127.0f : r;
    q[i] = int8_t(int32_t(r));
    sum += q[i];
  }
  act.sum = sum;
  return act;
}

#if defined(__x86_64__)
namespace {
// quantize_activations_loop written out in AVX-512 (F + BW): the compiler's clone took 0.62 µs for
// the 1536 values of a `large` projection input, this 0.21 µs, and a decode step quantizes ~100
// inputs on each thread. The same steps on the same floats: the max on the bit patterns (NaN → 0),
// the add/subtract rounding, the clamps as compares (a NaN passes both, as in the loop), the
// truncating conversion (NaN → INT32_MIN, whose low byte, the stored code, is 0).
BITNET_AVX512_INTRINSICS_BEGIN
__attribute__((target("avx512f,avx512bw"))) ActivationQuant quantize_avx512(const float* x, int64_t k, int8_t* q) {
  const int64_t body = k / 16 * 16;
  __m512i max_bits = _mm512_setzero_si512();
  for (int64_t i = 0; i < body; i += 16) {
    const __m512i bits = _mm512_and_si512(_mm512_loadu_si512(x + i), _mm512_set1_epi32(0x7fffffff));
    const __m512i kept = _mm512_maskz_mov_epi32(_mm512_cmple_epu32_mask(bits, _mm512_set1_epi32(0x7f800000)), bits);
    max_bits = _mm512_max_epu32(max_bits, kept);
  }
  const float body_max = std::bit_cast<float>(_mm512_reduce_max_epu32(max_bits));
  const float m = std::max(body_max, max_abs(x + body, k - body));  // both ≥ +0, neither NaN
  const double m_eps = std::max(double(m), 1e-5);
  ActivationQuant act;
  act.scale = float(127.0 / m_eps);
  const __m512 scale = _mm512_set1_ps(act.scale), magic = _mm512_set1_ps(12582912.0f);
  const __m512 lo = _mm512_set1_ps(-128.0f), hi = _mm512_set1_ps(127.0f);
  __m512i sum = _mm512_setzero_si512();
  for (int64_t i = 0; i < body; i += 16) {
    __m512 r = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(x + i), scale), magic), magic);
    r = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(r, lo, _CMP_LT_OQ), r, lo);
    r = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(r, hi, _CMP_GT_OQ), r, hi);
    const __m512i codes = _mm512_cvttps_epi32(r);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i), _mm512_cvtepi32_epi8(codes));
    sum = _mm512_add_epi32(sum, _mm512_srai_epi32(_mm512_slli_epi32(codes, 24), 24));  // the stored int8
  }
  int32_t total = _mm512_reduce_add_epi32(sum);
  for (int64_t i = body; i < k; ++i) {
    float r = (x[i] * act.scale + 12582912.0f) - 12582912.0f;
    r = r < -128.0f ? -128.0f : r > 127.0f ? 127.0f : r;
    q[i] = int8_t(int32_t(r));
    total += q[i];
  }
  act.sum = total;
  return act;
}
BITNET_AVX512_INTRINSICS_END
}  // namespace
#endif

ActivationQuant quantize_activations(const float* x, int64_t k, int8_t* q) {
#if defined(__x86_64__)
  // The CPU check of the loop's target_clones (libgcc's; the tensor layer sits below kernels/).
  static const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
  if (avx512) return quantize_avx512(x, k, q);
#endif
  return quantize_activations_loop(x, k, q);
}

int64_t q8_activation_block(GgmlType weight_type) {
  return weight_type == GgmlType::Q8_0 ? 32 : weight_type == GgmlType::Q6_K ? 256 : 0;
}

// Once per token for each Q8_0/Q6_K product (the LM head); written like quantize_activations so
// that it vectorizes (the same add/subtract rounding, no FMA under -ffp-contract=off).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
void quantize_activation_blocks(const float* x, int64_t k, int64_t block, int8_t* q, float* d,
                                int16_t* sum16) {
  const float magic = 12582912.0f;  // 1.5·2^23
  for (int64_t b = 0; b < k / block; ++b) {
    const float* xb = x + b * block;
    int8_t* qb = q + b * block;
    const float m = max_abs(xb, block);
    const float scale = m > 0 ? 127.0f / m : 0.0f;
    d[b] = m / 127.0f;
    for (int64_t i = 0; i < block; ++i) {
      float r = (xb[i] * scale + magic) - magic;
      r = r < -127.0f ? -127.0f : r > 127.0f ? 127.0f : r;
      qb[i] = int8_t(int32_t(r));
    }
  }
  for (int64_t j = 0; j < k / 16; ++j) {
    int32_t s = 0;
    for (int i = 0; i < 16; ++i) s += q[16 * j + i];
    sum16[j] = int16_t(s);
  }
}

}  // namespace bitnet
