// Reference codecs for the float-storage types: F32, F16, BF16, Q8_0 (ternary-formats.md §11) and
// Q6_K (§10). These carry embeddings / LM heads; exactness matters less than being plainly right.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "errors.h"
#include "formats/half.h"
#include "tensor/quants.h"
#include "tensor/quants_internal.h"

namespace bitnet::detail {
namespace {

constexpr int64_t kQ8Block = 32;
constexpr int64_t kQ8Bytes = 34;
constexpr int64_t kQ6Block = 256;
constexpr int64_t kQ6Bytes = 210;
// Q6_K block field offsets.
constexpr int kQ6Ql = 0;
constexpr int kQ6Qh = 128;
constexpr int kQ6Sc = 192;
constexpr int kQ6D = 208;

void store_u16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }

// ---- Q8_0: f16 d, then 32 int8 ----

void dequantize_q8_0(const uint8_t* src, int64_t n, float* out) {
  for (int64_t b = 0; b < n / kQ8Block; ++b) {
    const uint8_t* blk = src + b * kQ8Bytes;
    const float d = fp16_to_fp32(load_u16(blk));
    for (int j = 0; j < kQ8Block; ++j) out[b * kQ8Block + j] = d * float(int8_t(blk[2 + j]));
  }
}

// llama.cpp's reference choice: d = amax/127, q = roundf(x/d) with the unrounded f32 d (the f16
// rounding of d only affects decoding). The clamp guards x/d landing a hair above 127.
void quantize_q8_0(const float* x, int64_t n, uint8_t* out) {
  for (int64_t b = 0; b < n / kQ8Block; ++b) {
    const float* xb = x + b * kQ8Block;
    uint8_t* blk = out + b * kQ8Bytes;
    float amax = 0;
    for (int j = 0; j < kQ8Block; ++j) amax = std::max(amax, std::fabs(xb[j]));
    const float d = amax / 127.0f;
    store_u16(blk, fp32_to_fp16(d));
    for (int j = 0; j < kQ8Block; ++j) {
      const float q = d != 0 ? std::clamp(std::roundf(xb[j] / d), -127.0f, 127.0f) : 0.0f;
      blk[2 + j] = uint8_t(int8_t(q));
    }
  }
}

// ---- Q6_K: element e = 128h + 32k + l; see §10 for where its 6 bits live ----

struct Q6Slot {
  int ql;        // byte of ql holding the low 4 bits
  int ql_shift;  // 0 (low nibble) or 4 (high nibble)
  int qh;        // byte of qh holding the high 2 bits
  int qh_shift;  // 2k
};

Q6Slot q6_slot(int e) {
  const int h = e / 128, k = (e % 128) / 32, l = e % 32;
  return {64 * h + 32 * (k % 2) + l, k < 2 ? 0 : 4, 32 * h + l, 2 * k};
}

void dequantize_q6_k(const uint8_t* src, int64_t n, float* out) {
  for (int64_t b = 0; b < n / kQ6Block; ++b) {
    const uint8_t* blk = src + b * kQ6Bytes;
    const float d = fp16_to_fp32(load_u16(blk + kQ6D));
    for (int e = 0; e < kQ6Block; ++e) {
      const Q6Slot s = q6_slot(e);
      const int low4 = (blk[kQ6Ql + s.ql] >> s.ql_shift) & 0x0F;
      const int high2 = (blk[kQ6Qh + s.qh] >> s.qh_shift) & 3;
      const int q = (low4 | high2 << 4) - 32;
      const float sc = float(int8_t(blk[kQ6Sc + e / 16]));
      out[b * kQ6Block + e] = d * sc * float(q);
    }
  }
}

// Our Q6_K encoder (a simple amax scheme, not llama.cpp's error-minimising search):
//   s_j  = amax_j / 31 for each 16-element sub-block j  (so |x|/s_j <= 31 fits the 6-bit range)
//   d    = f16( max_j s_j / 127 )                      (so s_j/d <= 127 fits the int8 scale)
//   sc_j = clamp(ceil(s_j / d), 0, 127) with the f16-decoded d
//   q    = clamp(round(x / (d·sc_j)), -32, 31)          (0 where d·sc_j = 0)
// Rounding sc_j UP makes the step d·sc_j >= s_j, so |x|/step <= 31 and q never clips (up to the
// f16 rounding of d); the error per element is then at most half a step, (amax_j/31 + d)/2.
void quantize_q6_k_block(const float* x, uint8_t* blk) {
  float s[16];
  float smax = 0;
  for (int j = 0; j < 16; ++j) {
    float amax = 0;
    for (int i = 0; i < 16; ++i) amax = std::max(amax, std::fabs(x[16 * j + i]));
    s[j] = amax / 31.0f;
    smax = std::max(smax, s[j]);
  }
  const uint16_t d16 = fp32_to_fp16(smax / 127.0f);
  const float d = fp16_to_fp32(d16);
  store_u16(blk + kQ6D, d16);
  for (int j = 0; j < 16; ++j) {
    const float sc = d != 0 ? std::clamp(std::ceil(s[j] / d), 0.0f, 127.0f) : 0.0f;
    blk[kQ6Sc + j] = uint8_t(int8_t(sc));
    const float step = d * sc;
    for (int i = 0; i < 16; ++i) {
      const int e = 16 * j + i;
      const int q = step != 0 ? int(std::clamp(std::roundf(x[e] / step), -32.0f, 31.0f)) : 0;
      const int u = q + 32;  // 0..63
      const Q6Slot slot = q6_slot(e);
      blk[kQ6Ql + slot.ql] |= uint8_t((u & 0x0F) << slot.ql_shift);
      blk[kQ6Qh + slot.qh] |= uint8_t((u >> 4) << slot.qh_shift);
    }
  }
}

}  // namespace

void dequantize_float_row(GgmlType type, const uint8_t* src, int64_t cols, float* out) {
  switch (type) {
    case GgmlType::F32:
      std::memcpy(out, src, size_t(cols) * 4);
      return;
    case GgmlType::F16:
      for (int64_t i = 0; i < cols; ++i) out[i] = fp16_to_fp32(load_u16(src + 2 * i));
      return;
    case GgmlType::BF16:
      for (int64_t i = 0; i < cols; ++i) out[i] = bf16_to_fp32(load_u16(src + 2 * i));
      return;
    case GgmlType::Q8_0:
      return dequantize_q8_0(src, cols, out);
    case GgmlType::Q6_K:
      return dequantize_q6_k(src, cols, out);
    default:
      throw Error("dequantize_float_row: not a float-storage type");
  }
}

void quantize_float(GgmlType type, const float* x, int64_t n, uint8_t* out) {
  switch (type) {
    case GgmlType::F32:
      std::memcpy(out, x, size_t(n) * 4);
      return;
    case GgmlType::F16:
      for (int64_t i = 0; i < n; ++i) store_u16(out + 2 * i, fp32_to_fp16(x[i]));
      return;
    case GgmlType::BF16:
      for (int64_t i = 0; i < n; ++i) store_u16(out + 2 * i, fp32_to_bf16(x[i]));
      return;
    case GgmlType::Q8_0:
      return quantize_q8_0(x, n, out);
    case GgmlType::Q6_K:
      for (int64_t b = 0; b < n / kQ6Block; ++b)
        quantize_q6_k_block(x + b * kQ6Block, out + b * kQ6Bytes);
      return;
    default:
      throw Error("quantize_float: not a float-storage type");
  }
}

}  // namespace bitnet::detail

namespace bitnet {

int32_t q8_0_block_isum(const uint8_t* blk, const int8_t* q) {
  int32_t s = 0;
  for (int j = 0; j < detail::kQ8Block; ++j) s += int32_t(int8_t(blk[2 + j])) * q[j];
  return s;
}

int32_t q6_k_block_isum(const uint8_t* blk, const int8_t* q) {
  int32_t s = 0;
  for (int j = 0; j < 16; ++j) {
    int32_t sub = 0;
    for (int e = 16 * j; e < 16 * j + 16; ++e) {
      const detail::Q6Slot slot = detail::q6_slot(e);
      const int low4 = (blk[detail::kQ6Ql + slot.ql] >> slot.ql_shift) & 0x0F;
      const int high2 = (blk[detail::kQ6Qh + slot.qh] >> slot.qh_shift) & 3;
      sub += ((low4 | high2 << 4) - 32) * q[e];
    }
    s += int32_t(int8_t(blk[detail::kQ6Sc + j])) * sub;
  }
  return s;
}

}  // namespace bitnet
